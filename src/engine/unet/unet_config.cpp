#include "engine/unet/unet_config.h"

#include <algorithm>
#include <numeric>
#include <sstream>

namespace netdist::unet {

namespace {

std::string list_string(const std::vector<int64_t>& v) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < v.size(); ++i) out << (i ? "," : "") << v[i];
  out << ']';
  return out.str();
}

// Sorted names under a prefix, for prefix-existence queries.
class KeyIndex {
 public:
  KeyIndex(const runtime::WeightMap& weights, std::string_view prefix) : weights_(weights), prefix_(prefix) {
    for (const auto& [key, tensor] : weights) {
      if (key.compare(0, prefix.size(), prefix) == 0) names_.push_back(key.substr(prefix.size()));
    }
    std::sort(names_.begin(), names_.end());
  }

  bool has(const std::string& name) const { return std::binary_search(names_.begin(), names_.end(), name); }

  bool has_prefix(const std::string& p) const {
    auto it = std::lower_bound(names_.begin(), names_.end(), p);
    return it != names_.end() && it->compare(0, p.size(), p) == 0;
  }

  // Number of consecutive indices i = 0, 1, ... for which some name starts with head + i + ".".
  int64_t count_blocks(const std::string& head) const {
    int64_t n = 0;
    while (has_prefix(head + std::to_string(n) + ".")) ++n;
    return n;
  }

  Result<at::IntArrayRef> shape(const std::string& name) const {
    auto it = weights_.find(prefix_ + name);
    if (it == weights_.end()) {
      return Status::not_found("UNet weights: missing tensor '" + prefix_ + name + "'");
    }
    return it->second.sizes();
  }

  const std::string& prefix() const { return prefix_; }

 private:
  const runtime::WeightMap& weights_;
  std::string prefix_;
  std::vector<std::string> names_;
};

struct TransformerInfo {
  int64_t depth = 0;
  int64_t context_dim = 0;
  bool use_linear = false;
};

// The SpatialTransformer at `block` + "1." (ComfyUI calculate_transformer_depth); depth 0 when absent.
Result<TransformerInfo> transformer_info(const KeyIndex& keys, const std::string& block) {
  TransformerInfo info;
  const std::string head = block + "1.transformer_blocks.";
  if (!keys.has_prefix(head)) return info;
  info.depth = keys.count_blocks(head);
  ND_ASSIGN_OR_RETURN(at::IntArrayRef to_k, keys.shape(head + "0.attn2.to_k.weight"));
  ND_ASSIGN_OR_RETURN(at::IntArrayRef proj_in, keys.shape(block + "1.proj_in.weight"));
  if (to_k.size() != 2) return Status::invalid_argument("UNet weights: '" + keys.prefix() + head + "0.attn2.to_k.weight' is not 2-D");
  info.context_dim = to_k[1];
  info.use_linear = proj_in.size() == 2;
  return info;
}

}  // namespace

UNetConfig UNetConfig::sd15() {
  UNetConfig c;
  c.channel_mult = {1, 2, 4, 4};
  c.num_res_blocks = {2, 2, 2, 2};
  c.transformer_depth = {1, 1, 1, 1, 1, 1, 0, 0};
  c.transformer_depth_output = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
  c.transformer_depth_middle = 1;
  c.num_heads = 8;
  c.context_dim = 768;
  return c;
}

UNetConfig UNetConfig::sd2() {
  UNetConfig c = sd15();
  c.num_heads = -1;
  c.num_head_channels = 64;
  c.context_dim = 1024;
  c.use_linear_in_transformer = true;
  return c;
}

UNetConfig UNetConfig::sdxl() {
  UNetConfig c;
  c.channel_mult = {1, 2, 4};
  c.num_res_blocks = {2, 2, 2};
  c.transformer_depth = {0, 0, 2, 2, 10, 10};
  c.transformer_depth_output = {0, 0, 0, 2, 2, 2, 10, 10, 10};
  c.transformer_depth_middle = 10;
  c.num_head_channels = 64;
  c.context_dim = 2048;
  c.use_linear_in_transformer = true;
  c.adm_in_channels = 2816;
  return c;
}

UNetConfig UNetConfig::tiny() {
  UNetConfig c;
  c.model_channels = 32;
  c.channel_mult = {1, 2};
  c.num_res_blocks = {1, 1};
  c.transformer_depth = {1, 1};
  c.transformer_depth_output = {1, 1, 1, 1};
  c.transformer_depth_middle = 1;
  c.num_heads = 2;
  c.context_dim = 32;
  return c;
}

int64_t UNetConfig::heads_for(int64_t channels) const {
  return num_head_channels > 0 ? channels / num_head_channels : num_heads;
}

int64_t UNetConfig::head_dim_for(int64_t channels) const {
  return num_head_channels > 0 ? num_head_channels : channels / num_heads;
}

Status UNetConfig::validate() const {
  ND_RETURN_IF_ERROR(validate_structure());
  for (int64_t m : channel_mult) {
    const int64_t ch = m * model_channels;
    const int64_t heads = heads_for(ch);
    if (heads <= 0 || heads * head_dim_for(ch) != ch) {
      return Status::invalid_argument("UNet config: level width " + std::to_string(ch) +
                                      " does not split into attention heads (" + to_string() + ")");
    }
  }
  return Status::ok();
}

Status UNetConfig::validate_structure() const {
  auto bad = [&](const std::string& what) { return Status::invalid_argument("UNet config: " + what + " (" + to_string() + ")"); };
  if (in_channels <= 0 || out_channels <= 0 || model_channels <= 0) return bad("channel counts must be positive");
  if (channel_mult.empty()) return bad("channel_mult is empty");
  if (num_res_blocks.size() != channel_mult.size()) return bad("num_res_blocks and channel_mult differ in length");
  const int64_t res_total = std::accumulate(num_res_blocks.begin(), num_res_blocks.end(), int64_t{0});
  if (static_cast<int64_t>(transformer_depth.size()) != res_total) {
    return bad("transformer_depth needs one entry per input ResBlock (" + std::to_string(res_total) + ")");
  }
  const int64_t out_total = res_total + static_cast<int64_t>(num_res_blocks.size());
  if (static_cast<int64_t>(transformer_depth_output.size()) != out_total) {
    return bad("transformer_depth_output needs one entry per output block (" + std::to_string(out_total) + ")");
  }
  if (transformer_depth_middle < -2) return bad("transformer_depth_middle must be >= -2");
  if ((num_heads > 0) == (num_head_channels > 0)) return bad("exactly one of num_heads, num_head_channels must be set");
  for (int64_t m : channel_mult) {
    const int64_t ch = m * model_channels;
    if (m <= 0 || ch % 32 != 0) return bad("level width " + std::to_string(ch) + " is not a positive multiple of 32");
  }
  if (model_channels % 32 != 0) return bad("model_channels must be a multiple of 32");
  const bool any_attention =
      transformer_depth_middle >= 0 ||
      std::any_of(transformer_depth.begin(), transformer_depth.end(), [](int64_t d) { return d > 0; }) ||
      std::any_of(transformer_depth_output.begin(), transformer_depth_output.end(), [](int64_t d) { return d > 0; });
  if (any_attention && context_dim <= 0) return bad("context_dim must be positive when the UNet has attention");
  if (adm_in_channels < 0) return bad("adm_in_channels must be >= 0");
  return Status::ok();
}

std::string UNetConfig::to_string() const {
  std::ostringstream out;
  out << "UNetConfig{in " << in_channels << ", out " << out_channels << ", model_channels " << model_channels
      << ", channel_mult " << list_string(channel_mult) << ", num_res_blocks " << list_string(num_res_blocks)
      << ", transformer_depth " << list_string(transformer_depth) << ", transformer_depth_output "
      << list_string(transformer_depth_output) << ", transformer_depth_middle " << transformer_depth_middle
      << ", num_heads " << num_heads << ", num_head_channels " << num_head_channels << ", context_dim "
      << context_dim << ", linear " << (use_linear_in_transformer ? "true" : "false") << ", adm "
      << adm_in_channels << "}";
  return out.str();
}

namespace {

// model_channels, in/out channels and the ADM width, from the first and last convolutions and label_emb.
Status detect_io(const KeyIndex& keys, UNetConfig& c) {
  ND_ASSIGN_OR_RETURN(at::IntArrayRef conv_in, keys.shape("input_blocks.0.0.weight"));
  if (conv_in.size() != 4) {
    return Status::invalid_argument("UNet weights: 'input_blocks.0.0.weight' is not a 4-D conv weight");
  }
  c.model_channels = conv_in[0];
  c.in_channels = conv_in[1];
  c.out_channels = 4;
  if (keys.has("out.2.weight")) {
    ND_ASSIGN_OR_RETURN(at::IntArrayRef out, keys.shape("out.2.weight"));
    c.out_channels = out[0];
  }
  if (keys.has("label_emb.0.0.weight")) {
    ND_ASSIGN_OR_RETURN(at::IntArrayRef adm, keys.shape("label_emb.0.0.weight"));
    c.adm_in_channels = adm[1];
  }
  return Status::ok();
}

}  // namespace

Result<UNetConfig> detect_unet_config(const runtime::WeightMap& weights, std::string_view prefix) {
  KeyIndex keys(weights, prefix);
  if (!keys.has("input_blocks.0.0.weight")) {
    return Status::not_found("UNet weights: no tensor '" + std::string(prefix) +
                             "input_blocks.0.0.weight'; not an ldm UNet under this prefix");
  }
  UNetConfig c;
  c.transformer_depth_middle = 0;
  ND_RETURN_IF_ERROR(detect_io(keys, c));

  int64_t context_dim = 0;
  bool linear = false;
  bool have_transformer = false;
  int64_t last_res_blocks = 0;
  int64_t last_channel_mult = 0;
  const int64_t input_count = keys.count_blocks("input_blocks.");
  for (int64_t i = 0; i < input_count; ++i) {
    const std::string in_block = "input_blocks." + std::to_string(i) + ".";
    const std::string out_block = "output_blocks." + std::to_string(input_count - i - 1) + ".";
    if (keys.has(in_block + "0.op.weight")) {
      c.num_res_blocks.push_back(last_res_blocks);
      c.channel_mult.push_back(last_channel_mult);
      last_res_blocks = 0;
      last_channel_mult = 0;
      ND_ASSIGN_OR_RETURN(TransformerInfo t, transformer_info(keys, out_block));
      c.transformer_depth_output.push_back(t.depth);
      continue;
    }
    if (keys.has(in_block + "0.in_layers.0.weight")) {
      ++last_res_blocks;
      ND_ASSIGN_OR_RETURN(at::IntArrayRef res_out, keys.shape(in_block + "0.out_layers.3.weight"));
      if (res_out[0] % c.model_channels != 0) {
        return Status::invalid_argument("UNet weights: '" + std::string(prefix) + in_block +
                                        "0.out_layers.3.weight' width is not a multiple of model_channels");
      }
      last_channel_mult = res_out[0] / c.model_channels;
      ND_ASSIGN_OR_RETURN(TransformerInfo t, transformer_info(keys, in_block));
      c.transformer_depth.push_back(t.depth);
      if (t.depth > 0 && !have_transformer) {
        have_transformer = true;
        context_dim = t.context_dim;
        linear = t.use_linear;
      }
    }
    if (keys.has(out_block + "0.in_layers.0.weight")) {
      ND_ASSIGN_OR_RETURN(TransformerInfo t, transformer_info(keys, out_block));
      c.transformer_depth_output.push_back(t.depth);
    }
  }
  c.num_res_blocks.push_back(last_res_blocks);
  c.channel_mult.push_back(last_channel_mult);

  if (keys.has("middle_block.1.proj_in.weight")) {
    c.transformer_depth_middle = keys.count_blocks("middle_block.1.transformer_blocks.");
    if (!have_transformer) {
      ND_ASSIGN_OR_RETURN(TransformerInfo t, transformer_info(keys, "middle_block."));
      context_dim = t.context_dim;
      linear = t.use_linear;
    }
  } else if (keys.has("middle_block.0.in_layers.0.weight")) {
    c.transformer_depth_middle = -1;
  } else {
    c.transformer_depth_middle = -2;
  }
  c.context_dim = context_dim;
  c.use_linear_in_transformer = linear;
  const bool sd1_shape = c.context_dim == 768 && !c.use_linear_in_transformer && c.adm_in_channels == 0;
  c.num_heads = sd1_shape ? 8 : -1;
  c.num_head_channels = sd1_shape ? -1 : 64;
  ND_RETURN_IF_ERROR(c.validate_structure().with_context("UNet weights under '" + std::string(prefix) + "'"));
  return c;
}

}  // namespace netdist::unet
