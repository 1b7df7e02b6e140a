#include "engine/dit/dit_model.h"

#include <c10/util/Exception.h>
#include <torch/torch.h>

namespace netdist::dit {

std::string_view dit_family_name(DitFamily family) {
  switch (family) {
    case DitFamily::kSd3:
      return "SD3";
    case DitFamily::kFluxDev:
      return "Flux dev";
    case DitFamily::kFluxSchnell:
      return "Flux schnell";
  }
  return "?";
}

DitLatentFormat dit_latent_format(DitFamily family) {
  DitLatentFormat f;
  if (family != DitFamily::kSd3) {
    f.scale_factor = 0.3611;
    f.shift_factor = 0.1159;
  }
  return f;
}

sampling::ModelSampling dit_model_sampling(DitFamily family) {
  switch (family) {
    case DitFamily::kSd3:
      return sampling::ModelSampling::discrete_flow(3.0, 1000.0);
    case DitFamily::kFluxDev:
      return sampling::ModelSampling::flux(1.15);
    case DitFamily::kFluxSchnell:
      return sampling::ModelSampling::discrete_flow(1.0, 1.0);
  }
  return sampling::ModelSampling::discrete_flow(3.0, 1000.0);
}

Result<DitDetection> detect_dit(const runtime::WeightMap& weights) {
  for (const std::string prefix : {"", "model.diffusion_model."}) {
    if (weights.count(prefix + "joint_blocks.0.context_block.attn.qkv.weight")) {
      return DitDetection{DitFamily::kSd3, prefix};
    }
    if (weights.count(prefix + "double_blocks.0.img_attn.norm.key_norm.scale")) {
      const bool dev = weights.count(prefix + "guidance_in.in_layer.weight") > 0;
      return DitDetection{dev ? DitFamily::kFluxDev : DitFamily::kFluxSchnell, prefix};
    }
  }
  return Status::not_found(
      "no diffusion transformer: neither joint_blocks.0.context_block.attn.qkv.weight (SD3/SD3.5) nor "
      "double_blocks.0.img_attn.norm.key_norm.scale (Flux), with or without the model.diffusion_model. "
      "prefix");
}

DiffusionTransformer::DiffusionTransformer(DitFamily family, at::ScalarType dtype)
    : family_(family),
      dtype_(dtype),
      sampling_(dit_model_sampling(family)),
      latent_(dit_latent_format(family)) {}

torch::nn::Module& DiffusionTransformer::module() {
  if (mmdit_) return *mmdit_;
  return *flux_;
}

Result<std::unique_ptr<DiffusionTransformer>> DiffusionTransformer::load(const runtime::WeightMap& weights,
                                                                         const std::string& what,
                                                                         at::ScalarType dtype,
                                                                         at::Device device) {
  auto detected = detect_dit(weights);
  if (!detected.is_ok()) return detected.status().with_context(what);
  const DitDetection found = detected.value();
  std::unique_ptr<DiffusionTransformer> model(new DiffusionTransformer(found.family, dtype));
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  runtime::LoadOptions load_options;
  load_options.ignore_unexpected = {"model_ema."};
  try {
    if (found.family == DitFamily::kSd3) {
      auto config = detect_mmdit_config(weights, found.prefix);
      if (!config.is_ok()) return config.status().with_context(what);
      model->mmdit_ = MMDiT(config.value(), options);
    } else {
      auto config = detect_flux_config(weights, found.prefix);
      if (!config.is_ok()) return config.status().with_context(what);
      model->flux_ = Flux(config.value(), options);
    }
    ND_RETURN_IF_ERROR(
        runtime::load_module_weights(model->module(), weights, found.prefix, what, load_options));
  } catch (const c10::Error& e) {
    return Status::internal(what + ": building the transformer failed: " + e.what_without_backtrace());
  }
  model->module().eval();
  return model;
}

Result<at::Tensor> DiffusionTransformer::denoise(const at::Tensor& x, const at::Tensor& sigma,
                                                 const at::Tensor& context, const at::Tensor& y,
                                                 const at::Tensor& guidance) {
  if (mmdit_) ND_RETURN_IF_ERROR(mmdit_->check_size(x.size(2), x.size(3)));
  if (family_ == DitFamily::kFluxDev && !guidance.defined()) {
    return Status::invalid_argument(
        "Flux dev needs a guidance value (FluxGuidance; ComfyUI's default is 3.5)");
  }
  try {
    torch::NoGradGuard no_grad;
    const at::Tensor xc = sampling_.calculate_input(sigma, x).to(dtype_);
    const at::Tensor t = sampling_.timestep(sigma).to(at::kFloat);
    const at::Tensor c = context.to(dtype_);
    const at::Tensor a = y.defined() ? y.to(dtype_) : y;
    at::Tensor out = mmdit_
                         ? mmdit_->forward(xc, t, c, a)
                         : flux_->forward(xc, t, c, a, guidance.defined() ? guidance.to(dtype_) : guidance);
    return sampling_.calculate_denoised(sigma, out.to(at::kFloat), x);
  } catch (const c10::Error& e) {
    return Status::internal(std::string(dit_family_name(family_)) +
                            " transformer: " + e.what_without_backtrace());
  }
}

}  // namespace netdist::dit
