// Which upscale architecture a state dict holds, and its numbers, detected from key names and shapes as the
// spandrel library (which ComfyUI's UpscaleModelLoader uses) detects them:
//  - ESRGAN (spandrel architectures/ESRGAN): RRDBNet in the "old" layout (`model.0.weight`,
//    `model.1.sub.N.RDBk.convj.0.weight`), the "new" BasicSR/Real-ESRGAN layout (`conv_first`,
//    `body.N.rdbk.convj`, `conv_body`, `conv_up1`, `conv_hr`, `conv_last`) and the BSRGAN layout
//    (`RRDB_trunk`, `trunk_conv`, `upconv1`, `HRconv`); ESRGAN+ (`conv1x1`); Real-ESRGAN x2 / x1 (input
//    pixel-unshuffled: 4 or 16 times the output channels). New layouts are converted to the old key names.
//  - Compact (spandrel architectures/Compact, Real-ESRGAN's SRVGGNetCompact): `body.0.weight`,
//    `body.1.weight` (PReLU), the last conv's bias giving scale² · out channels.
// Anything else is refused, naming a few of the keys that were not recognised.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "engine/runtime/weights.h"

namespace netdist::upscale {

enum class Arch { kEsrgan, kCompact };

struct ArchConfig {
  Arch arch = Arch::kEsrgan;
  int64_t in_nc = 3;         // the network's first conv input channels (after any pixel-unshuffle)
  int64_t out_nc = 3;
  int64_t num_filters = 64;  // ESRGAN: model.0 output channels; Compact: num_feat
  int64_t num_blocks = 23;   // ESRGAN: RRDB blocks
  int64_t num_conv = 16;     // Compact: body convolutions between the first and the last
  int64_t net_scale = 4;     // the network's own upscale (ESRGAN: 2^upsample blocks)
  int64_t shuffle = 0;       // ESRGAN: pixel-unshuffle factor of the input (Real-ESRGAN x2: 2, x1: 4); 0: none
  bool plus = false;         // ESRGAN+: conv1x1 residual paths

  // What the model does to an image (spandrel's ImageModelDescriptor): scale and image channels.
  int64_t scale() const { return shuffle ? net_scale / shuffle : net_scale; }
  int64_t image_channels() const { return shuffle ? in_nc / (shuffle * shuffle) : in_nc; }
  // spandrel's SizeRequirements: inputs are padded (reflect, then replicate) to at least `min_size` and a
  // multiple of `multiple_of` per axis; the padding is cropped off the output.
  int64_t min_size() const;
  int64_t multiple_of() const { return arch == Arch::kEsrgan && shuffle ? 4 : 1; }
  std::string name() const;  // "ESRGAN", "RealESRGAN" (pixel-unshuffle), "SRVGGNetCompact"
};

struct Detected {
  ArchConfig config;
  runtime::WeightMap weights;  // in the layout the modules of nets.h are named after (ESRGAN: old layout)
};

// Detects the architecture of `weights` (a safetensors state dict). spandrel's canonicalisation comes
// first: a prefix shared by every key, "module." or "netG.", is removed. `what` (the file) names the source
// in errors: unsupported for an unknown architecture (naming up to 5 keys), invalid_argument for a state
// dict whose keys say ESRGAN or Compact but whose shapes or numbering do not make one.
Result<Detected> detect_upscale_arch(runtime::WeightMap weights, const std::string& what);

}  // namespace netdist::upscale
