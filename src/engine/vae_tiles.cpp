// include/netdist/vae_tiles.h: VAEDecodeTiled's tiles run by a TileRunner; VAEEncodeTiled.
#include "netdist/vae_tiles.h"

#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "engine/runtime/tile_replay.h"
#include "engine/vae/vae_tiled.h"

namespace netdist {

namespace {

Status vae_tiles_check(const Model& model, const at::Tensor& t, const std::string& what) {
  if (model.vae_.is_empty()) return Status::invalid_argument(what + ": the model has no VAE");
  const int64_t c = model.vae_->config().embed_dim;
  if (!t.defined() || t.dim() != 4 || t.size(0) < 1 || t.size(2) < 1 || t.size(3) < 1 || t.size(1) != c ||
      !at::isFloatingType(t.scalar_type()))
    return Status::invalid_argument(what + " must be float [n, " + std::to_string(c) +
                                    ", h, w] latents of the VAE of '" + model.path_ + "'");
  return Status::ok();
}

// VAE.encode_tiled_'s three passes: (tile h, tile w) in the order their sums are taken.
std::vector<std::pair<int64_t, int64_t>> vae_tiles_encode_passes(int64_t t) {
  return {{t, t}, {t / 2, t * 2}, {t * 2, t / 2}};
}

Status vae_tiles_check_image(const Model& model, const at::Tensor& image, int64_t tile_size,
                             int64_t overlap) {
  if (model.vae_.is_empty()) return Status::invalid_argument("vae: the model has no VAE");
  const int64_t c = model.vae_->config().in_channels, d = model.vae_->config().downscale();
  if (!image.defined() || image.dim() != 4 || image.size(0) < 1 || image.size(3) < c ||
      !at::isFloatingType(image.scalar_type()))
    return Status::invalid_argument("pixels must be a float IMAGE [N, H, W, " + std::to_string(c) + "]");
  const int64_t h = image.size(1) / d * d, w = image.size(2) / d * d;
  if (h == 0 || w == 0)
    return Status::invalid_argument("pixels is smaller than one latent cell (" + std::to_string(d) + "×" +
                                    std::to_string(d) + " pixels)");
  if (tile_size < 1 || overlap < 0) return Status::invalid_argument("tile_size and overlap must be positive");
  for (const auto& [th, tw] : vae_tiles_encode_passes(tile_size)) {
    if ((h > th && th <= overlap) || (w > tw && tw <= overlap))
      return Status::invalid_argument("tile_size " + std::to_string(tile_size) + " with overlap " +
                                      std::to_string(overlap) + " cuts " + std::to_string(th) + "×" +
                                      std::to_string(tw) +
                                      " tiles no larger than the overlap; use an overlap "
                                      "below tile_size/2");
  }
  return Status::ok();
}

}  // namespace

Result<at::Tensor> encode_tiled(Model& model, const at::Tensor& image, int64_t tile_size, int64_t overlap) {
  ND_RETURN_IF_ERROR(vae_tiles_check_image(model, image, tile_size, overlap));
  const vae::VaeConfig& config = model.vae_->config();
  const int64_t d = config.downscale(), c = config.in_channels, latent_c = config.embed_dim;
  const int64_t h = image.size(1) / d * d, w = image.size(2) / d * d;
  const int64_t y0 = (image.size(1) % d) / 2, x0 = (image.size(2) % d) / 2;
  std::lock_guard<std::mutex> lock(*model.mutex_);
  at::Tensor out;
  ND_RETURN_IF_ERROR(guard_torch("VAE tiled encode", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.vae_);
    // As ComfyUI: a [N, C, H, W] view of the image; each tile goes through process_input (·2 − 1) alone.
    const at::Tensor px = image.to(at::kCPU, at::kFloat)
                              .slice(1, y0, y0 + h)
                              .slice(2, x0, x0 + w)
                              .slice(3, 0, c)
                              .permute({0, 3, 1, 2});
    const auto fn = [&](const at::Tensor& tile) {
      return model.vae_->encode((tile * 2.0 - 1.0).to(model.device_, model.vae_dtype_))
          .to(at::kFloat)
          .to(at::kCPU);
    };
    for (const auto& [th, tw] : vae_tiles_encode_passes(tile_size)) {
      at::Tensor pass = vae::tiled_downscale(px, fn, th, tw, overlap, d, latent_c);
      out = out.defined() ? out + pass : pass;
    }
    out = out / 3.0;
    return Status::ok();
  }));
  return out;
}

Result<at::Tensor> decode_tiled_by(Model& model, const at::Tensor& latent, int64_t tile_size, int64_t overlap,
                                   const TileRunner& runner, int64_t* tiles_run) {
  ND_RETURN_IF_ERROR(vae_tiles_check(model, latent, "samples"));
  if (tile_size < overlap * 4) overlap = tile_size / 4;  // as engine.cpp decode_tiled
  const vae::VaeConfig& config = model.vae_->config();
  const int64_t d = config.downscale(), oc = config.out_channels;
  const int64_t tile = tile_size / d, cells = overlap / d;
  if (tile < 4 || cells < 0 || cells >= tile / 2) {
    return Status::invalid_argument("decode_tiled: tile_size " + std::to_string(tile_size) + " with overlap " +
                                    std::to_string(overlap) + " gives no usable latent tile");
  }
  // The latent as decode_tiled's tiles see it (the VAE's dtype), on the CPU.
  const at::Tensor z = latent.to(at::kCPU, model.vae_dtype_);
  // AutoencoderKLImpl::decode_tiled's three passes and their mean (engine/vae/vae.cpp), with `fn`.
  const runtime::TiledPass pass = [&](const runtime::ReplayTileFn& fn) -> Result<at::Tensor> {
    at::Tensor out;
    ND_RETURN_IF_ERROR(guard_torch("VAE tiled decode", [&] {
      c10::InferenceMode inference;
      at::Tensor a = vae::tiled_scale(z, fn, tile * 2, tile / 2, cells, d, oc);
      at::Tensor b = vae::tiled_scale(z, fn, tile / 2, tile * 2, cells, d, oc);
      at::Tensor c = vae::tiled_scale(z, fn, tile, tile, cells, d, oc);
      out = (a + b + c) / 3.0;
      return Status::ok();
    }));
    return out;
  };
  ND_ASSIGN_OR_RETURN(at::Tensor out, runtime::run_tiles_by(pass, runner, d, oc, tiles_run));
  return ((out.to(at::kFloat) + 1.0) / 2.0).clamp(0.0, 1.0).permute({0, 2, 3, 1}).contiguous();
}

Result<at::Tensor> decode_tiles(Model& model, const at::Tensor& tiles) {
  ND_RETURN_IF_ERROR(vae_tiles_check(model, tiles, "tiles"));
  std::lock_guard<std::mutex> lock(*model.mutex_);
  at::Tensor result;
  ND_RETURN_IF_ERROR(guard_torch("VAE tile decode", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.vae_);
    std::vector<at::Tensor> outs;
    const at::Tensor z = tiles.to(model.device_, model.vae_dtype_);
    for (int64_t i = 0; i < z.size(0); ++i)
      outs.push_back(model.vae_->decode(z.narrow(0, i, 1)).to(at::kFloat).to(at::kCPU));
    result = at::cat(outs, 0);
    return Status::ok();
  }));
  return result;
}

}  // namespace netdist
