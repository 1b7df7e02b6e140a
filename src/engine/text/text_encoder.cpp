#include "engine/text/text_encoder.h"

#include <algorithm>
#include <string>

#include <torch/torch.h>

#include "core/log.h"

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

// The ids the encoder runs and the embedding vectors that replace token embeddings ([rows, length] mask and
// [rows, length, D] values; undefined when no window has one), after dropping vectors of the wrong width.
struct TextEmbeds {
  at::Tensor mask, values;
};

TextEmbeds text_embeds(const std::vector<WeightedTokens>& windows, int64_t rows, int64_t length, int64_t width,
                       int pad_id, std::vector<int64_t>& ids) {
  bool any = false;
  for (const WeightedTokens& w : windows) any = any || !w.embeddings.empty();
  if (!any) return {};
  at::Tensor mask = at::zeros({rows, length}, at::kBool);
  at::Tensor values = at::zeros({rows, length, width}, at::kFloat);
  for (size_t r = 0; r < windows.size(); ++r) {
    const WeightedTokens& w = windows[r];
    if (w.embeddings.empty()) continue;
    std::vector<int64_t> out;
    for (size_t j = 0; j < w.ids.size(); ++j) {
      auto e = w.embeddings.find(j);
      if (e == w.embeddings.end()) {
        out.push_back(w.ids[j]);
      } else if (static_cast<int64_t>(e->second.size()) == width) {
        mask[static_cast<int64_t>(r)][static_cast<int64_t>(out.size())] = true;
        values[static_cast<int64_t>(r)][static_cast<int64_t>(out.size())].copy_(
            at::from_blob(const_cast<float*>(e->second.data()), {width}, at::kFloat));
        out.push_back(0);
      } else {
        log::warn("WARNING: shape mismatch when trying to apply embedding, embedding will be ignored {} != {}",
                  e->second.size(), width);
      }
    }
    while (out.size() < w.ids.size()) out.push_back(pad_id);
    std::copy(out.begin(), out.end(), ids.begin() + static_cast<int64_t>(r) * length);
  }
  return {mask, values};
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
  const TextEmbeds embeds = text_embeds(windows, rows, length, model.config().hidden_size, options.pad_id, ids);
  at::Tensor id_tensor = torch::from_blob(ids.data(), {rows, length}, at::kLong).clone().to(device);

  ClipTextOutput out = model.forward(id_tensor, options.layer_idx, options.final_ln, options.project_pooled,
                                     embeds.mask.defined() ? embeds.mask.to(device) : at::Tensor(),
                                     embeds.values.defined() ? embeds.values.to(device) : at::Tensor());
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
