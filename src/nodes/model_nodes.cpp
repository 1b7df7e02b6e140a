#include "nodes/model_nodes.h"

#include "netdist/vae_tiles.h"

#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/upscale_model_nodes.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

void add_lora_loader(graph::NodeRegistry& r, const std::shared_ptr<NodeEnv>& env) {
  graph::InputSpec model = graph::link_input("model", "MODEL");
  model.tooltip = "The diffusion model the LoRA will be applied to.";
  graph::InputSpec clip = graph::link_input("clip", "CLIP");
  clip.tooltip = "The CLIP model the LoRA will be applied to.";
  graph::InputSpec name = graph::combo_input("lora_name", {});
  name.options_provider = [env] { return env->lora_names(); };
  name.tooltip = "The name of the LoRA.";
  graph::InputSpec strength_model = graph::float_input("strength_model", 1.0, -100.0, 100.0, 0.01);
  strength_model.tooltip = "How strongly to modify the diffusion model. This value can be negative.";
  graph::InputSpec strength_clip = graph::float_input("strength_clip", 1.0, -100.0, 100.0, 0.01);
  strength_clip.tooltip = "How strongly to modify the CLIP model. This value can be negative.";
  graph::NodeSchema s = make_schema("LoraLoader", "Load LoRA", "loaders",
                                    {model, clip, name, strength_model, strength_clip}, {"MODEL", "CLIP"});
  s.description =
      "LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are denoised "
      "such as "
      "applying styles. Multiple LoRA nodes can be linked together.";
  s.output_tooltips = {"The modified diffusion model.", "The modified CLIP model."};
  add_fn_node(r, s, [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto m, need<ModelObject>(in, "model"));
    ND_ASSIGN_OR_RETURN(auto c, need<ClipObject>(in, "clip"));
    const double sm = in.get_float("strength_model"), sc = in.get_float("strength_clip");
    if (sm == 0.0 && sc == 0.0) return std::vector<Value>{object(m), object(c)};
    const std::string lora_name = in.get_string("lora_name");
    ND_ASSIGN_OR_RETURN(std::string path, env->lora_path(lora_name));
    auto mo = std::make_shared<ModelObject>(*m);
    auto co = std::make_shared<ClipObject>(*c);
    if (m->model == c->model) {
      ND_ASSIGN_OR_RETURN(std::shared_ptr<Model> patched, apply_lora(m->model, path, sm, sc));
      mo->model = patched;
      co->model = patched;
    } else {
      ND_ASSIGN_OR_RETURN(mo->model, apply_lora(m->model, path, sm, 0.0));
      ND_ASSIGN_OR_RETURN(co->model, apply_lora(c->model, path, 0.0, sc));
    }
    mo->name += " + " + lora_name;
    co->name += " + " + lora_name;
    return std::vector<Value>{object(mo), object(co)};
  });
}

void add_vae_nodes(graph::NodeRegistry& r, const std::shared_ptr<NodeEnv>& env) {
  graph::InputSpec name = graph::combo_input("vae_name", {});
  name.options_provider = [env] { return env->vae_names(); };
  add_fn_node(r, make_schema("VAELoader", "Load VAE", "loaders", {name}, {"VAE"}),
              [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                auto v = std::make_shared<VaeObject>();
                v->name = in.get_string("vae_name");
                ND_ASSIGN_OR_RETURN(v->model, env->load_vae(v->name));
                return std::vector<Value>{object(v)};
              });

  graph::InputSpec temporal_size = graph::int_input("temporal_size", 64, 8, 4096, 4);
  temporal_size.tooltip = "Only used for video VAEs: Amount of frames to decode at a time.";
  graph::InputSpec temporal_overlap = graph::int_input("temporal_overlap", 8, 4, 4096, 4);
  temporal_overlap.tooltip = "Only used for video VAEs: Amount of frames to overlap.";
  add_fn_node(r,
              make_schema("VAEDecodeTiled", "VAE Decode (Tiled)", "_for_testing",
                          {graph::link_input("samples", "LATENT"), graph::link_input("vae", "VAE"),
                           graph::int_input("tile_size", 512, 64, 4096, 32),
                           graph::int_input("overlap", 64, 0, 4096, 32), temporal_size, temporal_overlap},
                          {"IMAGE"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
                ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
                auto out = std::make_shared<ImageObject>();
                ND_ASSIGN_OR_RETURN(out->images, in_node(decode_tiled(*vae->model, s->samples, in.get_int("tile_size"),
                                                                      in.get_int("overlap")),
                                                         "VAEDecodeTiled"));
                return std::vector<Value>{object(out)};
              });

  graph::InputSpec encode_temporal_size = graph::int_input("temporal_size", 64, 8, 4096, 4);
  encode_temporal_size.tooltip = "Only used for video VAEs: Amount of frames to encode at a time.";
  add_fn_node(
      r,
      make_schema("VAEEncodeTiled", "VAE Encode (Tiled)", "_for_testing",
                  {graph::link_input("pixels", "IMAGE"), graph::link_input("vae", "VAE"),
                   graph::int_input("tile_size", 512, 64, 4096, 64),
                   graph::int_input("overlap", 64, 0, 4096, 32), encode_temporal_size, temporal_overlap},
                  {"LATENT"}),
      [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto px, need<ImageObject>(in, "pixels"));
        ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
        auto out = std::make_shared<LatentObject>();
        ND_ASSIGN_OR_RETURN(
            out->samples,
            in_node(encode_tiled(*vae->model, px->images, in.get_int("tile_size"), in.get_int("overlap")),
                    "VAEEncodeTiled"));
        return std::vector<Value>{object(out)};
      });
}

// ComfyUI's MultiGPU_WorkUnits (comfy_extras/nodes_multigpu.py): the model, prepared for CFG split across up
// to max_gpus devices. netdist has no per-process device clones to make: the model passes through unchanged,
// as in ComfyUI with one GPU. (CFG split itself is the engine's SampleRequest::cfg_split over a step group.)
void add_multigpu_work_units(graph::NodeRegistry& r) {
  graph::NodeSchema s = make_schema(
      "MultiGPU_WorkUnits", "MultiGPU Work Units", "advanced/multigpu",
      {graph::link_input("model", "MODEL"), graph::int_input("max_gpus", 2, 1, nullptr, 1)}, {"MODEL"});
  s.python_module = "comfy_extras.nodes_multigpu";
  s.description =
      "Prepares model to have sampling accelerated via splitting work units.\n\n"
      "Should be placed after nodes that modify the model object itself, such as compile or attention-switch "
      "nodes.\n\nOther than those exceptions, this node can be placed in any order.";
  add_fn_node(r, s, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto m, need<ModelObject>(in, "model"));
    return std::vector<Value>{object(m)};
  });
}

}  // namespace

void register_model_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env) {
  add_lora_loader(registry, env);
  add_vae_nodes(registry, env);
  register_upscale_model_nodes(registry, env);
  add_multigpu_work_units(registry);
}

}  // namespace netdist::nodes
