// ComfyUI's conditioning step on pre-tokenized 77-token windows (comfy/sd1_clip.py
// ClipTokenWeightEncoder.encode_token_weights, comfy/sdxl_clip.py SDXLClipModel.encode_token_weights).
//
// Token weights follow ComfyUI, not A1111: when any weight in any window differs from 1.0, an extra
// "empty prompt" window [start, end, pad, pad, ...] is encoded in the same batch and every weighted
// position is interpolated toward it, z[j] = (z[j] - z_empty[j]) * w + z_empty[j]; there is no mean
// restore. Windows are concatenated along the sequence axis; the pooled output is the first window's.
#pragma once

#include <map>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/text/clip_text_model.h"

namespace netdist::text {

// One tokenizer window: ids.size() == weights.size() (77 with start, end and padding in place).
// embeddings: positions holding a textual-inversion vector instead of ids[pos] (tokenize_prompt.h). As
// ComfyUI's SDClipModel.set_up_textual_embeddings, a vector of another width than the encoder's is dropped
// with ComfyUI's warning: the window's later ids move one place left and the pad id fills the end, while the
// weights stay where they were.
struct WeightedTokens {
  std::vector<int> ids;
  std::vector<float> weights;
  std::map<size_t, std::vector<float>> embeddings;
};

struct EncodeOptions {
  int layer_idx = -1;          // ClipTextModelImpl::forward's layer_idx
  bool final_ln = true;        // final layer norm on the selected layer
  int start_id = 49406;        // the empty-prompt window is [start_id, end_id, pad_id...]
  int end_id = 49407;
  int pad_id = 49407;          // 49407 for CLIP-L, 0 for OpenCLIP H and bigG
  bool return_pooled = true;
  bool project_pooled = true;  // false for SD1 (SD1CheckpointClipModel returns the unprojected pooled)
};

struct Conditioning {
  at::Tensor hidden;  // [1, sum of window lengths, D] fp32, on the model's device
  at::Tensor pooled;  // [1, P] fp32 from the first window, or undefined when !return_pooled
};

// Encodes `windows` as one batch (plus the empty window when needed). No windows encodes the empty
// prompt alone. Fails naming the window and position of a bad id or an ids/weights length mismatch.
Result<Conditioning> encode_weighted(ClipTextModelImpl& model, const std::vector<WeightedTokens>& windows,
                                     const EncodeOptions& options);

// SDXL base: [clip_l hidden, clip_g hidden] concatenated on channels (768 + 1280 = 2048), both cut to the
// shorter sequence; pooled from clip_g (1280). Each encoder gets its own windows and options
// (CLIP-L: layer -2, no final LN, pad 49407; bigG: layer -2, no final LN, pad 0).
Result<Conditioning> encode_sdxl(ClipTextModelImpl& clip_l, const std::vector<WeightedTokens>& windows_l,
                                 const EncodeOptions& options_l, ClipTextModelImpl& clip_g,
                                 const std::vector<WeightedTokens>& windows_g, const EncodeOptions& options_g);

}  // namespace netdist::text
