// Small helpers shared by the node implementation files.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/node_registry.h"

namespace netdist::nodes {

using RunFn = std::function<Result<std::vector<graph::Value>>(graph::NodeContext&, const graph::NodeInputs&)>;

// A stateless node whose run() is `fn`.
class FnNode : public graph::NodeImpl {
 public:
  explicit FnNode(RunFn fn) : fn_(std::move(fn)) {}
  Result<std::vector<graph::Value>> run(graph::NodeContext& ctx, const graph::NodeInputs& in) override {
    return fn_(ctx, in);
  }

 private:
  RunFn fn_;
};

// A node whose run() and IS_CHANGED (fingerprint) are both given.
class HookedNode : public graph::NodeImpl {
 public:
  using FingerprintFn = std::function<std::optional<std::string>(const graph::NodeInputs&)>;
  HookedNode(RunFn run, FingerprintFn fp) : run_(std::move(run)), fp_(std::move(fp)) {}
  Result<std::vector<graph::Value>> run(graph::NodeContext& ctx, const graph::NodeInputs& in) override {
    return run_(ctx, in);
  }
  std::optional<std::string> fingerprint(const graph::NodeInputs& in) override { return fp_(in); }

 private:
  RunFn run_;
  FingerprintFn fp_;
};

inline void add_hooked_node(graph::NodeRegistry& registry, graph::NodeSchema schema, RunFn run,
                            HookedNode::FingerprintFn fp) {
  registry.add(std::move(schema), [run, fp] { return std::make_unique<HookedNode>(run, fp); });
}

// A schema with the fields every node sets.
inline graph::NodeSchema make_schema(std::string class_type, std::string display, std::string category,
                                     std::vector<graph::InputSpec> required, std::vector<std::string> outputs) {
  graph::NodeSchema s;
  s.class_type = std::move(class_type);
  s.display_name = std::move(display);
  s.category = std::move(category);
  s.required = std::move(required);
  s.output_types = std::move(outputs);
  return s;
}

inline void add_fn_node(graph::NodeRegistry& registry, graph::NodeSchema schema, RunFn fn) {
  registry.add(std::move(schema), [fn] { return std::make_unique<FnNode>(fn); });
}

template <typename T>
graph::Value object(std::shared_ptr<T> p) {
  return graph::Value(std::static_pointer_cast<const graph::Object>(std::move(p)));
}

// The input `name` as T, or an invalid_argument naming the input (a link of the wrong type).
template <typename T>
Result<std::shared_ptr<const T>> need(const graph::NodeInputs& in, const std::string& name) {
  auto p = in.get_object<T>(name);
  if (!p) return Status::invalid_argument("input '" + name + "' is missing or of the wrong type");
  return p;
}

// `r`, its error prefixed with the node's class ("VAEDecode: samples has 3 channels ..."): engine errors name
// the input and the model file, this names the node.
template <typename T>
Result<T> in_node(Result<T> r, const std::string& class_type) {
  if (r.is_ok()) return r;
  return r.status().with_context(class_type);
}

}  // namespace netdist::nodes
