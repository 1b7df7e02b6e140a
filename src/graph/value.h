// Values that flow along the links of a workflow graph.
//
// Widget values are scalars: INT (int64_t, or uint64_t above INT64_MAX — KSampler seeds reach 2^64-1),
// FLOAT (double), BOOLEAN (bool), STRING and COMBO (std::string). Everything else (MODEL, CLIP, VAE,
// CONDITIONING, LATENT, IMAGE, ...) is an immutable Object subclass defined by the node implementations
// (with libtorch, outside graph/). Objects are shared: one output feeds many inputs and stays in the
// output cache across prompts, so they must never be modified after a node returns them.
// Thread-safety: Value is a value type; the Objects it points to are const and may be read from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

namespace netdist::graph {

struct Object {
  virtual ~Object();
  // The ComfyUI type name of this payload ("MODEL", "LATENT", ...).
  virtual std::string type_name() const = 0;
  // What execution_error's current_inputs shows for it (Python would show str(obj)).
  virtual std::string repr() const;
};

using ObjectPtr = std::shared_ptr<const Object>;
using Value = std::variant<std::monostate, int64_t, uint64_t, double, bool, std::string, ObjectPtr>;

// "INT", "FLOAT", "BOOLEAN", "STRING", the Object's type_name(), or "NONE" for monostate.
std::string value_kind(const Value& value);

// The scalar held as JSON (ints stay ints); an Object becomes its repr(); monostate becomes null.
// This is ComfyUI's format_value, used for execution_error's current_inputs.
nlohmann::ordered_json value_to_json(const Value& value);

}  // namespace netdist::graph
