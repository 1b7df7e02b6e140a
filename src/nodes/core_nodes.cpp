#include "nodes/core_nodes.h"

#include "core/base64.h"
#include "engine/runtime/tensor_io.h"
#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"
#include "nodes/conditioning_ops_nodes.h"
#include "nodes/controlnet_nodes.h"
#include "nodes/custom_sampling_nodes.h"
#include "nodes/image_nodes.h"
#include "nodes/image_ops_nodes.h"
#include "nodes/inpaint_nodes.h"
#include "nodes/latent_ops_nodes.h"
#include "nodes/mask_nodes.h"
#include "nodes/model_nodes.h"
#include "nodes/model_patch_nodes.h"
#include "nodes/model_tile_nodes.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/sdxl_text_nodes.h"
#include "nodes/step_group_binding.h"
#include "nodes/tiled_diffusion_nodes.h"
#include "nodes/upscale_nodes.h"
#include "nodes/usdu_nodes.h"
#include "nodes/usdu_tile_node.h"

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

constexpr int64_t kMaxResolution = 16384;

NodeSchema schema(std::string class_type, std::string display, std::string category,
                  std::vector<graph::InputSpec> required, std::vector<std::string> outputs) {
  return make_schema(std::move(class_type), std::move(display), std::move(category), std::move(required),
                     std::move(outputs));
}

graph::InputSpec sampler_combo(std::string name) {
  graph::InputSpec s = graph::combo_input(std::move(name), {});
  s.options_provider = [] { return sampling::supported_sampler_names(); };
  return s;
}

graph::InputSpec scheduler_combo(std::string name) { return graph::combo_input(std::move(name), sampling::scheduler_names()); }

Result<std::vector<Value>> run_ksampler(NodeContext& ctx, const NodeInputs& in, SampleRequest req,
                                        const std::string& class_type) {
  ND_ASSIGN_OR_RETURN(auto model, need<ModelObject>(in, "model"));
  ND_ASSIGN_OR_RETURN(auto positive, need<ConditioningObject>(in, "positive"));
  ND_ASSIGN_OR_RETURN(auto negative, need<ConditioningObject>(in, "negative"));
  ND_ASSIGN_OR_RETURN(auto latent, need<LatentObject>(in, "latent_image"));
  req.steps = static_cast<int>(in.get_int("steps"));
  req.cfg = in.get_float("cfg");
  req.sampler = in.get_string("sampler_name");
  req.scheduler = in.get_string("scheduler");
  req.latent = latent->samples;
  req.batch_index = latent->batch_index;
  req.noise_mask = latent->noise_mask;
  if (in.has("row_begin")) {
    req.row_begin = in.get_int("row_begin");
    req.row_end = in.get_int("row_end");
  }
  Status progress_status;
  ProgressFn progress = [&](int step, int total) {
    progress_status = ctx.progress(step, total);
    return progress_status.is_ok();
  };
  apply_step_group(ctx.prompt_id(), model->tiled, req);  // a cluster worker's group member (step_group_binding.h)
  auto sampled = sample(*model->model, positive->conditioning, negative->conditioning, req, progress);
  if (!progress_status.is_ok()) return progress_status;
  if (!sampled.is_ok()) return sampled.status().with_context(class_type);
  auto out = std::make_shared<LatentObject>(*latent);
  out->samples = std::move(*sampled);
  return std::vector<Value>{object(out)};
}

void add_loaders(graph::NodeRegistry& r, const std::shared_ptr<NodeEnv>& env) {
  graph::InputSpec ckpt = graph::combo_input("ckpt_name", {});
  ckpt.options_provider = [env] { return env->checkpoint_names(); };
  ckpt.tooltip = "The name of the checkpoint (model) to load.";
  NodeSchema s = schema("CheckpointLoaderSimple", "Load Checkpoint", "loaders", {ckpt}, {"MODEL", "CLIP", "VAE"});
  s.description = "Loads a diffusion model checkpoint, diffusion models are used to denoise latents.";
  add_fn_node(r, s, [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    const std::string name = in.get_string("ckpt_name");
    ND_ASSIGN_OR_RETURN(std::shared_ptr<Model> model, in_node(env->load_checkpoint(name), "CheckpointLoaderSimple"));
    auto m = std::make_shared<ModelObject>();
    m->model = model;
    m->name = name;
    auto c = std::make_shared<ClipObject>();
    c->model = model;
    c->name = name;
    auto v = std::make_shared<VaeObject>();
    v->model = model;
    v->name = name;
    return std::vector<Value>{object(m), object(c), object(v)};
  });
}

void add_conditioning(graph::NodeRegistry& r) {
  graph::InputSpec text = graph::string_input("text", nullptr, true);
  text.extra["dynamicPrompts"] = true;
  text.tooltip = "The text to be encoded.";
  add_fn_node(r, schema("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning", {text, link_input("clip", "CLIP")},
                        {"CONDITIONING"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto clip, need<ClipObject>(in, "clip"));
                ND_ASSIGN_OR_RETURN(Conditioning cond, encode_prompt(*clip->model, in.get_string("text"), clip->clip_layer));
                auto out = std::make_shared<ConditioningObject>();
                out->conditioning = std::move(cond);
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r, schema("CLIPSetLastLayer", "CLIP Set Last Layer", "conditioning",
                        {link_input("clip", "CLIP"), int_input("stop_at_clip_layer", -1, -24, -1, 1)}, {"CLIP"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto clip, need<ClipObject>(in, "clip"));
                auto out = std::make_shared<ClipObject>(*clip);
                out->clip_layer = static_cast<int>(in.get_int("stop_at_clip_layer"));
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r, schema("ConditioningCombine", "Conditioning (Combine)", "conditioning",
                        {link_input("conditioning_1", "CONDITIONING"), link_input("conditioning_2", "CONDITIONING")},
                        {"CONDITIONING"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto a, need<ConditioningObject>(in, "conditioning_1"));
                ND_ASSIGN_OR_RETURN(auto b, need<ConditioningObject>(in, "conditioning_2"));
                auto out = std::make_shared<ConditioningObject>(*a);
                out->conditioning.insert(out->conditioning.end(), b->conditioning.begin(), b->conditioning.end());
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r, schema("ConditioningSetArea", "Conditioning (Set Area)", "conditioning",
                        {link_input("conditioning", "CONDITIONING"), int_input("width", 64, 64, kMaxResolution, 8),
                         int_input("height", 64, 64, kMaxResolution, 8), int_input("x", 0, 0, kMaxResolution, 8),
                         int_input("y", 0, 0, kMaxResolution, 8), float_input("strength", 1.0, 0.0, 10.0, 0.01)},
                        {"CONDITIONING"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto c, need<ConditioningObject>(in, "conditioning"));
                auto out = std::make_shared<ConditioningObject>(*c);
                const std::array<int, 4> area = {static_cast<int>(in.get_int("height")), static_cast<int>(in.get_int("width")),
                                                 static_cast<int>(in.get_int("y")), static_cast<int>(in.get_int("x"))};
                for (CondEntry& e : out->conditioning) {
                  e.area = area;
                  e.area_percent.reset();  // one "area" key in ComfyUI
                  e.set_area_to_bounds = false;
                  e.strength = static_cast<float>(in.get_float("strength"));
                }
                return std::vector<Value>{object(out)};
              });
}

// A LATENT with at least one row and, when it has a batch_index, one entry per row (a latent file can hold
// zero rows; the batch nodes index both).
Status has_rows(const LatentObject& latent, const std::string& class_type) {
  const int64_t n = latent.samples.defined() && latent.samples.dim() >= 1 ? latent.samples.size(0) : 0;
  if (n < 1) return Status::invalid_argument(class_type + ": samples has no rows");
  if (latent.batch_index && static_cast<int64_t>(latent.batch_index->size()) != n) {
    return Status::invalid_argument(class_type + ": samples has " + std::to_string(n) + " rows and a batch_index of " +
                                    std::to_string(latent.batch_index->size()));
  }
  return Status::ok();
}

// LatentFromBatch's noise_mask (nodes.py): a one-row mask as it is, else its rows [start, start + length)
// after repeating it to the latent's n rows.
at::Tensor latent_batch_mask(const at::Tensor& mask, int64_t n, int64_t start, int64_t length) {
  if (!mask.defined()) return mask;
  if (mask.size(0) == 1) return mask.clone();
  at::Tensor m = mask;
  if (m.size(0) < n) {
    std::vector<int64_t> reps(static_cast<size_t>(m.dim()), 1);
    reps[0] = (n + m.size(0) - 1) / m.size(0);
    m = m.repeat(reps).slice(0, 0, n);
  }
  return m.slice(0, start, start + length).clone();
}

void add_latent(graph::NodeRegistry& r) {
  add_fn_node(r, schema("EmptyLatentImage", "Empty Latent Image", "latent",
                        {int_input("width", 512, 16, kMaxResolution, 8), int_input("height", 512, 16, kMaxResolution, 8),
                         int_input("batch_size", 1, 1, 4096)},
                        {"LATENT"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                auto out = std::make_shared<LatentObject>();
                out->samples = at::zeros({in.get_int("batch_size"), 4, in.get_int("height") / 8, in.get_int("width") / 8});
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r, schema("LatentFromBatch", "Latent From Batch", "latent/batch",
                        {link_input("samples", "LATENT"), int_input("batch_index", 0, 0, 63), int_input("length", 1, 1, 64)},
                        {"LATENT"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
                ND_RETURN_IF_ERROR(has_rows(*s, "LatentFromBatch"));
                const int64_t n = s->samples.size(0);
                const int64_t start = std::min(n - 1, in.get_int("batch_index"));
                const int64_t length = std::min(n - start, in.get_int("length"));
                auto out = std::make_shared<LatentObject>();
                out->samples = s->samples.slice(0, start, start + length).clone();
                std::vector<int64_t> index;
                for (int64_t i = start; i < start + length; ++i) index.push_back(s->batch_index ? (*s->batch_index)[i] : i);
                out->batch_index = index;
                out->noise_mask = latent_batch_mask(s->noise_mask, n, start, length);
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r, schema("RepeatLatentBatch", "Repeat Latent Batch", "latent/batch",
                        {link_input("samples", "LATENT"), int_input("amount", 1, 1, 64)}, {"LATENT"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
                ND_RETURN_IF_ERROR(has_rows(*s, "RepeatLatentBatch"));
                const int64_t amount = in.get_int("amount");
                auto out = std::make_shared<LatentObject>();
                out->samples = s->samples.repeat({amount, 1, 1, 1});
                out->noise_mask = s->noise_mask;  // ComfyUI repeats a mask of several rows, keeps one of one
                if (s->noise_mask.defined() && s->noise_mask.size(0) > 1) {
                  std::vector<int64_t> reps(static_cast<size_t>(s->noise_mask.dim()), 1);
                  reps[0] = amount;
                  out->noise_mask = s->noise_mask.repeat(reps);
                }
                if (s->batch_index) {
                  const auto& b = *s->batch_index;
                  const int64_t offset = *std::max_element(b.begin(), b.end()) - *std::min_element(b.begin(), b.end()) + 1;
                  std::vector<int64_t> index;
                  for (int64_t k = 0; k < amount; ++k)
                    for (int64_t v : b) index.push_back(v + k * offset);
                  out->batch_index = index;
                }
                return std::vector<Value>{object(out)};
              });
}

std::vector<graph::InputSpec> ksampler_inputs() {
  graph::InputSpec seed = int_input("seed", 0, 0, Json(uint64_t(0xffffffffffffffffULL)));
  seed.extra["control_after_generate"] = true;
  std::vector<graph::InputSpec> inputs = {link_input("model", "MODEL"),
                                          seed,
                                          int_input("steps", 20, 1, 10000),
                                          float_input("cfg", 8.0, 0.0, 100.0, 0.1, 0.01),
                                          sampler_combo("sampler_name"),
                                          scheduler_combo("scheduler"),
                                          link_input("positive", "CONDITIONING"),
                                          link_input("negative", "CONDITIONING"),
                                          link_input("latent_image", "LATENT"),
                                          float_input("denoise", 1.0, 0.0, 1.0, 0.01)};
  return inputs;
}

std::vector<graph::InputSpec> ksampler_advanced_inputs() {
  graph::InputSpec noise_seed = int_input("noise_seed", 0, 0, Json(uint64_t(0xffffffffffffffffULL)));
  noise_seed.extra["control_after_generate"] = true;
  std::vector<graph::InputSpec> adv = {link_input("model", "MODEL"),
                                       graph::combo_input("add_noise", {"enable", "disable"}),
                                       noise_seed,
                                       int_input("steps", 20, 1, 10000),
                                       float_input("cfg", 8.0, 0.0, 100.0, 0.1, 0.01),
                                       sampler_combo("sampler_name"),
                                       scheduler_combo("scheduler"),
                                       link_input("positive", "CONDITIONING"),
                                       link_input("negative", "CONDITIONING"),
                                       link_input("latent_image", "LATENT"),
                                       int_input("start_at_step", 0, 0, 10000),
                                       int_input("end_at_step", 10000, 0, 10000),
                                       graph::combo_input("return_with_leftover_noise", {"disable", "enable"})};
  return adv;
}

Result<std::vector<Value>> run_ksampler_node(NodeContext& ctx, const NodeInputs& in) {
  SampleRequest req;
  req.seed = in.get_uint64("seed");
  req.denoise = in.get_float("denoise");
  return run_ksampler(ctx, in, req, "KSampler");
}

Result<std::vector<Value>> run_ksampler_advanced_node(NodeContext& ctx, const NodeInputs& in) {
  SampleRequest req;
  req.seed = in.get_uint64("noise_seed");
  req.add_noise = in.get_string("add_noise") != "disable";
  req.start_step = static_cast<int>(in.get_int("start_at_step"));
  req.last_step = static_cast<int>(in.get_int("end_at_step"));
  req.force_full_denoise = in.get_string("return_with_leftover_noise") != "enable";
  return run_ksampler(ctx, in, req, "KSamplerAdvanced");
}

void add_samplers(graph::NodeRegistry& r) {
  NodeSchema ks = schema("KSampler", "KSampler", "sampling", ksampler_inputs(), {"LATENT"});
  ks.description = "Uses the provided model, positive and negative conditioning to denoise the latent image.";
  add_fn_node(r, ks, run_ksampler_node);
  add_fn_node(r, schema("KSamplerAdvanced", "KSampler (Advanced)", "sampling", ksampler_advanced_inputs(), {"LATENT"}),
              run_ksampler_advanced_node);
}

void add_vae(graph::NodeRegistry& r) {
  add_fn_node(r, schema("VAEDecode", "VAE Decode", "latent", {link_input("samples", "LATENT"), link_input("vae", "VAE")},
                        {"IMAGE"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
                ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
                auto out = std::make_shared<ImageObject>();
                ND_ASSIGN_OR_RETURN(out->images, in_node(decode(*vae->model, s->samples), "VAEDecode"));
                return std::vector<Value>{object(out)};
              });
  add_fn_node(r, schema("VAEEncode", "VAE Encode", "latent", {link_input("pixels", "IMAGE"), link_input("vae", "VAE")},
                        {"LATENT"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto px, need<ImageObject>(in, "pixels"));
                ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
                auto out = std::make_shared<LatentObject>();
                ND_ASSIGN_OR_RETURN(out->samples, in_node(encode(*vae->model, px->images), "VAEEncode"));
                return std::vector<Value>{object(out)};
              });
}

}  // namespace

void register_shard_nodes(graph::NodeRegistry& r) {
  const std::vector<graph::InputSpec> rows = {int_input("row_begin", 0, 0, 4096), int_input("row_end", 1, 1, 4096)};
  std::vector<graph::InputSpec> ks = ksampler_inputs(), adv = ksampler_advanced_inputs();
  ks.insert(ks.end(), rows.begin(), rows.end());
  adv.insert(adv.end(), rows.begin(), rows.end());
  add_fn_node(r, schema(kShardKSampler, "KSampler rows (netdist shard)", "netdist/internal", ks, {"LATENT"}),
              run_ksampler_node);
  add_fn_node(r, schema(kShardKSamplerAdvanced, "KSampler (Advanced) rows (netdist shard)", "netdist/internal", adv,
                        {"LATENT"}),
              run_ksampler_advanced_node);
  NodeSchema out = schema(kShardLatentOutput, "Latent output (netdist shard)", "netdist/internal",
                          {link_input("samples", "LATENT")}, {});
  out.output_node = true;
  add_fn_node(r, out, [](NodeContext& ctx, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
    ND_ASSIGN_OR_RETURN(std::string bytes, runtime::weights_to_buffer({{"samples", s->samples.contiguous()}}));
    ctx.set_ui_output(Json{{"netdist_latent", Json::array({base64_encode(bytes)})}});
    return std::vector<Value>{};
  });
  register_usdu_tile_node(r);  // cluster tile tasks (cluster/tile_jobs.h)
  register_model_tile_nodes(r);  // upscale-model and VAE tiles as tile tasks (cluster/model_tiles.h)
}

void register_core_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env) {
  add_loaders(registry, env);
  add_conditioning(registry);
  add_latent(registry);
  add_samplers(registry);
  add_vae(registry);
  register_image_nodes(registry, env);
  register_upscale_nodes(registry);
  register_usdu_nodes(registry);
  register_model_nodes(registry, env);
  register_tiled_diffusion_nodes(registry);
  register_custom_sampling_nodes(registry);
  register_mask_nodes(registry, env);  // issue #20: mask, latent, image and conditioning operations
  register_latent_ops_nodes(registry);
  register_image_ops_nodes(registry);
  register_conditioning_ops_nodes(registry);
  register_inpaint_nodes(registry);
  register_sdxl_text_nodes(registry);
  register_controlnet_nodes(registry, env);  // issue #20: ControlNet
  register_model_patch_nodes(registry, env);  // issue #20: LoraLoaderModelOnly, FreeU, RescaleCFG
}

}  // namespace netdist::nodes
