#include "nodes/controlnet_nodes.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>

#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

// models_dir/controlnet, recursive, '/'-separated, sorted (ComfyUI's folder "controlnet").
std::vector<std::string> controlnet_names(const std::string& models_dir) {
  std::vector<std::string> out;
  const std::filesystem::path root = std::filesystem::path(models_dir) / "controlnet";
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return out;
  for (auto it = std::filesystem::recursive_directory_iterator(
           root, std::filesystem::directory_options::follow_directory_symlink, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string ext = it->path().extension().string();
    if (it->is_regular_file(ec) && (ext == ".safetensors" || ext == ".sft"))
      out.push_back(it->path().lexically_relative(root).generic_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> controlnet_file(const std::string& models_dir, const std::string& name) {
  if (name.empty() || name.find("..") != std::string::npos || std::filesystem::path(name).is_absolute())
    return Status::invalid_argument("ControlNet name '" + name + "' is not a plain relative name");
  const std::filesystem::path p = std::filesystem::path(models_dir) / "controlnet" / name;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec))
    return Status::not_found("ControlNet '" + name + "' not found in " + p.parent_path().string());
  return p.string();
}

// Loaded ControlNets by path (ordinary files only: a diff ControlNet depends on its model).
class ControlNetCache {
 public:
  Result<std::shared_ptr<ControlNet>> get(const std::string& path, const EngineOptions& options) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = nets_.find(path);
    if (it != nets_.end()) return it->second;
    ND_ASSIGN_OR_RETURN(std::shared_ptr<ControlNet> net, load_controlnet(path, options));
    nets_[path] = net;
    return net;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ControlNet>> nets_;
};

graph::InputSpec controlnet_name_input(const std::shared_ptr<NodeEnv>& env) {
  graph::InputSpec name = graph::combo_input("control_net_name", {});
  name.options_provider = [env] { return controlnet_names(env->options().models_dir); };
  return name;
}

void add_controlnet_loaders(graph::NodeRegistry& r, const std::shared_ptr<NodeEnv>& env) {
  auto cache = std::make_shared<ControlNetCache>();
  add_fn_node(
      r,
      make_schema("ControlNetLoader", "Load ControlNet Model", "loaders", {controlnet_name_input(env)},
                  {"CONTROL_NET"}),
      [env, cache](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        auto out = std::make_shared<ControlNetObject>();
        out->name = in.get_string("control_net_name");
        ND_ASSIGN_OR_RETURN(std::string path, in_node(controlnet_file(env->options().models_dir, out->name),
                                                      "ControlNetLoader"));
        ND_ASSIGN_OR_RETURN(out->net, in_node(cache->get(path, env->options().engine), "ControlNetLoader"));
        return std::vector<Value>{object(out)};
      });
  add_fn_node(
      r,
      make_schema("DiffControlNetLoader", "Load ControlNet Model (diff)", "loaders",
                  {graph::link_input("model", "MODEL"), controlnet_name_input(env)}, {"CONTROL_NET"}),
      [env](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto m, need<ModelObject>(in, "model"));
        auto out = std::make_shared<ControlNetObject>();
        out->name = in.get_string("control_net_name");
        ND_ASSIGN_OR_RETURN(std::string path, in_node(controlnet_file(env->options().models_dir, out->name),
                                                      "DiffControlNetLoader"));
        ND_ASSIGN_OR_RETURN(out->net, in_node(load_controlnet(path, env->options().engine, m->model.get()),
                                              "DiffControlNetLoader"));
        return std::vector<Value>{object(out)};
      });
}

// IMAGE [N, H, W, C] → the hint [N, C, H, W] (image.movedim(-1, 1)); invalid_argument naming the node's
// "image" input for anything but a 4-D float tensor with the ControlNet's channel count.
Result<at::Tensor> controlnet_hint(const at::Tensor& image, const ControlNet& net, const std::string& cls) {
  const int64_t channels = controlnet_info(net).hint_channels;
  if (!image.defined() || image.dim() != 4 || image.size(3) != channels || image.size(0) < 1 ||
      image.size(1) < 1 || image.size(2) < 1 || !at::isFloatingType(image.scalar_type())) {
    std::string shape = "[";
    for (int64_t i = 0; image.defined() && i < image.dim(); ++i)
      shape += (i ? ", " : "") + std::to_string(image.size(i));
    return Status::invalid_argument(cls + ": image is " + shape + "]; the ControlNet '" +
                                    controlnet_info(net).path + "' takes an IMAGE [N, H, W, " +
                                    std::to_string(channels) + "] of floats");
  }
  return image.movedim(-1, 1).contiguous();
}

void add_controlnet_apply_old(graph::NodeRegistry& r) {
  graph::NodeSchema s = make_schema(
      "ControlNetApply", "Apply ControlNet (OLD)", "conditioning/controlnet",
      {graph::link_input("conditioning", "CONDITIONING"), graph::link_input("control_net", "CONTROL_NET"),
       graph::link_input("image", "IMAGE"), graph::float_input("strength", 1.0, 0.0, 10.0, 0.01)},
      {"CONDITIONING"});
  s.deprecated = true;
  add_fn_node(r, s, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto cond, need<ConditioningObject>(in, "conditioning"));
    ND_ASSIGN_OR_RETURN(auto cn, need<ControlNetObject>(in, "control_net"));
    ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
    const double strength = in.get_float("strength");
    if (strength == 0) return std::vector<Value>{object(cond)};
    ND_ASSIGN_OR_RETURN(at::Tensor hint, controlnet_hint(image->images, *cn->net, "ControlNetApply"));
    auto out = std::make_shared<ConditioningObject>(*cond);
    for (CondEntry& e : out->conditioning) {
      auto c = std::make_shared<ControlApply>();  // control_net.copy() per entry
      c->net = cn->net;
      c->hint = hint;
      c->strength = strength;
      c->previous = e.control;
      e.control = c;
      e.control_apply_to_uncond = true;
    }
    return std::vector<Value>{object(out)};
  });
}

void add_controlnet_apply_advanced(graph::NodeRegistry& r) {
  graph::NodeSchema s = make_schema(
      "ControlNetApplyAdvanced", "Apply ControlNet", "conditioning/controlnet",
      {graph::link_input("positive", "CONDITIONING"), graph::link_input("negative", "CONDITIONING"),
       graph::link_input("control_net", "CONTROL_NET"), graph::link_input("image", "IMAGE"),
       graph::float_input("strength", 1.0, 0.0, 10.0, 0.01),
       graph::float_input("start_percent", 0.0, 0.0, 1.0, 0.001),
       graph::float_input("end_percent", 1.0, 0.0, 1.0, 0.001)},
      {"CONDITIONING", "CONDITIONING"});
  s.optional = {graph::link_input("vae", "VAE")};
  s.output_names = {"positive", "negative"};
  add_fn_node(r, s, [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(auto pos, need<ConditioningObject>(in, "positive"));
    ND_ASSIGN_OR_RETURN(auto neg, need<ConditioningObject>(in, "negative"));
    ND_ASSIGN_OR_RETURN(auto cn, need<ControlNetObject>(in, "control_net"));
    ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
    const double strength = in.get_float("strength");
    if (strength == 0) return std::vector<Value>{object(pos), object(neg)};
    ND_ASSIGN_OR_RETURN(at::Tensor hint, controlnet_hint(image->images, *cn->net, "ControlNetApplyAdvanced"));
    // cnets: one new ControlNet per distinct previous one, shared by positive and negative entries.
    std::map<const ControlApply*, std::shared_ptr<const ControlApply>> cnets;
    std::vector<Value> outs;
    for (const auto& list : {pos, neg}) {
      auto out = std::make_shared<ConditioningObject>(*list);
      for (CondEntry& e : out->conditioning) {
        auto& c = cnets[e.control.get()];
        if (!c) {
          auto a = std::make_shared<ControlApply>();
          a->net = cn->net;
          a->hint = hint;
          a->strength = strength;
          a->start_percent = in.get_float("start_percent");
          a->end_percent = in.get_float("end_percent");
          a->previous = e.control;
          c = a;
        }
        e.control = c;
        e.control_apply_to_uncond = false;
      }
      outs.push_back(object(out));
    }
    return outs;
  });
}

}  // namespace

void register_controlnet_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env) {
  add_controlnet_loaders(registry, env);
  add_controlnet_apply_old(registry);
  add_controlnet_apply_advanced(registry);
}

}  // namespace netdist::nodes
