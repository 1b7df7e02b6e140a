#include "nodes/model_patch_nodes.h"

#include "netdist/model_patches.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

// ComfyUI's LoraLoaderModelOnly(LoraLoader): LoraLoader's description and (both) output tooltips are
// inherited, as /object_info shows them.
void add_lora_loader_model_only(graph::NodeRegistry& r, const std::shared_ptr<NodeEnv>& env) {
  graph::InputSpec name = graph::combo_input("lora_name", {});
  name.options_provider = [env] { return env->lora_names(); };
  graph::NodeSchema s = make_schema("LoraLoaderModelOnly", "LoraLoaderModelOnly", "loaders",
                                    {graph::link_input("model", "MODEL"), name,
                                     graph::float_input("strength_model", 1.0, -100.0, 100.0, 0.01)},
                                    {"MODEL"});
  s.description =
      "LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are denoised "
      "such as applying styles. Multiple LoRA nodes can be linked together.";
  s.output_tooltips = {"The modified diffusion model.", "The modified CLIP model."};
  add_fn_node(r, s, [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto m, need<ModelObject>(in, "model"));
    const double strength = in.get_float("strength_model");
    if (strength == 0.0) return std::vector<Value>{object(m)};
    const std::string lora_name = in.get_string("lora_name");
    ND_ASSIGN_OR_RETURN(std::string path, in_node(env->lora_path(lora_name), "LoraLoaderModelOnly"));
    auto out = std::make_shared<ModelObject>(*m);
    ND_ASSIGN_OR_RETURN(out->model,
                        in_node(apply_lora(m->model, path, strength, 0.0), "LoraLoaderModelOnly"));
    out->name += " + " + lora_name;
    return std::vector<Value>{object(out)};
  });
}

Result<std::vector<Value>> model_patch_output(const NodeInputs& in, const ModelPatchSpec& spec,
                                              const std::string& class_type) {
  ND_ASSIGN_OR_RETURN(auto m, need<ModelObject>(in, "model"));
  auto out = std::make_shared<ModelObject>(*m);
  ND_ASSIGN_OR_RETURN(out->model, in_node(with_model_patch(m->model, spec), class_type));
  return std::vector<Value>{object(out)};
}

void add_freeu_nodes(graph::NodeRegistry& r) {
  for (const bool v2 : {false, true}) {
    const std::string name = v2 ? "FreeU_V2" : "FreeU";
    graph::NodeSchema s = make_schema(
        name, name, "model_patches/unet",
        {graph::link_input("model", "MODEL"), graph::float_input("b1", v2 ? 1.3 : 1.1, 0.0, 10.0, 0.01),
         graph::float_input("b2", v2 ? 1.4 : 1.2, 0.0, 10.0, 0.01),
         graph::float_input("s1", 0.9, 0.0, 10.0, 0.01), graph::float_input("s2", 0.2, 0.0, 10.0, 0.01)},
        {"MODEL"});
    s.python_module = "comfy_extras.nodes_freelunch";
    add_fn_node(r, s, [name, v2](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
      ModelPatchSpec spec;
      spec.kind = v2 ? ModelPatchSpec::Kind::kFreeUV2 : ModelPatchSpec::Kind::kFreeU;
      spec.b1 = in.get_float("b1");
      spec.b2 = in.get_float("b2");
      spec.s1 = in.get_float("s1");
      spec.s2 = in.get_float("s2");
      return model_patch_output(in, spec, name);
    });
  }
}

void add_rescale_cfg_node(graph::NodeRegistry& r) {
  graph::NodeSchema s = make_schema(
      "RescaleCFG", "RescaleCFG", "advanced/model",
      {graph::link_input("model", "MODEL"), graph::float_input("multiplier", 0.7, 0.0, 1.0, 0.01)},
      {"MODEL"});
  s.python_module = "comfy_extras.nodes_model_advanced";
  add_fn_node(r, s, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ModelPatchSpec spec;
    spec.kind = ModelPatchSpec::Kind::kRescaleCfg;
    spec.multiplier = in.get_float("multiplier");
    return model_patch_output(in, spec, "RescaleCFG");
  });
}

}  // namespace

void register_model_patch_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env) {
  add_lora_loader_model_only(registry, env);
  add_freeu_nodes(registry);
  add_rescale_cfg_node(registry);
}

}  // namespace netdist::nodes
