#include "graph/validate.h"

#include <gtest/gtest.h>

#include "graph/fake_nodes.h"
#include "graph/test_util.h"

namespace netdist::graph {
namespace {

using testing::load_json;
using testing::sort_ids;
using testing::unordered;

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override { fake::register_core_nodes(registry_, nullptr); }

  static Json base() {
    return Json::parse(R"({
      "3": {"class_type": "KSampler", "inputs": {"seed": 8566257, "steps": 3, "cfg": 8, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
      "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
      "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
      "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "girl", "clip": ["4", 1]}},
      "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad hands", "clip": ["4", 1]}},
      "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
      "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}})");
  }

  NodeRegistry registry_;
};

// Every case in validation_golden.json was answered by ComfyUI's own validate_prompt (gen_golden.py).
TEST_F(ValidateTest, MatchesComfyUIGolden) {
  Json cases = load_json("graph/validation_golden.json");
  ASSERT_GT(cases.size(), 30u);
  for (const Json& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    ValidationResult result = validate_prompt(c["prompt"], registry_);
    ASSERT_EQ(result.ok(), c["ok"].get<bool>()) << result.error_body.dump();
    if (result.ok()) {
      EXPECT_EQ(Json(result.validated->outputs), c["outputs"]);
      Json node_errors = result.validated->node_errors;
      for (auto& [id, entry] : node_errors.items()) sort_ids(entry["dependent_outputs"]);
      EXPECT_EQ(unordered(node_errors), unordered(c["node_errors"]));
      EXPECT_EQ(result.validated->prompt.json().dump(), c["converted"].dump());
    } else {
      Json body = result.error_body;
      if (body["node_errors"].is_object()) {
        for (auto& [id, entry] : body["node_errors"].items()) sort_ids(entry["dependent_outputs"]);
      }
      EXPECT_EQ(unordered(body), unordered(c["body"]));
    }
  }
}

TEST_F(ValidateTest, ConvertsWidgetValuesAndKeepsOrder) {
  Json prompt = base();
  prompt["3"]["inputs"]["steps"] = "4";
  prompt["3"]["inputs"]["cfg"] = 7;
  prompt["3"]["_meta"] = {{"title", "Sampler"}};
  ValidationResult result = validate_prompt(prompt, registry_);
  ASSERT_TRUE(result.ok()) << result.error_body.dump();
  const Json& converted = result.validated->prompt.json();
  EXPECT_EQ(converted["3"]["inputs"]["steps"].dump(), "4");
  EXPECT_EQ(converted["3"]["inputs"]["cfg"].dump(), "7.0");
  EXPECT_EQ(converted["3"]["inputs"]["denoise"].dump(), "1.0");
  EXPECT_EQ(converted["3"]["_meta"]["title"], "Sampler");
  std::vector<std::string> keys;
  for (auto it = converted.begin(); it != converted.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(result.validated->outputs, std::vector<std::string>{"9"});
  EXPECT_TRUE(result.validated->node_errors.empty());
}

TEST_F(ValidateTest, CycleIsReportedOnTheClosingNode) {
  Json prompt = Json::parse(R"({
    "1": {"class_type": "TestAny", "inputs": {"value": ["2", 0]}},
    "2": {"class_type": "TestAny", "inputs": {"value": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["1", 0]}}})");
  ValidationResult result = validate_prompt(prompt, registry_);
  ASSERT_FALSE(result.ok());
  const Json& error = result.error_body["error"];
  EXPECT_EQ(error["type"], "prompt_outputs_failed_validation");
  EXPECT_EQ(error["message"], "Prompt outputs failed validation");
  const Json& node_errors = result.error_body["node_errors"];
  ASSERT_TRUE(node_errors.contains("2")) << node_errors.dump();
  const Json& cycle = node_errors["2"]["errors"][0];
  EXPECT_EQ(cycle["type"], "exception_during_inner_validation");
  EXPECT_EQ(cycle["details"], "Dependency cycle detected");
  EXPECT_EQ(cycle["extra_info"]["exception_type"], "graph.DependencyCycleError");
  EXPECT_EQ(cycle["extra_info"]["linked_node"], Json::parse(R"(["1", 0])"));
  EXPECT_EQ(node_errors["2"]["dependent_outputs"], Json::parse(R"(["3"])"));
}

TEST_F(ValidateTest, SelfLinkIsACycle) {
  Json prompt = Json::parse(R"({
    "1": {"class_type": "TestAny", "inputs": {"value": ["1", 0]}},
    "3": {"class_type": "TestWidgets", "inputs": {"flag": true, "text": "", "image": ["1", 0]}}})");
  ValidationResult result = validate_prompt(prompt, registry_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error_body["node_errors"]["1"]["errors"][0]["details"], "Dependency cycle detected");
}

TEST_F(ValidateTest, DeepChainFailsLikeRecursionError) {
  Json prompt = Json::object();
  int n = kMaxValidationDepth + 10;
  prompt["0"] = {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", "sdxl.safetensors"}}}};
  for (int i = 1; i <= n; ++i) {
    prompt[std::to_string(i)] = {{"class_type", "TestAny"},
                                 {"inputs", {{"value", Json::array({std::to_string(i - 1), 0})}}}};
  }
  prompt["out"] = {{"class_type", "TestWidgets"},
                   {"inputs", {{"flag", true}, {"text", ""}, {"image", Json::array({std::to_string(n), 0})}}}};
  ValidationResult result = validate_prompt(prompt, registry_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error_body.dump().find("maximum recursion depth exceeded"), std::string::npos);
}

TEST_F(ValidateTest, InfinityFromStringIsAboveMax) {
  Json prompt = {{"1", {{"class_type", "TestWidgets"}, {"inputs", {{"flag", true}, {"text", ""}, {"ratio", "-inf"}}}}}};
  ValidationResult result = validate_prompt(prompt, registry_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error_body["error"]["details"], "Value -inf smaller than min of 0.0: ratio");
}

TEST_F(ValidateTest, PartialTargetsLimitOutputs) {
  Json prompt = base();
  prompt["10"] = {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "b"}, {"images", {"5", 0}}}}};
  std::vector<std::string> targets = {"9"};
  ValidationResult result = validate_prompt(prompt, registry_, &targets);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.validated->outputs, std::vector<std::string>{"9"});
  EXPECT_TRUE(result.validated->node_errors.empty());
  std::vector<std::string> none = {"4"};
  ValidationResult empty = validate_prompt(prompt, registry_, &none);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error_body["error"]["type"], "prompt_no_outputs");
}

TEST_F(ValidateTest, NotAnObject) {
  ValidationResult result = validate_prompt(Json::array({1, 2}), registry_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error_body["error"]["type"], "invalid_prompt");
  EXPECT_EQ(result.error_body["node_errors"], Json::array());
}

TEST_F(ValidateTest, CustomValidationReplacesListCheck) {
  NodeRegistry registry;
  NodeSchema schema;
  schema.class_type = "LoadThing";
  schema.output_node = true;
  schema.required = {combo_input("image", {"a.png"})};
  schema.custom_validation = CustomValidation{
      {"image"}, [](const Json& values) -> std::optional<std::string> {
        if (values["image"] == "b.png") return std::nullopt;
        return "Invalid image file: " + values["image"].get<std::string>();
      }};
  registry.add(schema, [] { return std::unique_ptr<NodeImpl>(); });
  Json ok = {{"1", {{"class_type", "LoadThing"}, {"inputs", {{"image", "b.png"}}}}}};
  EXPECT_TRUE(validate_prompt(ok, registry).ok());
  Json bad = {{"1", {{"class_type", "LoadThing"}, {"inputs", {{"image", "c.png"}}}}}};
  ValidationResult result = validate_prompt(bad, registry);
  ASSERT_FALSE(result.ok());
  Json expected = comfy_error("custom_validation_failed", "Custom validation failed for node",
                              "image - Invalid image file: c.png", {{"input_name", "image"}});
  EXPECT_EQ(result.error_body["node_errors"]["1"]["errors"], Json::array({expected}));
}

TEST(ValidateTypes, ComfyRules) {
  EXPECT_TRUE(types_compatible("IMAGE", "IMAGE"));
  EXPECT_TRUE(types_compatible("IMAGE", "IMAGE,MASK"));
  EXPECT_TRUE(types_compatible("STRING, BOOLEAN", "INT,STRING"));
  EXPECT_TRUE(types_compatible("*", "MODEL"));
  EXPECT_TRUE(types_compatible("LATENT", "*"));
  EXPECT_FALSE(types_compatible("LATENT", "IMAGE"));
  EXPECT_FALSE(types_compatible("LATENT", "IMAGE,MASK"));
}

}  // namespace
}  // namespace netdist::graph
