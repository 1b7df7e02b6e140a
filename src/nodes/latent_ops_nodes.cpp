#include "nodes/latent_ops_nodes.h"

#include <optional>
#include <string>
#include <vector>

#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/ops_common.h"
#include "nodes/upscale.h"

namespace netdist::nodes {

namespace {

using graph::int_input;
using graph::link_input;
using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

constexpr int64_t kLatentOpsMaxResolution = 16384;

Result<std::shared_ptr<const LatentObject>> latent_ops_input(const NodeInputs& in, const std::string& name,
                                                             const std::string& class_type) {
  ND_ASSIGN_OR_RETURN(auto l, need<LatentObject>(in, name));
  ND_RETURN_IF_ERROR(check_latent(l->samples, class_type, name));
  return l;
}

Value latent_ops_value(const LatentObject& like, at::Tensor samples) {
  auto out = std::make_shared<LatentObject>(like);
  out->samples = samples.contiguous();
  return object(out);
}

at::Tensor latent_window(const at::Tensor& t, int64_t y0, std::optional<int64_t> y1, int64_t x0, std::optional<int64_t> x1) {
  return py_slice(py_slice(t, 2, y0, y1), 3, x0, x1);
}

Result<std::vector<Value>> run_latent_composite(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto to, latent_ops_input(in, "samples_to", "LatentComposite"));
  ND_ASSIGN_OR_RETURN(auto from_latent, latent_ops_input(in, "samples_from", "LatentComposite"));
  const int64_t x = in.get_int("x") / 8, y = in.get_int("y") / 8, feather = in.get_int("feather") / 8;
  at::Tensor s = to->samples.clone();
  const at::Tensor& samples_to = to->samples;
  at::Tensor samples_from = from_latent->samples;
  const int64_t to_h = samples_to.size(2), to_w = samples_to.size(3);
  if (feather == 0) {
    latent_window(s, y, y + samples_from.size(2), x, x + samples_from.size(3))
        .copy_(latent_window(samples_from, 0, to_h - y, 0, to_w - x));
    return std::vector<Value>{latent_ops_value(*to, s)};
  }
  samples_from = latent_window(samples_from, 0, to_h - y, 0, to_w - x);
  at::Tensor mask = at::ones_like(samples_from);
  const int64_t mh = mask.size(2), mw = mask.size(3);
  for (int64_t t = 0; t < feather; ++t) {
    const double f = (1.0 / static_cast<double>(feather)) * static_cast<double>(t + 1);
    if (y != 0) py_slice(mask, 2, t, 1 + t).mul_(f);
    if (y + samples_from.size(2) < to_h) py_slice(mask, 2, mh - 1 - t, mh - t).mul_(f);
    if (x != 0) py_slice(mask, 3, t, 1 + t).mul_(f);
    if (x + samples_from.size(3) < to_w) py_slice(mask, 3, mw - 1 - t, mw - t).mul_(f);
  }
  at::Tensor rev_mask = at::ones_like(mask) - mask;
  at::Tensor region = latent_window(s, y, y + samples_from.size(2), x, x + samples_from.size(3));
  region.copy_(latent_window(samples_from, 0, to_h - y, 0, to_w - x) * mask + region * rev_mask);
  return std::vector<Value>{latent_ops_value(*to, s)};
}

Result<std::vector<Value>> run_latent_blend(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto l1, latent_ops_input(in, "samples1", "LatentBlend"));
  ND_ASSIGN_OR_RETURN(auto l2, latent_ops_input(in, "samples2", "LatentBlend"));
  const double blend_factor = in.get_float("blend_factor");
  at::Tensor samples2 = l2->samples;
  if (l1->samples.sizes() != samples2.sizes()) {
    ND_ASSIGN_OR_RETURN(samples2, in_node(common_upscale(samples2, l1->samples.size(3), l1->samples.size(2), "bicubic",
                                                         "center"), "LatentBlend"));
  }
  at::Tensor blended = l1->samples * blend_factor + samples2 * (1 - blend_factor);
  return std::vector<Value>{latent_ops_value(*l1, blended)};
}

Result<std::vector<Value>> run_latent_crop(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto l, latent_ops_input(in, "samples", "LatentCrop"));
  const at::Tensor& samples = l->samples;
  int64_t x = in.get_int("x") / 8, y = in.get_int("y") / 8;
  if (x > samples.size(3) - 8) x = samples.size(3) - 8;
  if (y > samples.size(2) - 8) y = samples.size(2) - 8;
  const int64_t new_height = in.get_int("height") / 8, new_width = in.get_int("width") / 8;
  return std::vector<Value>{latent_ops_value(*l, latent_window(samples, y, new_height + y, x, new_width + x))};
}

Result<std::vector<Value>> run_latent_batch(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto l1, latent_ops_input(in, "samples1", "LatentBatch"));
  ND_ASSIGN_OR_RETURN(auto l2, latent_ops_input(in, "samples2", "LatentBatch"));
  const at::Tensor& s1 = l1->samples;
  at::Tensor s2 = l2->samples;
  if (s1.sizes().slice(1) != s2.sizes().slice(1)) {
    ND_ASSIGN_OR_RETURN(s2, in_node(common_upscale(s2, s1.size(3), s1.size(2), "bilinear", "center"), "LatentBatch"));
  }
  if (s1.size(1) != s2.size(1))
    return Status::invalid_argument("LatentBatch: samples1 has " + std::to_string(s1.size(1)) + " channels, samples2 " +
                                    std::to_string(s2.size(1)));
  auto out = std::make_shared<LatentObject>(*l1);
  out->samples = at::cat({s1, s2}, 0);
  std::vector<int64_t> index;
  for (const auto& [l, n] : {std::pair{l1, s1.size(0)}, std::pair{l2, s2.size(0)}}) {
    if (l->batch_index) {
      index.insert(index.end(), l->batch_index->begin(), l->batch_index->end());
    } else {
      for (int64_t i = 0; i < n; ++i) index.push_back(i);
    }
  }
  out->batch_index = index;
  return std::vector<Value>{object(out)};
}

void add_latent_transforms(graph::NodeRegistry& r) {
  add_ops_node(r, ops_schema("LatentRotate", "Rotate Latent", "latent/transform",
                             {link_input("samples", "LATENT"),
                              graph::combo_input("rotation", {"none", "90 degrees", "180 degrees", "270 degrees"})},
                             {"LATENT"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto l, latent_ops_input(in, "samples", "LatentRotate"));
                 const std::string rotation = in.get_string("rotation");
                 const int64_t k = rotation.rfind("90", 0) == 0 ? 1 : rotation.rfind("180", 0) == 0 ? 2
                                                                 : rotation.rfind("270", 0) == 0 ? 3 : 0;
                 return std::vector<Value>{latent_ops_value(*l, at::rot90(l->samples, k, {3, 2}))};
               });
  add_ops_node(r, ops_schema("LatentFlip", "Flip Latent", "latent/transform",
                             {link_input("samples", "LATENT"),
                              graph::combo_input("flip_method", {"x-axis: vertically", "y-axis: horizontally"})},
                             {"LATENT"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto l, latent_ops_input(in, "samples", "LatentFlip"));
                 const std::string method = in.get_string("flip_method");
                 at::Tensor s = l->samples;
                 if (method.rfind("x", 0) == 0) s = at::flip(s, {2});
                 else if (method.rfind("y", 0) == 0) s = at::flip(s, {3});
                 return std::vector<Value>{latent_ops_value(*l, s)};
               });
  const int64_t mr = kLatentOpsMaxResolution;
  add_ops_node(r, ops_schema("LatentCrop", "Crop Latent", "latent/transform",
                             {link_input("samples", "LATENT"), int_input("width", 512, 64, mr, 8),
                              int_input("height", 512, 64, mr, 8), int_input("x", 0, 0, mr, 8), int_input("y", 0, 0, mr, 8)},
                             {"LATENT"}, "nodes"),
               run_latent_crop);
}

}  // namespace

void register_latent_ops_nodes(graph::NodeRegistry& r) {
  const int64_t mr = kLatentOpsMaxResolution;
  add_latent_transforms(r);
  add_ops_node(r, ops_schema("LatentComposite", "Latent Composite", "latent",
                             {link_input("samples_to", "LATENT"), link_input("samples_from", "LATENT"),
                              int_input("x", 0, 0, mr, 8), int_input("y", 0, 0, mr, 8), int_input("feather", 0, 0, mr, 8)},
                             {"LATENT"}, "nodes"),
               run_latent_composite);
  add_ops_node(r, ops_schema("LatentBlend", "Latent Blend", "_for_testing",
                             {link_input("samples1", "LATENT"), link_input("samples2", "LATENT"),
                              graph::float_input("blend_factor", 0.5, 0, 1, 0.01)},
                             {"LATENT"}, "nodes"),
               run_latent_blend);
  add_ops_node(r, ops_schema("LatentBatch", "LatentBatch", "latent/batch",
                             {link_input("samples1", "LATENT"), link_input("samples2", "LATENT")}, {"LATENT"},
                             "comfy_extras.nodes_latent"),
               run_latent_batch);
}

}  // namespace netdist::nodes
