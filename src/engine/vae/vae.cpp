#include "engine/vae/vae.h"

#include <sstream>

#include "engine/vae/vae_tiled.h"

namespace netdist::vae {

namespace {

class ShapeReader {
 public:
  ShapeReader(const runtime::WeightMap& weights, std::string_view prefix) : weights_(weights), prefix_(prefix) {}

  bool has(const std::string& name) const { return weights_.count(prefix_ + name) > 0; }

  bool has_prefix(const std::string& p) const {
    const std::string full = prefix_ + p;
    for (const auto& [key, tensor] : weights_) {
      if (key.compare(0, full.size(), full) == 0) return true;
    }
    return false;
  }

  int64_t count_blocks(const std::string& head) const {
    int64_t n = 0;
    while (has_prefix(head + std::to_string(n) + ".")) ++n;
    return n;
  }

  // Dimension `dim` of a tensor of rank `rank`.
  Result<int64_t> dim(const std::string& name, int64_t rank, int64_t dim) const {
    auto it = weights_.find(prefix_ + name);
    if (it == weights_.end()) return Status::not_found("VAE weights: missing tensor '" + prefix_ + name + "'");
    if (it->second.dim() != rank) {
      return Status::invalid_argument("VAE weights: tensor '" + prefix_ + name + "' has rank " +
                                      std::to_string(it->second.dim()) + ", expected " + std::to_string(rank));
    }
    return it->second.size(dim);
  }

 private:
  const runtime::WeightMap& weights_;
  std::string prefix_;
};

}  // namespace

VaeConfig VaeConfig::sd() { return VaeConfig{}; }

VaeConfig VaeConfig::tiny() {
  VaeConfig c;
  c.ch = 32;
  c.ch_mult = {1, 2};
  c.num_res_blocks = 1;
  return c;
}

Status VaeConfig::validate() const {
  auto bad = [&](const std::string& what) { return Status::invalid_argument("VAE config: " + what + " (" + to_string() + ")"); };
  if (ch <= 0 || ch % 32 != 0) return bad("ch must be a positive multiple of 32");
  if (ch_mult.empty()) return bad("ch_mult is empty");
  for (int64_t m : ch_mult) {
    if (m <= 0) return bad("ch_mult entries must be positive");
  }
  if (num_res_blocks <= 0) return bad("num_res_blocks must be positive");
  if (z_channels <= 0 || embed_dim <= 0 || in_channels <= 0 || out_channels <= 0) {
    return bad("channel counts must be positive");
  }
  return Status::ok();
}

std::string VaeConfig::to_string() const {
  std::ostringstream out;
  out << "VaeConfig{ch " << ch << ", ch_mult [";
  for (size_t i = 0; i < ch_mult.size(); ++i) out << (i ? "," : "") << ch_mult[i];
  out << "], num_res_blocks " << num_res_blocks << ", z_channels " << z_channels << ", embed_dim " << embed_dim
      << ", double_z " << (double_z ? "true" : "false") << (use_quant_conv ? "" : ", no quant_conv") << ", in " << in_channels << ", out " << out_channels << "}";
  return out.str();
}

Result<VaeConfig> detect_vae_config(const runtime::WeightMap& weights, std::string_view prefix) {
  ShapeReader r(weights, prefix);
  if (!r.has("decoder.conv_in.weight")) {
    return Status::not_found("VAE weights: no tensor '" + std::string(prefix) +
                             "decoder.conv_in.weight'; not an ldm AutoencoderKL under this prefix");
  }
  VaeConfig c;
  ND_ASSIGN_OR_RETURN(c.ch, r.dim("encoder.conv_in.weight", 4, 0));
  ND_ASSIGN_OR_RETURN(c.in_channels, r.dim("encoder.conv_in.weight", 4, 1));
  ND_ASSIGN_OR_RETURN(c.out_channels, r.dim("decoder.conv_out.weight", 4, 0));
  ND_ASSIGN_OR_RETURN(c.z_channels, r.dim("decoder.conv_in.weight", 4, 1));
  ND_ASSIGN_OR_RETURN(int64_t moments, r.dim("encoder.conv_out.weight", 4, 0));
  c.double_z = moments == 2 * c.z_channels;
  if (!c.double_z && moments != c.z_channels) {
    return Status::invalid_argument("VAE weights: encoder.conv_out has " + std::to_string(moments) +
                                    " outputs for z_channels " + std::to_string(c.z_channels));
  }
  c.use_quant_conv = r.has("post_quant_conv.weight") || r.has("quant_conv.weight");
  if (c.use_quant_conv) {
    ND_ASSIGN_OR_RETURN(c.embed_dim, r.dim("post_quant_conv.weight", 4, 1));
  } else {
    c.embed_dim = c.z_channels;
  }
  const int64_t levels = r.count_blocks("decoder.up.");
  if (levels == 0) return Status::not_found("VAE weights: no 'decoder.up.0.*' tensors under '" + std::string(prefix) + "'");
  c.ch_mult.clear();
  for (int64_t level = 0; level < levels; ++level) {
    ND_ASSIGN_OR_RETURN(int64_t width, r.dim("decoder.up." + std::to_string(level) + ".block.0.conv2.weight", 4, 0));
    if (width % c.ch != 0) {
      return Status::invalid_argument("VAE weights: decoder.up." + std::to_string(level) +
                                      " width is not a multiple of ch " + std::to_string(c.ch));
    }
    c.ch_mult.push_back(width / c.ch);
  }
  c.num_res_blocks = r.count_blocks("decoder.up.0.block.") - 1;
  ND_RETURN_IF_ERROR(c.validate().with_context("VAE weights under '" + std::string(prefix) + "'"));
  return c;
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& config, const at::TensorOptions& options) : config_(config) {
  const Status valid = config.validate();
  ND_ASSERT(valid.is_ok(), valid.to_string());
  encoder_ = register_module("encoder", Encoder(config_, options));
  decoder_ = register_module("decoder", Decoder(config_, options));
  const int64_t factor = config_.double_z ? 2 : 1;
  if (!config_.use_quant_conv) return;
  quant_conv_ = register_module(
      "quant_conv", layers::Conv2d(factor * config_.z_channels, factor * config_.embed_dim, 1, 1, 0, options));
  post_quant_conv_ =
      register_module("post_quant_conv", layers::Conv2d(config_.embed_dim, config_.z_channels, 1, 1, 0, options));
}

at::Tensor AutoencoderKLImpl::encode_moments(const at::Tensor& image) {
  ND_ASSERT(image.dim() == 4 && image.size(1) == config_.in_channels, "VAE encode expects [B, in_channels, H, W]");
  at::Tensor moments = encoder_(image);
  return quant_conv_ ? quant_conv_(moments) : moments;
}

at::Tensor AutoencoderKLImpl::encode(const at::Tensor& image) { return latent_mean(encode_moments(image)); }

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& z) {
  ND_ASSERT(z.dim() == 4 && z.size(1) == config_.embed_dim, "VAE decode expects [B, embed_dim, h, w]");
  return decoder_(post_quant_conv_ ? post_quant_conv_(z) : z);
}

at::Tensor AutoencoderKLImpl::decode_tiled(const at::Tensor& z, int64_t tile, int64_t overlap) {
  ND_ASSERT(tile >= 4 && overlap >= 0 && tile / 2 > overlap, "VAE decode_tiled: tile/2 must exceed overlap");
  auto fn = [&](const at::Tensor& t) { return decode(t).to(at::kFloat); };
  const int64_t d = config_.downscale();
  const int64_t oc = config_.out_channels;
  at::Tensor a = tiled_scale(z, fn, tile * 2, tile / 2, overlap, d, oc);
  at::Tensor b = tiled_scale(z, fn, tile / 2, tile * 2, overlap, d, oc);
  at::Tensor c = tiled_scale(z, fn, tile, tile, overlap, d, oc);
  return (a + b + c) / 3.0;
}

at::Tensor latent_mean(const at::Tensor& moments) { return moments.chunk(2, 1)[0]; }

at::Tensor latent_sample(const at::Tensor& moments, const at::Tensor& noise) {
  std::vector<at::Tensor> parts = moments.chunk(2, 1);
  at::Tensor std = at::exp(0.5 * at::clamp(parts[1], -30.0, 20.0));
  return parts[0] + std * noise;
}

}  // namespace netdist::vae
