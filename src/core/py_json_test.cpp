#include "core/py_json.h"

#include <gtest/gtest.h>

namespace netdist {
namespace {

using nlohmann::ordered_json;

TEST(PyJson, FloatsAsPythonRepr) {
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1.5e-07), "1.5e-07");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_float_repr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(104857600.0), "104857600.0");
  EXPECT_EQ(python_float_repr(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(python_float_repr(1e300), "1e+300");
  EXPECT_EQ(python_float_repr(5e-324), "5e-324");
  EXPECT_EQ(python_float_repr(std::numeric_limits<double>::infinity()), "Infinity");
  EXPECT_EQ(python_float_repr(-std::numeric_limits<double>::infinity()), "-Infinity");
  EXPECT_EQ(python_float_repr(std::nan("")), "NaN");
}

TEST(PyJson, SeparatorsAndOrder) {
  ordered_json v = ordered_json::parse(R"({"b": 1, "a": [1, 2.0, "x", null, true, false], "c": {}, "d": []})");
  EXPECT_EQ(python_json_dumps(v), R"({"b": 1, "a": [1, 2.0, "x", null, true, false], "c": {}, "d": []})");
  EXPECT_EQ(python_json_dumps(ordered_json(-7)), "-7");
  EXPECT_EQ(python_json_dumps(ordered_json(uint64_t(18446744073709551615ull))), "18446744073709551615");
  nlohmann::json sorted = nlohmann::json::parse(R"({"b": 1, "a": 8.5})");
  EXPECT_EQ(python_json_dumps(sorted), R"({"a": 8.5, "b": 1})");
}

TEST(PyJson, EnsureAsciiEscapes) {
  EXPECT_EQ(python_json_dumps(ordered_json("caf\xc3\xa9")), "\"caf\\u00e9\"");
  EXPECT_EQ(python_json_dumps(ordered_json("\xf0\x9f\x98\x80")), "\"\\ud83d\\ude00\"");
  EXPECT_EQ(python_json_dumps(ordered_json("\xe4\xb8\xad")), "\"\\u4e2d\"");
  EXPECT_EQ(python_json_dumps(ordered_json("a\"b\\c\n\r\t\b\f")), "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(python_json_dumps(ordered_json(std::string("\x01\x1f\x7f", 3))), "\"\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(python_json_dumps(ordered_json("/</>")), "\"/</>\"");
  ordered_json key = ordered_json::object();
  key["\xc3\xa9"] = 1;
  EXPECT_EQ(python_json_dumps(key), "{\"\\u00e9\": 1}");
}

// Bytes that are not UTF-8 become U+FFFD, one per byte, and the text still parses as JSON: a lead byte past
// U+10FFFF (found by routes_fuzz in a 404's echoed path), an encoded surrogate, an overlong form, a cut
// sequence.
TEST(PyJson, MalformedUtf8BecomesReplacementCharactersAndStaysJson) {
  const std::string bad[] = {"\xf6\xa4\xbe\xbe", "\xed\xa0\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x9f\x98"};
  for (const std::string& b : bad) {
    const std::string text = python_json_dumps(ordered_json("a" + b + "z"));
    EXPECT_TRUE(nlohmann::json::accept(text)) << text;
    EXPECT_EQ(text.find("\\ud8"), std::string::npos) << text;
    EXPECT_EQ(text.find("\\ude"), std::string::npos) << text;
  }
  EXPECT_EQ(python_json_dumps(ordered_json("a\xf6\xa4\xbe\xbez")), "\"a\\ufffd\\ufffd\\ufffd\\ufffdz\"");
  EXPECT_EQ(python_json_dumps(ordered_json("\xf4\x8f\xbf\xbf")), "\"\\udbff\\udfff\"");  // U+10FFFF stays
}

}  // namespace
}  // namespace netdist
