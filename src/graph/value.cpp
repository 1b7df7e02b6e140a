#include "graph/value.h"

namespace netdist::graph {

Object::~Object() = default;

std::string Object::repr() const {
  std::string out = "<";
  out += type_name();
  out += " object>";
  return out;
}

std::string value_kind(const Value& value) {
  switch (value.index()) {
    case 0: return "NONE";
    case 1:
    case 2: return "INT";
    case 3: return "FLOAT";
    case 4: return "BOOLEAN";
    case 5: return "STRING";
    default: {
      const ObjectPtr& object = std::get<ObjectPtr>(value);
      return object ? object->type_name() : "NONE";
    }
  }
}

nlohmann::ordered_json value_to_json(const Value& value) {
  switch (value.index()) {
    case 0: return nullptr;
    case 1: return std::get<int64_t>(value);
    case 2: return std::get<uint64_t>(value);
    case 3: return std::get<double>(value);
    case 4: return std::get<bool>(value);
    case 5: return std::get<std::string>(value);
    default: {
      const ObjectPtr& object = std::get<ObjectPtr>(value);
      return object ? nlohmann::ordered_json(object->repr()) : nlohmann::ordered_json(nullptr);
    }
  }
}

}  // namespace netdist::graph
