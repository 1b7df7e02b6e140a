#include "graph/prompt.h"

#include <gtest/gtest.h>

#include "graph/py_format.h"

namespace netdist::graph {
namespace {

TEST(PromptParse, KeepsOrderLinksAndExtraKeys) {
  Json j = Json::parse(R"({"9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"},
                            "_meta": {"title": "t"}},
                           "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", true], "vae": ["4", 2.0]}}})");
  Result<Prompt> p = Prompt::parse(j);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_EQ(p->nodes().size(), 2u);
  EXPECT_EQ(p->nodes()[0].id, "9");
  EXPECT_EQ(p->nodes()[1].id, "8");
  const PromptInput* images = p->find("9")->find_input("images");
  ASSERT_TRUE(images && images->link);
  EXPECT_EQ(images->link->node_id, "8");
  EXPECT_EQ(images->link->output_index, 0);
  EXPECT_FALSE(p->find("9")->find_input("filename_prefix")->link);
  EXPECT_EQ(p->find("8")->find_input("samples")->link->output_index, 1);
  EXPECT_FALSE(p->find("8")->find_input("vae")->link);
  EXPECT_EQ(p->json().dump(), j.dump());
  EXPECT_EQ(p->find("7"), nullptr);
}

TEST(PromptParse, Errors) {
  EXPECT_EQ(Prompt::parse(Json::array()).status().code(), StatusCode::kInvalidArgument);
  Result<Prompt> missing = Prompt::parse(Json::parse(R"({"1": {"inputs": {}}})"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("missing the class_type property"), std::string::npos);
  EXPECT_NE(missing.status().message().find("'#1'"), std::string::npos);
  EXPECT_FALSE(Prompt::parse(Json::parse(R"({"1": 5})")).is_ok());
  EXPECT_FALSE(Prompt::parse(Json::parse(R"({"1": {"class_type": 5}})")).is_ok());
}

TEST(PromptParse, LinksToMissingNodesAreLeftToValidation) {
  Result<Prompt> p = Prompt::parse(Json::parse(R"({"1": {"class_type": "A", "inputs": {"x": ["99", 0], "y": [4, 0]}}})"));
  ASSERT_TRUE(p.is_ok());
  EXPECT_TRUE(p->find("1")->find_input("x")->link);
  EXPECT_FALSE(p->find("1")->find_input("y")->link);
  EXPECT_TRUE(p->find("1")->find_input("y")->value.is_array());
}

TEST(PromptPyFormat, FloatRepr) {
  EXPECT_EQ(py::float_repr(1.0), "1.0");
  EXPECT_EQ(py::float_repr(0.1), "0.1");
  EXPECT_EQ(py::float_repr(100.0), "100.0");
  EXPECT_EQ(py::float_repr(-0.0), "-0.0");
  EXPECT_EQ(py::float_repr(1e-5), "1e-05");
  EXPECT_EQ(py::float_repr(0.0001), "0.0001");
  EXPECT_EQ(py::float_repr(1e16), "1e+16");
  EXPECT_EQ(py::float_repr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(py::float_repr(1.5e300), "1.5e+300");
  EXPECT_EQ(py::float_repr(18446744073709551616.0), "1.8446744073709552e+19");
}

TEST(PromptPyFormat, StrAndRepr) {
  EXPECT_EQ(py::str(Json::parse(R"({"a": [1, 2.5, null, true, "x'y"]})")), R"({'a': [1, 2.5, None, True, "x'y"]})");
  EXPECT_EQ(py::string_repr("a\nb\\c\x01"), R"('a\nb\\c\x01')");
  EXPECT_EQ(py::string_repr("it's \"x\""), R"('it\'s "x"')");
  EXPECT_EQ(py::str(Json(false)), "False");
}

TEST(PromptPyFormat, Conversions) {
  EXPECT_EQ(py::to_int(Json(" 1_000 ")).value->dump(), "1000");
  EXPECT_EQ(py::to_int(Json("-7")).value->dump(), "-7");
  EXPECT_EQ(py::to_int(Json(3.9)).value->dump(), "3");
  EXPECT_EQ(py::to_int(Json(-3.9)).value->dump(), "-3");
  EXPECT_EQ(py::to_int(Json(true)).value->dump(), "1");
  EXPECT_EQ(py::to_int(Json("18446744073709551615")).value->dump(), "18446744073709551615");
  EXPECT_EQ(py::to_int(Json("1__0")).error, "invalid literal for int() with base 10: '1__0'");
  EXPECT_EQ(py::to_int(Json(nullptr)).error,
            "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'");
  EXPECT_EQ(py::to_float(Json("1e3")).value->dump(), "1000.0");
  EXPECT_EQ(py::to_float(Json(" .5 ")).value->dump(), "0.5");
  EXPECT_EQ(py::to_float(Json("-Infinity")).value->get<double>(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(py::to_float(Json("1e")).error, "could not convert string to float: '1e'");
  EXPECT_EQ(py::to_float(Json::object()).error, "float() argument must be a string or a real number, not 'dict'");
  EXPECT_EQ(py::compare_numbers(Json(uint64_t(18446744073709551615ull)), Json(1.8446744073709552e19)), -1);
  EXPECT_EQ(py::compare_numbers(Json(true), Json(1)), 0);
  EXPECT_FALSE(py::compare_numbers(Json("1"), Json(1)).has_value());
}

}  // namespace
}  // namespace netdist::graph
