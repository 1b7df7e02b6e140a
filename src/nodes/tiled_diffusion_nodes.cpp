#include "nodes/tiled_diffusion_nodes.h"

#include "netdist/tiled_diffusion.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

namespace {

constexpr int64_t kTiledMaxResolution = 8192;  // the node's MAX_RESOLUTION
constexpr int64_t kTiledLatentScale = 8;       // the node's opt_f

}  // namespace

void register_tiled_diffusion_nodes(graph::NodeRegistry& registry) {
  graph::InputSpec method =
      graph::combo_input("method", {"MultiDiffusion", "Mixture of Diffusers", "SpotDiffusion"});
  method.default_value = "Mixture of Diffusers";
  graph::NodeSchema s = make_schema(
      "TiledDiffusion", "Tiled Diffusion", "_for_testing",
      {graph::link_input("model", "MODEL"), method,
       graph::int_input("tile_width", 96 * kTiledLatentScale, 16, kTiledMaxResolution, 16),
       graph::int_input("tile_height", 96 * kTiledLatentScale, 16, kTiledMaxResolution, 16),
       graph::int_input("tile_overlap", 8 * kTiledLatentScale, 0, 256 * kTiledLatentScale, 4 * kTiledLatentScale),
       graph::int_input("tile_batch_size", 4, 1, kTiledMaxResolution, 1)},
      {"MODEL"});
  s.python_module = "custom_nodes.ComfyUI-TiledDiffusion";
  add_fn_node(registry, s, [](graph::NodeContext&, const graph::NodeInputs& in) -> Result<std::vector<graph::Value>> {
    ND_ASSIGN_OR_RETURN(auto m, need<ModelObject>(in, "model"));
    TiledDiffusionOptions options;
    ND_ASSIGN_OR_RETURN(options.method, parse_tile_method(in.get_string("method")));
    options.tile_width = in.get_int("tile_width");
    options.tile_height = in.get_int("tile_height");
    options.tile_overlap = in.get_int("tile_overlap");
    options.tile_batch_size = in.get_int("tile_batch_size");
    auto mo = std::make_shared<ModelObject>(*m);
    ND_ASSIGN_OR_RETURN(mo->model, apply_tiled_diffusion(m->model, options));
    mo->tiled = true;
    mo->name += " + TiledDiffusion";
    return std::vector<graph::Value>{object(mo)};
  });
}

}  // namespace netdist::nodes
