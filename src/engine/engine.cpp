// encode_prompt, sample, decode and encode of include/netdist/engine.h, following ComfyUI's
// CLIPTextEncode, KSampler (comfy/samplers.py: CFGGuider, calc_cond_batch, KSAMPLER.sample) and VAE.
#include <numeric>

#include <torch/torch.h>

#include "engine/model.h"
#include "engine/sampling/noise.h"
#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"
#include "engine/text/text_encoder.h"
#include "engine/text/tokenize_prompt.h"
#include "engine/unet/sdxl_adm.h"

namespace netdist {

namespace {

Result<std::vector<text::WeightedTokens>> tokenize(const Model& model, const models::TextEncoderSpec& spec,
                                                   const std::string& prompt) {
  text::TokenizeOptions options = text::TokenizeOptions::clip_l();
  // Families pad either with the end token (CLIP-L: 49407 in CLIP's vocab) or with 0 (OpenCLIP).
  if (spec.pad_id == 0) options.pad_id = 0;
  ND_ASSIGN_OR_RETURN(auto windows, text::tokenize_with_weights(*model.tokenizer_, prompt, options));
  std::vector<text::WeightedTokens> out;
  for (auto& w : windows) out.push_back({std::move(w.ids), std::move(w.weights)});
  return out;
}

// CLIPSetLastLayer (ComfyUI SDClipModel.set_clip_options): a set layer replaces the family's default layer
// for every encoder; one beyond the encoder's depth means its last layer with the final layer norm.
text::EncodeOptions encode_options(const Model& model, const TextEncoder& enc, std::optional<int> clip_layer) {
  text::EncodeOptions o;
  o.layer_idx = enc.spec.absolute_layer();
  o.final_ln = enc.spec.final_ln;
  if (clip_layer) {
    const int layers = enc.spec.config.num_layers;
    if (std::abs(*clip_layer) > layers) {
      o.layer_idx = layers - 1;
      o.final_ln = true;
    } else {
      o.layer_idx = *clip_layer < 0 ? layers + *clip_layer : *clip_layer;
    }
  }
  o.start_id = model.tokenizer_->bos_id();
  o.end_id = model.tokenizer_->eos_id();
  o.pad_id = enc.spec.pad_id == 0 ? 0 : model.tokenizer_->eos_id();
  o.project_pooled = enc.spec.project_pooled;
  return o;
}

// The x0 prediction of the UNet for one batch of conditioning rows (ComfyUI BaseModel._apply_model).
at::Tensor apply_model(Model& model, const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& context,
                       const at::Tensor& y) {
  const sampling::ModelSampling& ms = *model.sampling_;
  at::Tensor xc = ms.calculate_input(sigma, x).to(model.unet_dtype_);
  at::Tensor t = ms.timestep(sigma).to(at::kFloat);
  at::Tensor out = model.unet_->forward(xc, t, context.to(model.unet_dtype_),
                                        y.defined() ? y.to(model.unet_dtype_) : y);
  return ms.calculate_denoised(sigma, out.to(at::kFloat), x);
}

int64_t lcm(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

struct CondRow {
  at::Tensor context;  // [1, L, D] on device
  at::Tensor y;        // [1, adm] or undefined
  float strength;
};

// One conditioning list → its rows on the device, with SDXL's adm vector built for this latent size.
Result<std::vector<CondRow>> prepare_cond(Model& model, const Conditioning& cond, int64_t width, int64_t height) {
  std::vector<CondRow> rows;
  for (const CondEntry& e : cond) {
    if (e.area) return Status::unsupported("conditioning areas (ConditioningSetArea) are not supported by sample()");
    CondRow r;
    r.context = e.context.to(model.device_, at::kFloat);
    r.strength = e.strength;
    if (model.info_.adm_channels > 0) {
      if (!e.pooled.defined()) return Status::invalid_argument("SDXL conditioning without a pooled output");
      r.y = unet::sdxl_adm(e.pooled.to(at::kFloat).cpu(), width, height, 0, 0, width, height).to(model.device_);
    }
    rows.push_back(std::move(r));
  }
  if (rows.empty()) return Status::invalid_argument("empty conditioning");
  return rows;
}

// ComfyUI calc_cond_batch for full-area conds: every (cond list, entry) pair becomes rows of one batched
// UNet call ([uncond entries…, cond entries…] in ComfyUI's order), contexts repeated to a common length,
// and each list's prediction is the strength-weighted mean of its entries.
std::vector<at::Tensor> calc_cond_batch(Model& model, const std::vector<const std::vector<CondRow>*>& conds,
                                        const at::Tensor& x, const at::Tensor& sigma) {
  struct Item {
    const CondRow* row;
    size_t list;
  };
  std::vector<Item> items;
  for (size_t i = conds.size(); i-- > 0;) {
    if (!conds[i]) continue;
    for (size_t k = conds[i]->size(); k-- > 0;) items.push_back({&(*conds[i])[k], i});
  }
  int64_t length = 1;
  for (const Item& it : items) length = lcm(length, it.row->context.size(1));
  const int64_t b = x.size(0);
  const at::Tensor sigma_rows = sigma.dim() == 0 ? sigma.expand({b}) : sigma;
  // One UNet call per image (its rows of every conditioning entry): a row's result then does not depend on
  // the batch it came in, so a batch split over workers equals the unsplit batch bit for bit (engine.h).
  std::vector<std::vector<at::Tensor>> per_item(items.size());
  for (int64_t r = 0; r < b; ++r) {
    std::vector<at::Tensor> xs, ctx, ys, sig;
    for (const Item& it : items) {
      xs.push_back(x.slice(0, r, r + 1));
      ctx.push_back(it.row->context.repeat({1, length / it.row->context.size(1), 1}));
      if (it.row->y.defined()) ys.push_back(it.row->y);
      sig.push_back(sigma_rows.slice(0, r, r + 1));
    }
    at::Tensor out = apply_model(model, at::cat(xs), at::cat(sig), at::cat(ctx), ys.empty() ? at::Tensor() : at::cat(ys));
    for (size_t i = 0; i < items.size(); ++i) per_item[i].push_back(out.slice(0, int64_t(i), int64_t(i) + 1));
  }
  std::vector<at::Tensor> sum(conds.size()), count(conds.size());
  for (size_t i = 0; i < items.size(); ++i) {
    at::Tensor part = at::cat(per_item[i]);
    const size_t l = items[i].list;
    const float m = items[i].row->strength;
    if (!sum[l].defined()) {
      sum[l] = at::zeros_like(x);
      count[l] = at::ones_like(x) * 1e-37;
    }
    sum[l] += part * m;
    count[l] += m;
  }
  std::vector<at::Tensor> result(conds.size());
  for (size_t l = 0; l < conds.size(); ++l) {
    if (sum[l].defined()) result[l] = sum[l] / count[l];
  }
  return result;
}

}  // namespace

Result<Conditioning> encode_prompt(Model& model, const std::string& text, std::optional<int> clip_layer) {
  std::lock_guard<std::mutex> lock(model.mutex_);
  CondEntry entry;
  Status s = guard_torch("encoding the prompt", [&] {
    c10::InferenceMode inference;
    std::vector<std::vector<text::WeightedTokens>> windows;
    for (const TextEncoder& enc : model.encoders_) {
      auto w = tokenize(model, enc.spec, text);
      if (!w.is_ok()) return w.status();
      windows.push_back(std::move(*w));
    }
    Result<text::Conditioning> cond = Status::internal("no text encoder");
    if (model.encoders_.size() == 2) {
      TextEncoder& l = model.encoders_[0];
      TextEncoder& g = model.encoders_[1];
      OnDevice on_l(model, *l.model), on_g(model, *g.model);
      cond = text::encode_sdxl(*l.model, windows[0], encode_options(model, l, clip_layer), *g.model, windows[1],
                               encode_options(model, g, clip_layer));
    } else if (model.encoders_.size() == 1) {
      TextEncoder& e = model.encoders_[0];
      OnDevice on(model, *e.model);
      cond = text::encode_weighted(*e.model, windows[0], encode_options(model, e, clip_layer));
    }
    if (!cond.is_ok()) return cond.status();
    entry.context = cond->hidden.to(at::kCPU, at::kFloat);
    if (cond->pooled.defined()) entry.pooled = cond->pooled.to(at::kCPU, at::kFloat);
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return Conditioning{entry};
}

at::Tensor empty_latent(const Model& model, int64_t batch, int64_t width, int64_t height) {
  return at::zeros({batch, model.info_.latent_channels, height / 8, width / 8}, at::kFloat);
}

Result<at::Tensor> sample(Model& model, const Conditioning& positive, const Conditioning& negative,
                          const SampleRequest& req, const ProgressFn& progress) {
  if (!req.latent.defined() || req.latent.dim() != 4) {
    return Status::invalid_argument("sample: latent must be [N, C, h, w]");
  }
  const int64_t n = req.latent.size(0);
  const int64_t row_begin = req.row_begin;
  const int64_t row_end = req.row_end < 0 ? n : req.row_end;
  if (row_begin < 0 || row_begin >= row_end || row_end > n) {
    return Status::invalid_argument("sample: rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                                    ") outside a batch of " + std::to_string(n));
  }
  if (req.steps < 1) return Status::invalid_argument("sample: steps must be >= 1");
  std::lock_guard<std::mutex> lock(model.mutex_);
  const sampling::ModelSampling& ms = *model.sampling_;
  ND_ASSIGN_OR_RETURN(at::Tensor sigmas, sampling::make_sigmas(req.scheduler, ms, req.steps, req.denoise, req.sampler));
  if (req.last_step && *req.last_step < sigmas.size(0) - 1) {
    sigmas = sigmas.slice(0, 0, *req.last_step + 1).clone();
    if (req.force_full_denoise) sigmas[-1] = 0.0;
  }
  at::Tensor latent = req.latent.slice(0, row_begin, row_end).to(at::kFloat);
  if (req.start_step) {
    if (*req.start_step >= sigmas.size(0) - 1) return latent.clone();
    sigmas = sigmas.slice(0, *req.start_step);
  }
  at::Tensor noise;
  if (req.add_noise) {
    ND_ASSIGN_OR_RETURN(at::Tensor full, sampling::initial_noise(req.seed, req.latent.sizes(), req.batch_index));
    noise = full.slice(0, row_begin, row_end);
  } else {
    noise = at::zeros_like(latent);
  }
  const int64_t height = req.latent.size(2) * 8, width = req.latent.size(3) * 8;
  ND_ASSIGN_OR_RETURN(std::vector<CondRow> pos, prepare_cond(model, positive, width, height));
  ND_ASSIGN_OR_RETURN(std::vector<CondRow> neg, prepare_cond(model, negative, width, height));

  at::Tensor result;
  Status s = guard_torch("sampling", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.unet_);
    at::Tensor sig = sigmas.to(model.device_);
    at::Tensor latent_in = (latent * model.info_.vae_scale_factor).to(model.device_);
    at::Tensor x = ms.noise_scaling(sig[0], noise.to(model.device_), latent_in, ms.is_max_denoise(sigmas));
    const bool skip_uncond = std::abs(req.cfg - 1.0) <= 1e-9 * std::max(1.0, std::abs(req.cfg));
    sampling::Denoiser denoiser = [&](const at::Tensor& xt, const at::Tensor& sigma) {
      std::vector<const std::vector<CondRow>*> lists = {&pos, skip_uncond ? nullptr : &neg};
      std::vector<at::Tensor> out = calc_cond_batch(model, lists, xt, sigma);
      if (skip_uncond) return out[0];
      return out[1] + (out[0] - out[1]) * req.cfg;
    };
    sampling::NoiseSource noise_source(req.seed, n, row_begin,
                                       model.options_.noise_on_cpu ? sampling::NoiseDevice::kCpu
                                                                   : sampling::NoiseDevice::kSampling);
    sampling::StepCallback callback = [&](int step, int total, const at::Tensor&, const at::Tensor&) {
      return progress ? progress(step + 1, total) : true;
    };
    auto sampled = sampling::sample(req.sampler, denoiser, x, sig, noise_source, callback);
    if (!sampled.is_ok()) return sampled.status();
    at::Tensor samples = ms.inverse_noise_scaling(sig[-1], *sampled);
    result = (samples.to(at::kFloat) / model.info_.vae_scale_factor).to(at::kCPU);
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return result;
}

Result<at::Tensor> decode(Model& model, const at::Tensor& latent) {
  if (!latent.defined() || latent.dim() != 4) return Status::invalid_argument("decode: latent must be [N, C, h, w]");
  std::lock_guard<std::mutex> lock(model.mutex_);
  at::Tensor images;
  Status s = guard_torch("VAE decode", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.vae_);
    at::Tensor z = latent.to(model.device_, model.vae_dtype_);
    at::Tensor out = model.vae_->decode(z).to(at::kFloat);
    images = ((out + 1.0) / 2.0).clamp(0.0, 1.0).permute({0, 2, 3, 1}).contiguous().to(at::kCPU);
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return images;
}

Result<at::Tensor> encode(Model& model, const at::Tensor& image) {
  if (!image.defined() || image.dim() != 4 || image.size(3) < 3) {
    return Status::invalid_argument("encode: image must be [N, H, W, 3]");
  }
  const int64_t d = model.vae_->config().downscale();
  const int64_t h = image.size(1) / d * d, w = image.size(2) / d * d;
  if (h == 0 || w == 0) return Status::invalid_argument("encode: image smaller than one latent cell");
  std::lock_guard<std::mutex> lock(model.mutex_);
  at::Tensor latent;
  Status s = guard_torch("VAE encode", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.vae_);
    const int64_t y0 = (image.size(1) % d) / 2, x0 = (image.size(2) % d) / 2;
    at::Tensor px = image.slice(1, y0, y0 + h).slice(2, x0, x0 + w).slice(3, 0, 3);
    px = (px.permute({0, 3, 1, 2}) * 2.0 - 1.0).to(model.device_, model.vae_dtype_);
    latent = model.vae_->encode(px).to(at::kFloat).to(at::kCPU);
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return latent;
}

}  // namespace netdist

namespace netdist {

Result<at::Tensor> apply_model_once(Model& model, const at::Tensor& x, const at::Tensor& sigma,
                                    const at::Tensor& context, const at::Tensor& y) {
  std::lock_guard<std::mutex> lock(model.mutex_);
  at::Tensor out;
  ND_RETURN_IF_ERROR(guard_torch("UNet call", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.unet_);
    const at::Device d = model.device_;
    out = apply_model(model, x.to(d, at::kFloat), sigma.to(d, at::kFloat), context.to(d, at::kFloat),
                      y.defined() ? y.to(d, at::kFloat) : y)
              .to(at::kCPU);
    return Status::ok();
  }));
  return out;
}

}  // namespace netdist
