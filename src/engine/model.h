// The loaded-model object behind include/netdist/engine.h. Internal to src/engine/: other modules use the
// public API. Members are guarded by *mutex_: every public engine call on a Model locks it.
//
// A Model is a handle: apply_lora copies it, so the copy shares the modules, tokenizer, sampling and the
// mutex with its base and adds weight patches (engine/lora.h), which every call applies to the shared
// modules while it holds the lock and undoes before releasing it. A standalone VAE (load_vae) is a Model
// with only vae_ set.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/lora.h"
#include "engine/models/family.h"
#include "engine/residency.h"
#include "engine/sampling/model_sampling.h"
#include "engine/text/clip_text_model.h"
#include "engine/text/clip_tokenizer.h"
#include "engine/unet/unet.h"
#include "engine/vae/vae.h"
#include "netdist/engine.h"
#include "netdist/tiled_diffusion.h"

namespace netdist {

namespace patches {
struct ModelPatches;  // engine/model_patches.h
}

struct TextEncoder {
  models::TextEncoderSpec spec;
  text::ClipTextModel model{nullptr};
};

class Model {
 public:
  std::shared_ptr<std::mutex> mutex_ = std::make_shared<std::mutex>();
  std::string path_;
  EngineOptions options_;
  models::FamilyInfo info_;
  at::Device device_ = at::kCPU;
  at::ScalarType unet_dtype_ = at::kFloat;
  at::ScalarType text_dtype_ = at::kFloat;
  at::ScalarType vae_dtype_ = at::kFloat;
  std::shared_ptr<text::ClipTokenizer> tokenizer_;
  std::vector<TextEncoder> encoders_;
  unet::UNetModel unet_{nullptr};
  vae::AutoencoderKL vae_{nullptr};
  std::shared_ptr<sampling::ModelSampling> sampling_;
  lora::WeightPatches unet_patches_;  // canonical names under info_.unet_prefix
  lora::WeightPatches clip_patches_;  // canonical names under the text encoders' prefixes
  std::optional<TiledDiffusionOptions> tiling_;  // TiledDiffusion: sample() tiles its UNet calls
  std::shared_ptr<const patches::ModelPatches> patches_;  // FreeU, RescaleCFG (model_patches.h); null: none
  // The modules' places in the memory manager (residency.h), shared by every handle; none on the CPU.
  std::vector<std::shared_ptr<residency::Ticket>> tickets_;
};

// The scope of one module call:
//  - on a GPU, brings `module` onto it (moving least recently used idle modules to RAM when the budget has no
//    room: residency.h) and keeps it from being moved while the guard lives; with --lowvram it goes back to
//    RAM when the guard ends. May throw libtorch's out-of-memory: use inside guard_torch;
//  - on the CPU, runs libtorch with one intra-op thread, so results are bit-identical whatever the
//    process's thread count (parallel reductions otherwise change the last bits). CPU throughput comes from
//    running several workers. The thread count is process-wide: it is restored when the guard ends.
class OnDevice {
 public:
  OnDevice(const Model& model, torch::nn::Module& module);
  ~OnDevice();
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;

 private:
  residency::Ticket* ticket_ = nullptr;
  int restore_threads_ = 0;
};

// "cpu", "cuda", "cuda:N" → the device; invalid_argument / unavailable naming the string otherwise.
Result<at::Device> parse_device(const std::string& name);

// Runs fn and returns its Status, turning libtorch exceptions into one: out-of-memory gets advice, anything
// else names `what`.
Status guard_torch(const std::string& what, const std::function<Status()>& fn);

}  // namespace netdist

namespace netdist {

// One denoiser call without guidance (ComfyUI BaseModel.apply_model): x [B,4,h,w] and sigma [B] float32,
// context [B,L,D], y [B,adm] or undefined; returns the x0 prediction, float32 on the CPU. For parity tools.
Result<at::Tensor> apply_model_once(Model& model, const at::Tensor& x, const at::Tensor& sigma,
                                    const at::Tensor& context, const at::Tensor& y);

}  // namespace netdist
