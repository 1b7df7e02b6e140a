#include "nodes/conditioning_ops_nodes.h"

#include <array>
#include <string>
#include <vector>

#include "core/log.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/ops_common.h"

namespace netdist::nodes {

namespace {

using graph::link_input;
using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

Value cond_ops_value(Conditioning c) {
  auto out = std::make_shared<ConditioningObject>();
  out->conditioning = std::move(c);
  return object(out);
}

// conditioning_from's first entry (ComfyUI uses only that one, with a warning when there are more), with a
// context of [1, L, D]; conditioning_to's contexts must share its D.
Result<const CondEntry*> cond_ops_from(const Conditioning& to, const Conditioning& from, const std::string& class_type) {
  if (from.empty()) return Status::invalid_argument(class_type + ": input 'conditioning_from' has no entries");
  if (from.size() > 1)
    log::warn("Warning: {} conditioning_from contains more than 1 cond, only the first one will actually be applied to "
              "conditioning_to.", class_type);
  const at::Tensor& c = from[0].context;
  if (!c.defined() || c.dim() != 3 || c.size(0) != 1)
    return Status::invalid_argument(class_type + ": input 'conditioning_from' has no [1, L, D] context");
  for (const CondEntry& e : to) {
    if (!e.context.defined() || e.context.dim() != 3 || e.context.size(2) != c.size(2))
      return Status::invalid_argument(class_type + ": input 'conditioning_to' has a context of width " +
                                      (e.context.defined() && e.context.dim() == 3 ? std::to_string(e.context.size(2)) : "?") +
                                      " and 'conditioning_from' one of " + std::to_string(c.size(2)));
  }
  return &from[0];
}

Result<std::vector<Value>> run_conditioning_average(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto to, need<ConditioningObject>(in, "conditioning_to"));
  ND_ASSIGN_OR_RETURN(auto from, need<ConditioningObject>(in, "conditioning_from"));
  ND_ASSIGN_OR_RETURN(const CondEntry* f, cond_ops_from(to->conditioning, from->conditioning, "ConditioningAverage"));
  const double strength = in.get_float("conditioning_to_strength");
  const at::Tensor& cond_from = f->context;
  const at::Tensor& pooled_from = f->pooled;
  Conditioning out;
  for (const CondEntry& e : to->conditioning) {
    const at::Tensor& t1 = e.context;
    at::Tensor t0 = cond_from.slice(1, 0, t1.size(1));
    if (t0.size(1) < t1.size(1)) t0 = at::cat({t0, at::zeros({1, t1.size(1) - t0.size(1), t1.size(2)}, at::kFloat)}, 1);
    CondEntry n = e;
    n.context = t1 * strength + t0 * (1.0 - strength);
    const at::Tensor pooled_to = e.pooled.defined() ? e.pooled : pooled_from;
    if (pooled_from.defined() && pooled_to.defined()) {
      n.pooled = pooled_to * strength + pooled_from * (1.0 - strength);
    } else if (pooled_from.defined()) {
      n.pooled = pooled_from;
    }
    out.push_back(std::move(n));
  }
  return std::vector<Value>{cond_ops_value(std::move(out))};
}

// node_helpers.conditioning_set_values: every entry of `conditioning` with `set` applied.
template <typename Fn>
Result<std::vector<Value>> cond_ops_set(const NodeInputs& in, Fn set) {
  ND_ASSIGN_OR_RETURN(auto c, need<ConditioningObject>(in, "conditioning"));
  Conditioning out = c->conditioning;
  for (CondEntry& e : out) set(e);
  return std::vector<Value>{cond_ops_value(std::move(out))};
}

Result<std::vector<Value>> run_conditioning_set_mask(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto mask, need<MaskObject>(in, "mask"));
  at::Tensor m = mask->mask;
  if (!m.defined() || m.dim() < 2 || m.dim() > 3 || m.numel() == 0 || !at::isFloatingType(m.scalar_type())) {
    return Status::invalid_argument("ConditioningSetMask: input 'mask' must be a non-empty [N, H, W] float mask");
  }
  if (m.dim() < 3) m = m.unsqueeze(0);
  const bool bounds = in.get_string("set_cond_area") != "default";
  const auto strength = static_cast<float>(in.get_float("strength"));
  return cond_ops_set(in, [&](CondEntry& e) {
    e.mask = m;
    e.set_area_to_bounds = bounds;
    e.mask_strength = strength;
  });
}

void add_conditioning_set_nodes(graph::NodeRegistry& r) {
  add_ops_node(r, ops_schema("ConditioningSetMask", "Conditioning (Set Mask)", "conditioning",
                             {link_input("conditioning", "CONDITIONING"), link_input("mask", "MASK"),
                              graph::float_input("strength", 1.0, 0.0, 10.0, 0.01),
                              graph::combo_input("set_cond_area", {"default", "mask bounds"})},
                             {"CONDITIONING"}, "nodes"),
               run_conditioning_set_mask);
  add_ops_node(r, ops_schema("ConditioningSetTimestepRange", "ConditioningSetTimestepRange", "advanced/conditioning",
                             {link_input("conditioning", "CONDITIONING"), graph::float_input("start", 0.0, 0.0, 1.0, 0.001),
                              graph::float_input("end", 1.0, 0.0, 1.0, 0.001)},
                             {"CONDITIONING"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 const double start = in.get_float("start"), end = in.get_float("end");
                 return cond_ops_set(in, [&](CondEntry& e) {
                   e.start_percent = start;
                   e.end_percent = end;
                 });
               });
  add_ops_node(r, ops_schema("ConditioningSetAreaPercentage", "Conditioning (Set Area with Percentage)", "conditioning",
                             {link_input("conditioning", "CONDITIONING"), graph::float_input("width", 1.0, 0, 1.0, 0.01),
                              graph::float_input("height", 1.0, 0, 1.0, 0.01), graph::float_input("x", 0, 0, 1.0, 0.01),
                              graph::float_input("y", 0, 0, 1.0, 0.01),
                              graph::float_input("strength", 1.0, 0.0, 10.0, 0.01)},
                             {"CONDITIONING"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 const std::array<double, 4> area = {in.get_float("height"), in.get_float("width"), in.get_float("y"),
                                                     in.get_float("x")};
                 const auto strength = static_cast<float>(in.get_float("strength"));
                 return cond_ops_set(in, [&](CondEntry& e) {
                   e.area_percent = area;
                   e.area.reset();
                   e.strength = strength;
                   e.set_area_to_bounds = false;
                 });
               });
}

}  // namespace

void register_conditioning_ops_nodes(graph::NodeRegistry& r) {
  add_conditioning_set_nodes(r);
  const std::vector<graph::InputSpec> to_from = {link_input("conditioning_to", "CONDITIONING"),
                                                 link_input("conditioning_from", "CONDITIONING")};
  std::vector<graph::InputSpec> average = to_from;
  average.push_back(graph::float_input("conditioning_to_strength", 1.0, 0.0, 1.0, 0.01));
  // nodes.py maps the display name under "ConditioningAverage " (a trailing space), so ComfyUI shows the class name.
  add_ops_node(r, ops_schema("ConditioningAverage", "ConditioningAverage", "conditioning", average, {"CONDITIONING"}, "nodes"),
               run_conditioning_average);
  add_ops_node(r, ops_schema("ConditioningConcat", "Conditioning (Concat)", "conditioning", to_from, {"CONDITIONING"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto to, need<ConditioningObject>(in, "conditioning_to"));
                 ND_ASSIGN_OR_RETURN(auto from, need<ConditioningObject>(in, "conditioning_from"));
                 ND_ASSIGN_OR_RETURN(const CondEntry* f, cond_ops_from(to->conditioning, from->conditioning,
                                                                      "ConditioningConcat"));
                 Conditioning out;
                 for (const CondEntry& e : to->conditioning) {
                   CondEntry n = e;
                   n.context = at::cat({e.context, f->context}, 1);
                   out.push_back(std::move(n));
                 }
                 return std::vector<Value>{cond_ops_value(std::move(out))};
               });
  add_ops_node(r, ops_schema("ConditioningZeroOut", "ConditioningZeroOut", "advanced/conditioning",
                             {link_input("conditioning", "CONDITIONING")}, {"CONDITIONING"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto c, need<ConditioningObject>(in, "conditioning"));
                 Conditioning out = c->conditioning;
                 for (CondEntry& e : out) {
                   if (e.pooled.defined()) e.pooled = at::zeros_like(e.pooled);
                   if (e.context.defined()) e.context = at::zeros_like(e.context);
                 }
                 return std::vector<Value>{cond_ops_value(std::move(out))};
               });
  add_ops_node(r, ops_schema("ConditioningSetAreaStrength", "ConditioningSetAreaStrength", "conditioning",
                             {link_input("conditioning", "CONDITIONING"), graph::float_input("strength", 1.0, 0.0, 10.0, 0.01)},
                             {"CONDITIONING"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto c, need<ConditioningObject>(in, "conditioning"));
                 Conditioning out = c->conditioning;
                 for (CondEntry& e : out) e.strength = static_cast<float>(in.get_float("strength"));
                 return std::vector<Value>{cond_ops_value(std::move(out))};
               });
}

}  // namespace netdist::nodes
