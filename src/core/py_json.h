// JSON text exactly as Python's json.dumps(obj) writes it with default arguments: separators ", " and
// ": ", ensure_ascii (every character outside ' '..'~' escaped as \uXXXX, lowercase hex, surrogate pairs
// above U+FFFF), floats as Python repr (1.0, 0.1, 1e-05, 1e+16, NaN, Infinity), integers as integers.
// Object keys keep the json value's own order (insertion order for ordered_json).
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace netdist {

std::string python_json_dumps(const nlohmann::ordered_json& value);
std::string python_json_dumps(const nlohmann::json& value);

// Python repr() of a float: shortest round-trip digits, exponent form when the decimal exponent is < -4
// or >= 16, ".0" appended to integral values in fixed form.
std::string python_float_repr(double value);

}  // namespace netdist
