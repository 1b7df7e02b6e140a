#include "nodes/sdxl_text_nodes.h"

#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

namespace {

constexpr int64_t kSdxlTextMaxResolution = 16384;

graph::InputSpec sdxl_size_input(const std::string& name, double default_value) {
  // ComfyUI writes these INT defaults as floats (1024.0), and /object_info shows them so.
  return graph::int_input(name, default_value == 0 ? graph::Json(0) : graph::Json(default_value), 0,
                          kSdxlTextMaxResolution);
}

graph::InputSpec sdxl_text_input(const std::string& name) {
  graph::InputSpec s = graph::string_input(name, nullptr, true);
  s.extra["dynamicPrompts"] = true;
  return s;
}

Result<std::vector<graph::Value>> clip_text_encode_sdxl(graph::NodeContext&, const graph::NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto clip, need<ClipObject>(in, "clip"));
  AdmSize size;
  size.width = in.get_int("width");
  size.height = in.get_int("height");
  size.crop_w = in.get_int("crop_w");
  size.crop_h = in.get_int("crop_h");
  size.target_width = in.get_int("target_width");
  size.target_height = in.get_int("target_height");
  ND_ASSIGN_OR_RETURN(Conditioning cond,
                      in_node(encode_prompt_sdxl(*clip->model, in.get_string("text_g"), in.get_string("text_l"), size,
                                                 clip->clip_layer),
                              "CLIPTextEncodeSDXL"));
  auto out = std::make_shared<ConditioningObject>();
  out->conditioning = std::move(cond);
  return std::vector<graph::Value>{object(out)};
}

// CLIPTextEncodeSDXLRefiner: the text through the CLIP as CLIPTextEncode, width, height and ascore into the
// refiner's ADM vector.
Result<std::vector<graph::Value>> clip_text_encode_sdxl_refiner(graph::NodeContext&, const graph::NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto clip, need<ClipObject>(in, "clip"));
  ND_ASSIGN_OR_RETURN(Conditioning cond,
                      in_node(encode_prompt(*clip->model, in.get_string("text"), clip->clip_layer),
                              "CLIPTextEncodeSDXLRefiner"));
  AdmSize size;
  size.width = size.target_width = in.get_int("width");
  size.height = size.target_height = in.get_int("height");
  size.aesthetic_score = in.get_float("ascore");
  for (CondEntry& e : cond) e.adm_size = size;
  auto out = std::make_shared<ConditioningObject>();
  out->conditioning = std::move(cond);
  return std::vector<graph::Value>{object(out)};
}

}  // namespace

void register_sdxl_text_nodes(graph::NodeRegistry& r) {
  graph::NodeSchema s = make_schema(
      "CLIPTextEncodeSDXL", "CLIPTextEncodeSDXL", "advanced/conditioning",
      {graph::link_input("clip", "CLIP"), sdxl_size_input("width", 1024.0), sdxl_size_input("height", 1024.0),
       sdxl_size_input("crop_w", 0), sdxl_size_input("crop_h", 0), sdxl_size_input("target_width", 1024.0),
       sdxl_size_input("target_height", 1024.0), sdxl_text_input("text_g"), sdxl_text_input("text_l")},
      {"CONDITIONING"});
  s.python_module = "comfy_extras.nodes_clip_sdxl";
  add_fn_node(r, s, clip_text_encode_sdxl);
  graph::NodeSchema refiner = make_schema(
      "CLIPTextEncodeSDXLRefiner", "CLIPTextEncodeSDXLRefiner", "advanced/conditioning",
      {graph::float_input("ascore", 6.0, 0.0, 1000.0, 0.01), sdxl_size_input("width", 1024.0),
       sdxl_size_input("height", 1024.0), sdxl_text_input("text"), graph::link_input("clip", "CLIP")},
      {"CONDITIONING"});
  refiner.python_module = "comfy_extras.nodes_clip_sdxl";
  add_fn_node(r, refiner, clip_text_encode_sdxl_refiner);
}

}  // namespace netdist::nodes
