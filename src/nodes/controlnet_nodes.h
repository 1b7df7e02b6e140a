// ComfyUI's ControlNet nodes (nodes.py), with its class names, inputs, defaults and outputs:
//   ControlNetLoader         control_net_name (models_dir/controlnet, recursive) → CONTROL_NET
//   DiffControlNetLoader     model + control_net_name → CONTROL_NET (a diff ControlNet gets the model's UNet)
//   ControlNetApply          (deprecated) conditioning + control_net + image + strength → CONDITIONING, every
//                            entry chained on its previous ControlNet, control_apply_to_uncond set
//   ControlNetApplyAdvanced  positive/negative + control_net + image + strength, start_percent, end_percent
//                            (+ optional vae, unused by SD1.x/SDXL ControlNets as in ComfyUI) → positive,
//                            negative; entries sharing a previous ControlNet share the new one
// strength 0 passes the conditioning through (ComfyUI does). The engine (include/netdist/controlnet.h)
// checks the hint and the model family at sampling, naming the input.
#pragma once

#include <memory>
#include <string>

#include "graph/node_registry.h"
#include "netdist/controlnet.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

// CONTROL_NET.
struct ControlNetObject : graph::Object {
  std::shared_ptr<ControlNet> net;
  std::string name;
  std::string type_name() const override { return "CONTROL_NET"; }
};

void register_controlnet_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

}  // namespace netdist::nodes
