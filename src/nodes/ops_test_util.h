// Test helpers for the operation nodes' tests (mask_nodes_test.cpp, latent_ops_nodes_test.cpp, ...) and
// the ops parity test: the real registry (register_core_nodes) with a NodeEnv over a temporary folder, and
// a direct run() of one node class with given inputs. Test-only (included by *_test.cpp files).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <ATen/ATen.h>

#include "graph/node_registry.h"
#include "nodes/core_nodes.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes::ops_testing {

class OpsTestContext : public graph::NodeContext {
 public:
  const std::string& node_id() const override { return id_; }
  const std::string& prompt_id() const override { return id_; }
  bool interrupted() const override { return false; }
  Status progress(int64_t, int64_t) override { return Status::ok(); }
  void set_ui_output(graph::Json) override {}
  const graph::Json& prompt() const override { return null_; }
  const graph::Json& extra_pnginfo() const override { return null_; }
  const graph::Json& extra_data() const override { return null_; }

 private:
  std::string id_ = "ops";
  graph::Json null_;
};

class OpsHarness {
 public:
  explicit OpsHarness(const std::string& tag) {
    dir_ = std::filesystem::temp_directory_path() / ("netdist_ops_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_ / "input");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.input_dir = (dir_ / "input").string();
    o.temp_dir = (dir_ / "temp").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
  }
  ~OpsHarness() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Result<std::vector<graph::Value>> run(const std::string& class_type, const graph::NodeInputs& in) {
    std::unique_ptr<graph::NodeImpl> impl = registry_.create(class_type);
    if (!impl) return Status::not_found("no class " + class_type);
    OpsTestContext ctx;
    return impl->run(ctx, in);
  }
  graph::Json info(const std::string& class_type) const { return registry_.object_info()[class_type]; }
  const graph::NodeRegistry& registry() const { return registry_; }
  std::filesystem::path input_dir() const { return dir_ / "input"; }

 private:
  std::filesystem::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
};

inline graph::Value image_value(at::Tensor t) {
  auto o = std::make_shared<ImageObject>();
  o->images = std::move(t);
  return object(o);
}
inline graph::Value mask_value(at::Tensor t) {
  auto o = std::make_shared<MaskObject>();
  o->mask = std::move(t);
  return object(o);
}
inline graph::Value latent_value(at::Tensor t, std::optional<std::vector<int64_t>> batch_index = std::nullopt) {
  auto o = std::make_shared<LatentObject>();
  o->samples = std::move(t);
  o->batch_index = std::move(batch_index);
  return object(o);
}
inline graph::Value cond_value(Conditioning c) {
  auto o = std::make_shared<ConditioningObject>();
  o->conditioning = std::move(c);
  return object(o);
}

// Output `i` of a node's result as T (nullptr when absent or of another type).
template <typename T>
std::shared_ptr<const T> output(const std::vector<graph::Value>& out, size_t i) {
  if (i >= out.size() || !std::holds_alternative<graph::ObjectPtr>(out[i])) return nullptr;
  return std::dynamic_pointer_cast<const T>(std::get<graph::ObjectPtr>(out[i]));
}

}  // namespace netdist::nodes::ops_testing
