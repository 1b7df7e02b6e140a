#include "netdist/upscale_model.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "core/log.h"
#include "engine/model.h"
#include "engine/runtime/device_memory.h"
#include "engine/runtime/tensor_io.h"
#include "engine/runtime/tile_replay.h"
#include "engine/upscale/detect.h"
#include "engine/upscale/nets.h"
#include "engine/upscale/tiled.h"
#include "io/safetensors.h"

namespace netdist {

class UpscaleModel {
 public:
  std::mutex mutex_;
  std::string path_;
  upscale::ArchConfig config_;
  std::shared_ptr<upscale::UpscaleNetImpl> net_;
  at::Device device_ = at::kCPU;
  std::shared_ptr<residency::Ticket> ticket_;  // none on the CPU
};

namespace {

// A torch.save pickle (zip archive or legacy pickle stream) rather than safetensors: refused with advice.
bool upscale_is_pickle(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".pth" || ext == ".pt" || ext == ".ckpt" || ext == ".bin" || ext == ".pkl" || ext == ".pt2")
    return true;
  std::ifstream in(path, std::ios::binary);
  char head[2] = {0, 0};
  in.read(head, 2);
  return in.gcount() == 2 && ((head[0] == 'P' && head[1] == 'K') || static_cast<unsigned char>(head[0]) == 0x80);
}

// The scope of one upscale: the network on its device (residency.h) and, on the CPU, one intra-op thread
// (bit-identical results whatever the thread count, as engine/model.h OnDevice).
class UpscaleOnDevice {
 public:
  explicit UpscaleOnDevice(UpscaleModel& m) : ticket_(m.ticket_.get()) {
    if (ticket_) {
      residency::acquire(*ticket_);
    } else if (m.device_.is_cpu()) {
      restore_threads_ = at::get_num_threads();
      if (restore_threads_ != 1) at::set_num_threads(1);
    }
  }
  ~UpscaleOnDevice() {
    if (ticket_) residency::release(*ticket_);
    if (restore_threads_ > 1) at::set_num_threads(restore_threads_);
  }
  UpscaleOnDevice(const UpscaleOnDevice&) = delete;
  UpscaleOnDevice& operator=(const UpscaleOnDevice&) = delete;

 private:
  residency::Ticket* ticket_ = nullptr;
  int restore_threads_ = 0;
};

// spandrel ImageModelDescriptor.__call__: pad to the size requirements (reflect, at most size − 1, then
// replicate), run, clamp to [0, 1], crop the padding off.
at::Tensor upscale_descriptor_call(UpscaleModel& m, const at::Tensor& tile) {
  const upscale::ArchConfig& c = m.config_;
  const int64_t h = tile.size(2), w = tile.size(3);
  const auto padded = [&](int64_t size) {
    int64_t s = std::max(c.min_size(), size);
    if (s % c.multiple_of() != 0) s = (s / c.multiple_of() + 1) * c.multiple_of();
    return s;
  };
  const int64_t pad_h = padded(h) - h, pad_w = padded(w) - w;
  at::Tensor x = tile;
  if (pad_h || pad_w) {
    const int64_t reflect_h = std::min(pad_h, h - 1), reflect_w = std::min(pad_w, w - 1);
    if (reflect_h || reflect_w) x = at::reflection_pad2d(x, {0, reflect_w, 0, reflect_h});
    if (pad_h > reflect_h || pad_w > reflect_w)
      x = at::replication_pad2d(x, {0, pad_w - reflect_w, 0, pad_h - reflect_h});
  }
  at::Tensor out = m.net_->forward(x).clamp_(0.0, 1.0);
  if (pad_h || pad_w) out = out.narrow(2, 0, h * c.scale()).narrow(3, 0, w * c.scale());
  return out;
}

Status upscale_check_image(const UpscaleModel& m, const at::Tensor& image) {
  const std::string what = "upscale model '" + m.path_ + "'";
  if (!image.defined() || image.dim() != 4) {
    return Status::invalid_argument(what + ": image must be [N, H, W, C], got " +
                                    (image.defined() ? std::to_string(image.dim()) + " dimensions" : "none"));
  }
  if (image.size(3) != m.config_.image_channels()) {
    return Status::invalid_argument(what + " takes images with " + std::to_string(m.config_.image_channels()) +
                                    " channels; the image has " + std::to_string(image.size(3)));
  }
  if (m.config_.out_nc != 3) {
    return Status::unsupported(what + " outputs " + std::to_string(m.config_.out_nc) +
                               " channels; ImageUpscaleWithModel makes 3-channel images");
  }
  if (image.size(1) < 1 || image.size(2) < 1) return Status::invalid_argument(what + ": the image is empty");
  return Status::ok();
}

}  // namespace

Result<std::shared_ptr<UpscaleModel>> load_upscale_model(const std::string& path, const EngineOptions& options) {
  if (upscale_is_pickle(path)) {
    return Status::unsupported(
        "upscale model '" + path +
        "' is a PyTorch pickle (.pth); netdist reads .safetensors only (pickles can run code). Convert it once: "
        "python -c \"import torch, safetensors.torch as s; d = torch.load('IN.pth', weights_only=True); "
        "d = d.get('params_ema', d.get('params', d)); s.save_file({k: v.contiguous() for k, v in d.items()}, "
        "'OUT.safetensors')\"");
  }
  auto model = std::make_shared<UpscaleModel>();
  model->path_ = path;
  ND_ASSIGN_OR_RETURN(model->device_, parse_device(options.device));
  ND_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open(path));
  ND_ASSIGN_OR_RETURN(runtime::WeightMap weights, runtime::weights_from_file(file));
  ND_ASSIGN_OR_RETURN(upscale::Detected detected, upscale::detect_upscale_arch(std::move(weights), path));
  model->config_ = detected.config;
  ND_RETURN_IF_ERROR(guard_torch("loading upscale model " + path, [&] {
    model->net_ = upscale::make_upscale_net(model->config_);
    ND_RETURN_IF_ERROR(runtime::load_module_weights(*model->net_, detected.weights, "", path));
    model->net_->eval();
    if (model->device_.is_cuda()) {
      const int64_t bytes = residency::module_bytes(*model->net_);
      const bool fits = !options.lowvram && residency::make_room(model->device_, bytes) >= bytes;
      if (fits) model->net_->to(model->device_);
      model->ticket_ = residency::track(*model->net_, model->device_, path + " (upscale model)", fits);
    }
    return Status::ok();
  }));
  return model;
}

UpscaleModelInfo upscale_model_info(const UpscaleModel& model) {
  UpscaleModelInfo info;
  info.architecture = model.config_.name();
  info.scale = static_cast<int>(model.config_.scale());
  info.in_channels = static_cast<int>(model.config_.image_channels());
  info.path = model.path_;
  return info;
}

Result<at::Tensor> upscale_image(UpscaleModel& model, const at::Tensor& image,
                                 const std::function<bool(int done, int total)>& progress) {
  ND_RETURN_IF_ERROR(upscale_check_image(model, image));
  std::lock_guard<std::mutex> lock(model.mutex_);
  const int64_t scale = model.config_.scale();
  at::Tensor result;
  Status s = guard_torch("upscaling with " + model.path_, [&] {
    c10::InferenceMode inference;
    if (model.device_.is_cuda()) {
      // ComfyUI's estimate: the weights, 384 floats per input pixel of a 512² tile per unit of scale, the image.
      const double tile_bytes = 512.0 * 512.0 * 3.0 * 4.0 * static_cast<double>(std::max<int64_t>(scale, 1)) * 384.0;
      residency::make_room(model.device_, residency::module_bytes(*model.net_) + static_cast<int64_t>(tile_bytes) +
                                              image.numel() * 4);
    }
    UpscaleOnDevice on(model);
    const at::Tensor in = image.to(at::kFloat).permute({0, 3, 1, 2}).to(model.device_);
    const upscale::TileFn fn = [&](const at::Tensor& tile) { return upscale_descriptor_call(model, tile); };
    const upscale::TileProgress tiles = [&](int64_t done, int64_t total) {
      return !progress || progress(static_cast<int>(done), static_cast<int>(total));
    };
    int64_t tile = 512;
    while (true) {
      try {
        ND_ASSIGN_OR_RETURN(at::Tensor out, upscale::tiled_scale(in, fn, tile, 32, scale, 3, tiles));
        result = out.clamp(0.0, 1.0).permute({0, 2, 3, 1}).contiguous();
        return Status::ok();
      } catch (const c10::OutOfMemoryError&) {
        tile /= 2;
        if (tile < 128) throw;
        log::warn("out of memory upscaling with {}; retrying with {} pixel tiles", model.path_, tile);
        runtime::release_cached_memory(model.device_);
      }
    }
  });
  ND_RETURN_IF_ERROR(s);
  return result;
}

int64_t upscale_tile_count(const at::Tensor& image) {
  if (!image.defined() || image.dim() != 4) return 0;
  return image.size(0) * upscale::tiled_scale_steps(image.size(2), image.size(1), 512, 32);
}

Result<at::Tensor> upscale_image_tiled_by(UpscaleModel& model, const at::Tensor& image, const TileRunner& runner,
                                          int64_t* tiles_run) {
  ND_RETURN_IF_ERROR(upscale_check_image(model, image));
  const int64_t scale = model.config_.scale();
  const at::Tensor in = image.to(at::kCPU, at::kFloat).permute({0, 3, 1, 2});
  for (int64_t tile = 512;; tile /= 2) {
    const runtime::TiledPass pass = [&](const runtime::ReplayTileFn& fn) -> Result<at::Tensor> {
      at::Tensor out;
      ND_RETURN_IF_ERROR(guard_torch("upscaling with " + model.path_, [&] {
        c10::InferenceMode inference;
        ND_ASSIGN_OR_RETURN(out, upscale::tiled_scale(in, fn, tile, 32, scale, 3, nullptr));
        return Status::ok();
      }));
      return out;
    };
    auto out = runtime::run_tiles_by(pass, runner, scale, 3, tiles_run);
    if (out.is_ok()) return out->clamp(0.0, 1.0).permute({0, 2, 3, 1}).contiguous();
    if (tile / 2 < 128 || out.status().message().find("out of memory") == std::string::npos) return out.status();
    log::warn("a tile of {} ran out of memory; retrying with {} pixel tiles", model.path_, tile / 2);
  }
}

Result<at::Tensor> upscale_tiles(UpscaleModel& model, const at::Tensor& tiles) {
  const std::string what = "upscale model '" + model.path_ + "'";
  if (!tiles.defined() || tiles.dim() != 4 || tiles.size(0) < 1 || tiles.size(2) < 1 || tiles.size(3) < 1 ||
      tiles.size(1) != model.config_.image_channels() || !at::isFloatingType(tiles.scalar_type()))
    return Status::invalid_argument(what + ": tiles must be float [n, " +
                                    std::to_string(model.config_.image_channels()) + ", h, w]");
  std::lock_guard<std::mutex> lock(model.mutex_);
  at::Tensor result;
  ND_RETURN_IF_ERROR(guard_torch("upscaling tiles with " + model.path_, [&] {
    c10::InferenceMode inference;
    UpscaleOnDevice on(model);
    std::vector<at::Tensor> outs;
    const at::Tensor in = tiles.to(model.device_, at::kFloat);
    // The tiles keep their memory format (run_tiles_by records it, model_tile_job carries it): upscale_image's
    // tiles are channels-last views, and libtorch's kernels, so its bits, follow the layout.
    for (int64_t i = 0; i < in.size(0); ++i)
      outs.push_back(upscale_descriptor_call(model, in.narrow(0, i, 1)).to(at::kCPU, at::kFloat));
    result = at::cat(outs, 0);
    return Status::ok();
  }));
  return result;
}

}  // namespace netdist
