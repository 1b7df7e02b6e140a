// Node implementations and the registry of node classes.
//
// A node class is a NodeSchema (what /object_info shows and validation checks) plus a factory for its
// NodeImpl. The executor creates one NodeImpl per (node id, class) and keeps it while that node id stays in
// the prompts it runs (ComfyUI's object cache), so an implementation may keep state between runs.
// Thread-safety: NodeRegistry::add must finish before the registry is shared; afterwards every const
// member may be called from any thread. A NodeImpl is only called from the thread running its prompt.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "graph/node_schema.h"
#include "graph/value.h"

namespace netdist::graph {

// The inputs a node runs with, by input name, in the prompt's input order. Before run() the executor
// guarantees: every required input is present, INT inputs hold int64_t/uint64_t, FLOAT inputs hold double,
// BOOLEAN bool, STRING and COMBO std::string. Optional inputs may be absent (check has()).
class NodeInputs {
 public:
  void set(std::string name, Value value);
  bool has(const std::string& name) const { return find(name) != nullptr; }
  const Value* find(const std::string& name) const;
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }

  // Typed access; the input must be present and of that kind (an invariant the executor checks).
  // get_int wraps values above INT64_MAX; get_uint64 wraps negatives: use it for seeds (max 2^64-1).
  int64_t get_int(const std::string& name) const;
  uint64_t get_uint64(const std::string& name) const;
  double get_float(const std::string& name) const;  // an INT value is converted
  bool get_bool(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  // The object, or nullptr when the input is absent or holds another class.
  template <typename T>
  std::shared_ptr<const T> get_object(const std::string& name) const {
    const Value* v = find(name);
    if (v == nullptr || !std::holds_alternative<ObjectPtr>(*v)) return nullptr;
    return std::dynamic_pointer_cast<const T>(std::get<ObjectPtr>(*v));
  }

 private:
  const Value& must_find(const std::string& name) const;
  std::vector<std::pair<std::string, Value>> entries_;
};

// What a running node may see and do besides its inputs.
class NodeContext {
 public:
  virtual ~NodeContext();
  virtual const std::string& node_id() const = 0;
  virtual const std::string& prompt_id() const = 0;
  // True once an interrupt was requested; long loops should return Status::cancelled(...) then.
  virtual bool interrupted() const = 0;
  // Reports progress (a `progress` event: value of max). Returns cancelled, without sending the event,
  // if an interrupt is pending (ComfyUI's progress hook raises there); the node must return that status.
  virtual Status progress(int64_t value, int64_t max) = 0;
  // The node's UI output ({"images": [...]}): sent as `executed` and stored for history. Replaces any
  // earlier call; null or {} means none.
  virtual void set_ui_output(Json ui) = 0;
  // Hidden inputs: the whole prompt as submitted (converted values, insertion order) and
  // extra_data["extra_pnginfo"] (null when absent).
  virtual const Json& prompt() const = 0;
  virtual const Json& extra_pnginfo() const = 0;
  virtual const Json& extra_data() const = 0;
};

class NodeImpl {
 public:
  virtual ~NodeImpl();
  // One value per schema output, in order. A non-OK status becomes `execution_error`
  // (kCancelled: `execution_interrupted`).
  virtual Result<std::vector<Value>> run(NodeContext& ctx, const NodeInputs& in) = 0;
  // ComfyUI's IS_CHANGED: a value folded into the node's cache key, e.g. a hash of the file LoadImage
  // reads. nullopt (the default) = the node has no such hook. `in` holds only the literal (non-link)
  // inputs, so linked inputs are absent: check has() before reading anything but required widgets.
  virtual std::optional<std::string> fingerprint(const NodeInputs& in) { return std::nullopt; }
};

using NodeFactory = std::function<std::unique_ptr<NodeImpl>()>;

class NodeRegistry {
 public:
  // Registers a class; a second class with the same class_type is a programming error (asserts).
  void add(NodeSchema schema, NodeFactory factory);
  const NodeSchema* find(const std::string& class_type) const;
  std::unique_ptr<NodeImpl> create(const std::string& class_type) const;  // nullptr if unknown
  // Swaps the implementation of a registered class, keeping its schema (the cluster coordinator's
  // samplers); returns the previous factory. Same thread-safety as add().
  NodeFactory replace_factory(const std::string& class_type, NodeFactory factory);
  // GET /object_info: {class_type: object_info_json(schema)} in registration order.
  Json object_info() const;
  std::vector<std::string> class_types() const;

 private:
  struct Entry {
    NodeSchema schema;
    NodeFactory factory;
  };
  std::vector<std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace netdist::graph
