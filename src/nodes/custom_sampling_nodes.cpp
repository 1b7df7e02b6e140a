#include "nodes/custom_sampling_nodes.h"

#include <algorithm>
#include <tuple>

#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

using graph::float_input;
using graph::int_input;
using graph::Json;
using graph::link_input;
using graph::NodeContext;
using graph::NodeInputs;
using graph::NodeSchema;
using graph::Value;

namespace {

constexpr const char* kCustomSamplerModule = "comfy_extras.nodes_custom_sampler";
constexpr const char* kModelAdvancedModule = "comfy_extras.nodes_model_advanced";
constexpr int64_t kCustomSamplingMaxResolution = 16384;
// BasicScheduler: int(steps / denoise) schedules longer than this are refused (as make_sigmas does).
constexpr double kCustomSamplingMaxSteps = 1e6;

NodeSchema custom_sampling_schema(std::string class_type, std::string category,
                                  std::vector<graph::InputSpec> required, std::vector<std::string> outputs,
                                  const char* module) {
  NodeSchema s =
      make_schema(class_type, class_type, std::move(category), std::move(required), std::move(outputs));
  s.python_module = module;
  return s;
}

graph::InputSpec custom_sampling_seed(std::string name) {
  return int_input(std::move(name), 0, 0, Json(uint64_t(0xffffffffffffffffULL)));
}

graph::InputSpec custom_sampling_cfg() { return float_input("cfg", 8.0, 0.0, 100.0, 0.1, 0.01); }

std::shared_ptr<SigmasObject> sigmas_object(at::Tensor sigmas) {
  auto out = std::make_shared<SigmasObject>();
  out->sigmas = std::move(sigmas);
  return out;
}

// A MODEL output: `model` re-sampled by `spec`, named like its input.
Result<std::vector<Value>> patched_model(const NodeInputs& in, const ModelSamplingSpec& spec,
                                         const std::string& class_type) {
  ND_ASSIGN_OR_RETURN(auto model, need<ModelObject>(in, "model"));
  ND_ASSIGN_OR_RETURN(std::shared_ptr<Model> patched,
                      in_node(with_model_sampling(model->model, spec), class_type));
  auto out = std::make_shared<ModelObject>(*model);
  out->model = std::move(patched);
  return std::vector<Value>{object(out)};
}

void add_model_sampling_nodes(graph::NodeRegistry& r) {
  add_fn_node(r,
              custom_sampling_schema("ModelSamplingDiscrete", "advanced/model",
                                     {link_input("model", "MODEL"),
                                      graph::combo_input("sampling", {"eps", "v_prediction", "lcm", "x0"}),
                                      graph::bool_input("zsnr", false)},
                                     {"MODEL"}, kModelAdvancedModule),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ModelSamplingSpec spec;
                spec.prediction = in.get_string("sampling");
                spec.zsnr = in.get_bool("zsnr");
                return patched_model(in, spec, "ModelSamplingDiscrete");
              });
  for (const auto& [class_type, shift, multiplier] :
       {std::tuple<const char*, double, double>{"ModelSamplingSD3", 3.0, 1000.0},
        std::tuple<const char*, double, double>{"ModelSamplingAuraFlow", 1.73, 1.0}}) {
    const std::string name = class_type;
    const double mult = multiplier;
    add_fn_node(
        r,
        custom_sampling_schema(name, "advanced/model",
                               {link_input("model", "MODEL"), float_input("shift", shift, 0.0, 100.0, 0.01)},
                               {"MODEL"}, kModelAdvancedModule),
        [name, mult](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
          ModelSamplingSpec spec;
          spec.kind = ModelSamplingSpec::Kind::kDiscreteFlow;
          spec.shift = in.get_float("shift");
          spec.multiplier = mult;
          return patched_model(in, spec, name);
        });
  }
  add_fn_node(
      r,
      custom_sampling_schema("ModelSamplingFlux", "advanced/model",
                             {link_input("model", "MODEL"), float_input("max_shift", 1.15, 0.0, 100.0, 0.01),
                              float_input("base_shift", 0.5, 0.0, 100.0, 0.01),
                              int_input("width", 1024, 16, kCustomSamplingMaxResolution, 8),
                              int_input("height", 1024, 16, kCustomSamplingMaxResolution, 8)},
                             {"MODEL"}, kModelAdvancedModule),
      [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        // ComfyUI: the shift is linear in the number of 2×2 latent patches, 256 → base, 4096 → max.
        const double x1 = 256, x2 = 4096;
        const double max_shift = in.get_float("max_shift"), base_shift = in.get_float("base_shift");
        const double mm = (max_shift - base_shift) / (x2 - x1);
        const double b = base_shift - mm * x1;
        const double patches =
            static_cast<double>(in.get_int("width") * in.get_int("height")) / (8 * 8 * 2 * 2);
        ModelSamplingSpec spec;
        spec.kind = ModelSamplingSpec::Kind::kFlux;
        spec.shift = patches * mm + b;
        return patched_model(in, spec, "ModelSamplingFlux");
      });
}

Result<std::vector<Value>> run_basic_scheduler(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto model, need<ModelObject>(in, "model"));
  const int64_t steps = in.get_int("steps");
  const double denoise = in.get_float("denoise");
  int64_t total_steps = steps;
  if (denoise < 1.0) {
    if (denoise <= 0.0) return std::vector<Value>{object(sigmas_object(at::empty({0}, at::kFloat)))};
    if (steps / denoise > kCustomSamplingMaxSteps) {
      return Status::invalid_argument("BasicScheduler: denoise " + std::to_string(denoise) + " with " +
                                      std::to_string(steps) +
                                      " steps needs a schedule of more than 1e6 steps");
    }
    total_steps = static_cast<int64_t>(steps / denoise);
  }
  ND_ASSIGN_OR_RETURN(at::Tensor sigmas, in_node(model_sigmas(*model->model, in.get_string("scheduler"),
                                                              static_cast<int>(total_steps)),
                                                 "BasicScheduler"));
  const int64_t keep = std::min<int64_t>(steps + 1, sigmas.size(0));
  return std::vector<Value>{object(sigmas_object(sigmas.slice(0, sigmas.size(0) - keep).clone()))};
}

void add_schedule_nodes(graph::NodeRegistry& r) {
  graph::InputSpec sampler = graph::combo_input("sampler_name", {});
  sampler.options_provider = [] { return sampling::supported_sampler_names(); };
  add_fn_node(r,
              custom_sampling_schema("KSamplerSelect", "sampling/custom_sampling/samplers", {sampler},
                                     {"SAMPLER"}, kCustomSamplerModule),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                auto out = std::make_shared<SamplerObject>();
                out->sampler_name = in.get_string("sampler_name");
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r,
              custom_sampling_schema(
                  "BasicScheduler", "sampling/custom_sampling/schedulers",
                  {link_input("model", "MODEL"), graph::combo_input("scheduler", sampling::scheduler_names()),
                   int_input("steps", 20, 1, 10000), float_input("denoise", 1.0, 0.0, 1.0, 0.01)},
                  {"SIGMAS"}, kCustomSamplerModule),
              run_basic_scheduler);
  NodeSchema split = custom_sampling_schema("SplitSigmas", "sampling/custom_sampling/sigmas",
                                            {link_input("sigmas", "SIGMAS"), int_input("step", 0, 0, 10000)},
                                            {"SIGMAS", "SIGMAS"}, kCustomSamplerModule);
  split.output_names = {"high_sigmas", "low_sigmas"};
  add_fn_node(r, split, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto s, need<SigmasObject>(in, "sigmas"));
    const int64_t step = in.get_int("step");
    return std::vector<Value>{object(sigmas_object(s->sigmas.slice(0, 0, step + 1))),
                              object(sigmas_object(s->sigmas.slice(0, step)))};
  });
  add_fn_node(r,
              custom_sampling_schema("FlipSigmas", "sampling/custom_sampling/sigmas",
                                     {link_input("sigmas", "SIGMAS")}, {"SIGMAS"}, kCustomSamplerModule),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto s, need<SigmasObject>(in, "sigmas"));
                if (s->sigmas.numel() == 0) return std::vector<Value>{object(sigmas_object(s->sigmas))};
                at::Tensor flipped = s->sigmas.flip(0);
                if (flipped[0].item<double>() == 0) flipped[0] = 0.0001;
                return std::vector<Value>{object(sigmas_object(flipped))};
              });
}

void add_noise_and_guider_nodes(graph::NodeRegistry& r) {
  add_fn_node(r,
              custom_sampling_schema("RandomNoise", "sampling/custom_sampling/noise",
                                     {custom_sampling_seed("noise_seed")}, {"NOISE"}, kCustomSamplerModule),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                auto out = std::make_shared<NoiseObject>();
                out->seed = in.get_uint64("noise_seed");
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r,
              custom_sampling_schema("DisableNoise", "sampling/custom_sampling/noise", {}, {"NOISE"},
                                     kCustomSamplerModule),
              [](NodeContext&, const NodeInputs&) -> Result<std::vector<Value>> {
                auto out = std::make_shared<NoiseObject>();
                out->add_noise = false;
                return std::vector<Value>{object(out)};
              });
  add_fn_node(
      r,
      custom_sampling_schema("BasicGuider", "sampling/custom_sampling/guiders",
                             {link_input("model", "MODEL"), link_input("conditioning", "CONDITIONING")},
                             {"GUIDER"}, kCustomSamplerModule),
      [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto model, need<ModelObject>(in, "model"));
        ND_ASSIGN_OR_RETURN(auto cond, need<ConditioningObject>(in, "conditioning"));
        auto out = std::make_shared<GuiderObject>();
        out->model = model->model;
        out->name = model->name;
        out->positive = cond->conditioning;
        return std::vector<Value>{object(out)};
      });
  add_fn_node(r,
              custom_sampling_schema("CFGGuider", "sampling/custom_sampling/guiders",
                                     {link_input("model", "MODEL"), link_input("positive", "CONDITIONING"),
                                      link_input("negative", "CONDITIONING"), custom_sampling_cfg()},
                                     {"GUIDER"}, kCustomSamplerModule),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto model, need<ModelObject>(in, "model"));
                ND_ASSIGN_OR_RETURN(auto positive, need<ConditioningObject>(in, "positive"));
                ND_ASSIGN_OR_RETURN(auto negative, need<ConditioningObject>(in, "negative"));
                auto out = std::make_shared<GuiderObject>();
                out->model = model->model;
                out->name = model->name;
                out->positive = positive->conditioning;
                out->negative = negative->conditioning;
                out->cfg = in.get_float("cfg");
                return std::vector<Value>{object(out)};
              });
}

// SamplerCustom / SamplerCustomAdvanced once their inputs are resolved: samples `latent` along `sigmas` and
// returns (output, denoised_output).
Result<std::vector<Value>> run_custom_sampler(NodeContext& ctx, const GuiderObject& guider,
                                              const NoiseObject& noise, const std::string& sampler_name,
                                              const at::Tensor& sigmas, const LatentObject& latent,
                                              const std::string& class_type) {
  SampleRequest req;
  req.seed = noise.seed;
  req.add_noise = noise.add_noise;
  req.cfg = guider.cfg;
  req.sampler = sampler_name;
  req.sigmas = sigmas;
  req.latent = latent.samples;
  req.batch_index = latent.batch_index;
  req.noise_mask = latent.noise_mask;
  Status progress_status;
  ProgressFn progress = [&](int step, int total) {
    progress_status = ctx.progress(step, total);
    return progress_status.is_ok();
  };
  auto sampled = sample_with_denoised(*guider.model, guider.positive, guider.negative, req, progress);
  if (!progress_status.is_ok()) return progress_status;
  if (!sampled.is_ok()) return sampled.status().with_context(class_type);
  auto out = std::make_shared<LatentObject>(latent);
  out->samples = std::move(sampled->samples);
  auto denoised = std::make_shared<LatentObject>(latent);
  denoised->samples = std::move(sampled->denoised);
  return std::vector<Value>{object(out), object(denoised)};
}

void add_custom_samplers(graph::NodeRegistry& r) {
  NodeSchema adv = custom_sampling_schema(
      "SamplerCustomAdvanced", "sampling/custom_sampling",
      {link_input("noise", "NOISE"), link_input("guider", "GUIDER"), link_input("sampler", "SAMPLER"),
       link_input("sigmas", "SIGMAS"), link_input("latent_image", "LATENT")},
      {"LATENT", "LATENT"}, kCustomSamplerModule);
  adv.output_names = {"output", "denoised_output"};
  add_fn_node(r, adv, [](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto noise, need<NoiseObject>(in, "noise"));
    ND_ASSIGN_OR_RETURN(auto guider, need<GuiderObject>(in, "guider"));
    ND_ASSIGN_OR_RETURN(auto sampler, need<SamplerObject>(in, "sampler"));
    ND_ASSIGN_OR_RETURN(auto sigmas, need<SigmasObject>(in, "sigmas"));
    ND_ASSIGN_OR_RETURN(auto latent, need<LatentObject>(in, "latent_image"));
    return run_custom_sampler(ctx, *guider, *noise, sampler->sampler_name, sigmas->sigmas, *latent,
                              "SamplerCustomAdvanced");
  });
  NodeSchema custom = custom_sampling_schema(
      "SamplerCustom", "sampling/custom_sampling",
      {link_input("model", "MODEL"), graph::bool_input("add_noise", true), custom_sampling_seed("noise_seed"),
       custom_sampling_cfg(), link_input("positive", "CONDITIONING"), link_input("negative", "CONDITIONING"),
       link_input("sampler", "SAMPLER"), link_input("sigmas", "SIGMAS"),
       link_input("latent_image", "LATENT")},
      {"LATENT", "LATENT"}, kCustomSamplerModule);
  custom.output_names = {"output", "denoised_output"};
  add_fn_node(r, custom, [](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto model, need<ModelObject>(in, "model"));
    ND_ASSIGN_OR_RETURN(auto positive, need<ConditioningObject>(in, "positive"));
    ND_ASSIGN_OR_RETURN(auto negative, need<ConditioningObject>(in, "negative"));
    ND_ASSIGN_OR_RETURN(auto sampler, need<SamplerObject>(in, "sampler"));
    ND_ASSIGN_OR_RETURN(auto sigmas, need<SigmasObject>(in, "sigmas"));
    ND_ASSIGN_OR_RETURN(auto latent, need<LatentObject>(in, "latent_image"));
    GuiderObject guider;
    guider.model = model->model;
    guider.positive = positive->conditioning;
    guider.negative = negative->conditioning;
    guider.cfg = in.get_float("cfg");
    // ComfyUI passes noise_seed to the sampler even without add_noise (per-step noise).
    NoiseObject noise;
    noise.add_noise = in.get_bool("add_noise");
    noise.seed = in.get_uint64("noise_seed");
    return run_custom_sampler(ctx, guider, noise, sampler->sampler_name, sigmas->sigmas, *latent,
                              "SamplerCustom");
  });
}

}  // namespace

void register_custom_sampling_nodes(graph::NodeRegistry& registry) {
  add_model_sampling_nodes(registry);
  add_schedule_nodes(registry);
  add_noise_and_guider_nodes(registry);
  add_custom_samplers(registry);
}

}  // namespace netdist::nodes
