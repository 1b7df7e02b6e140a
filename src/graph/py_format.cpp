#include "graph/py_format.h"

#include "core/py_json.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

namespace netdist::graph::py {
namespace {

bool is_py_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f'); }

std::string_view strip(std::string_view s) {
  while (!s.empty() && is_py_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_py_space(s.back())) s.remove_suffix(1);
  return s;
}

// Digits with single underscores between them; appends the digits to `out`. False if malformed or empty.
bool take_digits(std::string_view& s, std::string& out) {
  size_t i = 0;
  bool last_digit = false;
  size_t count = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      out.push_back(c);
      last_digit = true;
      ++count;
    } else if (c == '_' && last_digit && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9') {
      last_digit = false;
    } else {
      break;
    }
    ++i;
  }
  s.remove_prefix(i);
  return count > 0;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = char(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

std::optional<double> parse_float(std::string_view text) {
  std::string_view s = strip(text);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (iequals(s, "inf") || iequals(s, "infinity")) {
    return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  if (iequals(s, "nan")) return std::numeric_limits<double>::quiet_NaN();
  std::string clean;
  bool int_part = take_digits(s, clean);
  bool frac_part = false;
  if (!s.empty() && s.front() == '.') {
    s.remove_prefix(1);
    clean.push_back('.');
    if (!s.empty() && s.front() >= '0' && s.front() <= '9') frac_part = take_digits(s, clean);
  }
  if (!int_part && !frac_part) return std::nullopt;
  if (!s.empty() && (s.front() == 'e' || s.front() == 'E')) {
    s.remove_prefix(1);
    clean.push_back('e');
    if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
      clean.push_back(s.front());
      s.remove_prefix(1);
    }
    if (!take_digits(s, clean)) return std::nullopt;
  }
  if (!s.empty()) return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(clean.data(), clean.data() + clean.size(), value);
  if (ec == std::errc::result_out_of_range) {
    size_t e = clean.find('e');
    bool tiny = e != std::string::npos && e + 1 < clean.size() && clean[e + 1] == '-';
    value = tiny ? 0.0 : std::numeric_limits<double>::infinity();
  } else if (ec != std::errc() || ptr != clean.data() + clean.size()) {
    return std::nullopt;
  }
  return negative ? -value : value;
}

Json integral_json(double truncated) {
  if (truncated >= -9223372036854775808.0 && truncated < 9223372036854775808.0) {
    return Json(static_cast<int64_t>(truncated));
  }
  if (truncated >= 0 && truncated < 18446744073709551616.0) return Json(static_cast<uint64_t>(truncated));
  return Json(truncated);
}

std::optional<Json> parse_int(std::string_view text) {
  std::string_view s = strip(text);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  std::string digits;
  if (!take_digits(s, digits) || !s.empty()) return std::nullopt;
  uint64_t magnitude = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude);
  if (ec == std::errc::result_out_of_range) {
    double approx = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), approx);
    return Json(negative ? -approx : approx);
  }
  if (!negative) {
    return magnitude <= uint64_t(INT64_MAX) ? Json(static_cast<int64_t>(magnitude)) : Json(magnitude);
  }
  if (magnitude <= uint64_t(1) << 63) return Json(static_cast<int64_t>(0 - magnitude));
  return Json(-static_cast<double>(magnitude));
}

long double as_long_double(const Json& v) {
  if (v.is_boolean()) return v.get<bool>() ? 1.0L : 0.0L;
  if (v.is_number_unsigned()) return static_cast<long double>(v.get<uint64_t>());
  if (v.is_number_integer()) return static_cast<long double>(v.get<int64_t>());
  return static_cast<long double>(v.get<double>());
}

void append_utf8_escaped(std::string& out, std::string_view text, size_t& i) {
  unsigned char c = static_cast<unsigned char>(text[i]);
  if (c == 0xC2 && i + 1 < text.size()) {
    unsigned char d = static_cast<unsigned char>(text[i + 1]);
    if (d <= 0xA0 || d == 0xAD) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[d >> 4]);
      out.push_back(kHex[d & 15]);
      ++i;
      return;
    }
  }
  out.push_back(static_cast<char>(c));
}

}  // namespace

std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  return python_float_repr(value);
}

std::string string_repr(std::string_view text) {
  bool has_single = text.find('\'') != std::string_view::npos;
  bool has_double = text.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == static_cast<unsigned char>(quote)) {
      out.push_back('\\');
      out.push_back(quote);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else if (c >= 0x80) {
      append_utf8_escaped(out, text, i);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back(quote);
  return out;
}

std::string repr(const Json& value) {
  if (value.is_string()) return string_repr(value.get_ref<const std::string&>());
  if (value.is_array()) {
    std::string out = "[";
    bool first = true;
    for (const Json& item : value) {
      if (!first) out += ", ";
      first = false;
      out += repr(item);
    }
    return out + "]";
  }
  if (value.is_object()) {
    std::string out = "{";
    bool first = true;
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      out += string_repr(it.key()) + ": " + repr(it.value());
    }
    return out + "}";
  }
  return str(value);
}

std::string str(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "None";
    case Json::value_t::boolean: return value.get<bool>() ? "True" : "False";
    case Json::value_t::number_integer: return std::to_string(value.get<int64_t>());
    case Json::value_t::number_unsigned: return std::to_string(value.get<uint64_t>());
    case Json::value_t::number_float: return float_repr(value.get<double>());
    case Json::value_t::string: return value.get<std::string>();
    default: return repr(value);
  }
}

std::string type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "NoneType";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "int";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "str";
    case Json::value_t::array: return "list";
    default: return "dict";
  }
}

bool truthy(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return false;
    case Json::value_t::boolean: return value.get<bool>();
    case Json::value_t::number_integer: return value.get<int64_t>() != 0;
    case Json::value_t::number_unsigned: return value.get<uint64_t>() != 0;
    case Json::value_t::number_float: return value.get<double>() != 0.0;
    case Json::value_t::string: return !value.get_ref<const std::string&>().empty();
    default: return !value.empty();
  }
}

Converted to_int(const Json& value) {
  if (value.is_boolean()) return {Json(int64_t(value.get<bool>() ? 1 : 0)), ""};
  if (value.is_number_integer()) return {value, ""};
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (std::isnan(d)) return {std::nullopt, "cannot convert float NaN to integer"};
    if (std::isinf(d)) return {std::nullopt, "cannot convert float infinity to integer"};
    return {integral_json(std::trunc(d)), ""};
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    std::optional<Json> parsed = parse_int(s);
    if (!parsed) return {std::nullopt, "invalid literal for int() with base 10: " + string_repr(s)};
    return {std::move(parsed), ""};
  }
  return {std::nullopt,
          "int() argument must be a string, a bytes-like object or a real number, not '" + type_name(value) + "'"};
}

Converted to_float(const Json& value) {
  if (value.is_boolean()) return {Json(value.get<bool>() ? 1.0 : 0.0), ""};
  if (value.is_number()) return {Json(static_cast<double>(as_long_double(value))), ""};
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    std::optional<double> parsed = parse_float(s);
    if (!parsed) return {std::nullopt, "could not convert string to float: " + string_repr(s)};
    return {Json(*parsed), ""};
  }
  return {std::nullopt, "float() argument must be a string or a real number, not '" + type_name(value) + "'"};
}

std::optional<int> compare_numbers(const Json& a, const Json& b) {
  if (!(a.is_number() || a.is_boolean()) || !(b.is_number() || b.is_boolean())) return std::nullopt;
  long double x = as_long_double(a);
  long double y = as_long_double(b);
  if (std::isnan(x) || std::isnan(y)) return std::nullopt;
  return x < y ? -1 : (x > y ? 1 : 0);
}

}  // namespace netdist::graph::py
