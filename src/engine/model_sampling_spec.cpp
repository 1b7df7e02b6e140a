// with_model_sampling of include/netdist/engine.h: ComfyUI's ModelSampling* nodes
// (comfy_extras/nodes_model_advanced.py), which object-patch a clone's model_sampling.
#include <cmath>

#include "engine/model.h"
#include "engine/sampling/schedulers.h"

namespace netdist {

namespace {

Result<sampling::ModelSampling> make_model_sampling(const ModelSamplingSpec& spec) {
  using Kind = ModelSamplingSpec::Kind;
  if (spec.kind == Kind::kDiscrete) {
    sampling::DiscreteScheduleConfig config;
    config.zero_terminal_snr = spec.zsnr;
    if (spec.prediction == "eps") return sampling::ModelSampling(sampling::Prediction::kEps, config);
    if (spec.prediction == "v_prediction")
      return sampling::ModelSampling(sampling::Prediction::kVPrediction, config);
    if (spec.prediction == "x0") return sampling::ModelSampling(sampling::Prediction::kX0, config);
    if (spec.prediction == "lcm") return Status::unsupported("sampling 'lcm' is not supported yet");
    return Status::invalid_argument("sampling '" + spec.prediction +
                                    "' is not one of eps, v_prediction, lcm, x0");
  }
  if (!std::isfinite(spec.shift)) return Status::invalid_argument("shift is not a finite number");
  if (spec.kind == Kind::kFlux) return sampling::ModelSampling::flux(spec.shift);
  if (!(spec.shift > 0)) {
    return Status::invalid_argument("shift " + std::to_string(spec.shift) +
                                    " must be > 0 (the flow schedule is 0 or NaN otherwise)");
  }
  if (!(spec.multiplier > 0) || !std::isfinite(spec.multiplier))
    return Status::invalid_argument("multiplier " + std::to_string(spec.multiplier) + " must be > 0");
  return sampling::ModelSampling::discrete_flow(spec.shift, spec.multiplier);
}

}  // namespace

Result<std::shared_ptr<Model>> with_model_sampling(const std::shared_ptr<Model>& model,
                                                   const ModelSamplingSpec& spec) {
  if (!model) return Status::invalid_argument("model sampling: no model");
  if (model->unet_.is_empty())
    return Status::invalid_argument("model sampling: " + model->path_ + " has no diffusion model");
  ND_ASSIGN_OR_RETURN(sampling::ModelSampling ms, make_model_sampling(spec));
  auto out = std::make_shared<Model>(*model);
  out->sampling_ = std::make_shared<sampling::ModelSampling>(std::move(ms));
  return out;
}

Result<at::Tensor> model_sigmas(const Model& model, const std::string& scheduler, int steps) {
  if (!model.sampling_)
    return Status::invalid_argument("schedule: " + model.path_ + " has no diffusion model");
  if (steps < 1) return Status::invalid_argument("steps must be >= 1, got " + std::to_string(steps));
  return sampling::calculate_sigmas(*model.sampling_, scheduler, steps);
}

}  // namespace netdist
