// include/netdist/vae_tiles.h: VAEDecodeTiled's tiles run by a TileRunner.
#include "netdist/vae_tiles.h"

#include <string>
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

}  // namespace

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
