// Python semantics that ComfyUI's replies expose: str()/repr() of JSON values as Python sees them after
// json.loads, int()/float()/str()/bool() conversions of widget values, and exact mixed int/float ordering.
// Error messages and conversion results are byte-for-byte what CPython 3.10+ produces for JSON-derived
// values, except for integers beyond 64 bits, which become doubles here (Python keeps them exact).
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace netdist::graph::py {

using Json = nlohmann::ordered_json;

// repr(float): shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string float_repr(double value);
// repr(str): single quotes unless the text holds ' and no ", escapes as CPython does.
std::string string_repr(std::string_view text);
// str(value) and repr(value) for the Python object json.loads would give ("None", "True", "{'a': 1}").
std::string str(const Json& value);
std::string repr(const Json& value);
// type(value).__name__: NoneType, bool, int, float, str, list, dict.
std::string type_name(const Json& value);
// bool(value).
bool truthy(const Json& value);

struct Converted {
  std::optional<Json> value;  // set on success
  std::string error;          // str(exception) otherwise
};
// int(value) / float(value), including string parsing ("  1_000 ", "1e3", "inf") and their errors.
Converted to_int(const Json& value);
Converted to_float(const Json& value);

// Python ordering of two numbers (bool counts as int): -1, 0, 1; nullopt if either is not a number or
// the comparison is with NaN (every Python comparison with NaN is false).
std::optional<int> compare_numbers(const Json& a, const Json& b);

}  // namespace netdist::graph::py
