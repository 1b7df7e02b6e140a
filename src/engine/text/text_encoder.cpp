#include "engine/text/text_encoder.h"

#include <algorithm>
#include <string>

#include <torch/torch.h>

namespace netdist::text {

namespace {

Status check_windows(const ClipTextModelImpl& model, const std::vector<WeightedTokens>& windows) {
  const ClipTextConfig& config = model.config();
  for (size_t w = 0; w < windows.size(); ++w) {
    const WeightedTokens& window = windows[w];
    const std::string where = "token window " + std::to_string(w);
    if (window.ids.size() != window.weights.size()) {
      return Status::invalid_argument(where + ": " + std::to_string(window.ids.size()) + " ids but " +
                                      std::to_string(window.weights.size()) + " weights");
    }
    if (window.ids.size() < 2 || window.ids.size() != windows[0].ids.size()) {
      return Status::invalid_argument(where + ": length " + std::to_string(window.ids.size()) +
                                      ", need at least 2 and the length of window 0 (" +
                                      std::to_string(windows[0].ids.size()) + ")");
    }
    if (static_cast<int>(window.ids.size()) > config.max_positions) {
      return Status::invalid_argument(where + ": " + std::to_string(window.ids.size()) + " tokens, the encoder takes " +
                                      std::to_string(config.max_positions));
    }
    for (size_t j = 0; j < window.ids.size(); ++j) {
      if (window.ids[j] < 0 || window.ids[j] >= config.vocab_size) {
        return Status::invalid_argument(where + " position " + std::to_string(j) + ": token id " +
                                        std::to_string(window.ids[j]) + " is outside the vocabulary [0, " +
                                        std::to_string(config.vocab_size) + ")");
      }
    }
  }
  return Status::ok();
}

}  // namespace

Result<Conditioning> encode_weighted(ClipTextModelImpl& model, const std::vector<WeightedTokens>& windows,
                                     const EncodeOptions& options) {
  ND_RETURN_IF_ERROR(check_windows(model, windows));
  const int num_layers = model.config().num_layers;
  if (options.layer_idx < -num_layers || options.layer_idx >= num_layers) {
    return Status::invalid_argument("CLIP layer " + std::to_string(options.layer_idx) + " does not exist in a " +
                                    std::to_string(num_layers) + "-layer text encoder");
  }
  const int64_t sections = static_cast<int64_t>(windows.size());
  const int64_t length = sections > 0 ? static_cast<int64_t>(windows[0].ids.size()) : 2;
  bool has_weights = false;
  for (const WeightedTokens& window : windows) {
    has_weights = has_weights || std::any_of(window.weights.begin(), window.weights.end(),
                                             [](float w) { return w != 1.0f; });
  }
  const bool add_empty = has_weights || sections == 0;
  const int64_t rows = sections + (add_empty ? 1 : 0);

  std::vector<int64_t> ids(static_cast<size_t>(rows * length));
  for (int64_t r = 0; r < sections; ++r) {
    std::copy(windows[r].ids.begin(), windows[r].ids.end(), ids.begin() + r * length);
  }
  if (add_empty) {
    int64_t* empty = ids.data() + sections * length;
    std::fill(empty, empty + length, static_cast<int64_t>(options.pad_id));
    empty[0] = options.start_id;
    empty[1] = options.end_id;
  }
  const at::Device device = model.parameters().front().device();
  at::Tensor id_tensor = torch::from_blob(ids.data(), {rows, length}, at::kLong).clone().to(device);

  ClipTextOutput out = model.forward(id_tensor, options.layer_idx, options.final_ln, options.project_pooled);
  Conditioning result;
  if (options.return_pooled) result.pooled = out.pooled.slice(0, 0, 1);
  if (sections == 0) {
    result.hidden = out.hidden.slice(0, rows - 1, rows);
    return result;
  }
  at::Tensor z = out.hidden.slice(0, 0, sections);
  if (has_weights) {
    std::vector<float> weights(static_cast<size_t>(sections * length));
    for (int64_t r = 0; r < sections; ++r) {
      std::copy(windows[r].weights.begin(), windows[r].weights.end(), weights.begin() + r * length);
    }
    at::Tensor w = torch::from_blob(weights.data(), {sections, length, 1}, at::kFloat).clone().to(device);
    at::Tensor z_empty = out.hidden.slice(0, rows - 1, rows);
    z = at::where(w != 1.0f, (z - z_empty) * w + z_empty, z);
  }
  result.hidden = z.reshape({1, sections * length, z.size(2)});
  return result;
}

Result<Conditioning> encode_sdxl(ClipTextModelImpl& clip_l, const std::vector<WeightedTokens>& windows_l,
                                 const EncodeOptions& options_l, ClipTextModelImpl& clip_g,
                                 const std::vector<WeightedTokens>& windows_g, const EncodeOptions& options_g) {
  ND_ASSIGN_OR_RETURN(Conditioning g, encode_weighted(clip_g, windows_g, options_g));
  ND_ASSIGN_OR_RETURN(Conditioning l, encode_weighted(clip_l, windows_l, options_l));
  const int64_t cut = std::min(l.hidden.size(1), g.hidden.size(1));
  Conditioning result;
  result.hidden = at::cat({l.hidden.slice(1, 0, cut), g.hidden.slice(1, 0, cut)}, -1);
  result.pooled = g.pooled;
  return result;
}

}  // namespace netdist::text
