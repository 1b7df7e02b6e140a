#include "graph/node_registry.h"

namespace netdist::graph {

NodeContext::~NodeContext() = default;
NodeImpl::~NodeImpl() = default;

void NodeInputs::set(std::string name, Value value) {
  for (auto& [key, v] : entries_) {
    if (key == name) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(name), std::move(value));
}

const Value* NodeInputs::find(const std::string& name) const {
  for (const auto& [key, v] : entries_) {
    if (key == name) return &v;
  }
  return nullptr;
}

const Value& NodeInputs::must_find(const std::string& name) const {
  const Value* v = find(name);
  ND_ASSERT(v != nullptr, "node input '" + name + "' is absent");
  return *v;
}

int64_t NodeInputs::get_int(const std::string& name) const {
  const Value& v = must_find(name);
  if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<int64_t>(*u);
  ND_ASSERT(std::holds_alternative<int64_t>(v), "node input '" + name + "' is " + value_kind(v) + ", not INT");
  return std::get<int64_t>(v);
}

uint64_t NodeInputs::get_uint64(const std::string& name) const {
  const Value& v = must_find(name);
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<uint64_t>(*i);
  ND_ASSERT(std::holds_alternative<uint64_t>(v), "node input '" + name + "' is " + value_kind(v) + ", not INT");
  return std::get<uint64_t>(v);
}

double NodeInputs::get_float(const std::string& name) const {
  const Value& v = must_find(name);
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  ND_ASSERT(std::holds_alternative<double>(v), "node input '" + name + "' is " + value_kind(v) + ", not FLOAT");
  return std::get<double>(v);
}

bool NodeInputs::get_bool(const std::string& name) const {
  const Value& v = must_find(name);
  ND_ASSERT(std::holds_alternative<bool>(v), "node input '" + name + "' is " + value_kind(v) + ", not BOOLEAN");
  return std::get<bool>(v);
}

const std::string& NodeInputs::get_string(const std::string& name) const {
  const Value& v = must_find(name);
  ND_ASSERT(std::holds_alternative<std::string>(v),
            "node input '" + name + "' is " + value_kind(v) + ", not STRING");
  return std::get<std::string>(v);
}

void NodeRegistry::add(NodeSchema schema, NodeFactory factory) {
  ND_ASSERT(!index_.count(schema.class_type), "node class registered twice: " + schema.class_type);
  ND_ASSERT(factory != nullptr, "node class without a factory: " + schema.class_type);
  index_[schema.class_type] = entries_.size();
  entries_.push_back(std::make_unique<Entry>(Entry{std::move(schema), std::move(factory)}));
}

const NodeSchema* NodeRegistry::find(const std::string& class_type) const {
  auto it = index_.find(class_type);
  return it == index_.end() ? nullptr : &entries_[it->second]->schema;
}

std::unique_ptr<NodeImpl> NodeRegistry::create(const std::string& class_type) const {
  auto it = index_.find(class_type);
  return it == index_.end() ? nullptr : entries_[it->second]->factory();
}

NodeFactory NodeRegistry::replace_factory(const std::string& class_type, NodeFactory factory) {
  auto it = index_.find(class_type);
  ND_ASSERT(it != index_.end(), "replace_factory: node class not registered");
  std::swap(entries_[it->second]->factory, factory);
  return factory;
}

Json NodeRegistry::object_info() const {
  Json out = Json::object();
  for (const auto& entry : entries_) out[entry->schema.class_type] = object_info_json(entry->schema);
  return out;
}

std::vector<std::string> NodeRegistry::class_types() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& entry : entries_) out.push_back(entry->schema.class_type);
  return out;
}

}  // namespace netdist::graph
