#include "graph/node_schema.h"

#include <gtest/gtest.h>

#include "graph/fake_nodes.h"

namespace netdist::graph {
namespace {

class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override { fake::register_core_nodes(registry_, nullptr); }
  NodeRegistry registry_;
};

// Shapes as pinned ComfyUI's server.py node_info builds them (key order included).
TEST_F(SchemaTest, EmptyLatentImageObjectInfo) {
  EXPECT_EQ(object_info_json(*registry_.find("EmptyLatentImage")).dump(),
            R"({"input":{"required":{"width":["INT",{"default":512,"min":16,"max":16384,"step":8,)"
            R"("tooltip":"The width of the latent images in pixels."}],"height":["INT",{"default":512,"min":16,)"
            R"("max":16384,"step":8,"tooltip":"The height of the latent images in pixels."}],"batch_size":["INT",)"
            R"({"default":1,"min":1,"max":4096,"tooltip":"The number of latent images in the batch."}]}},)"
            R"("input_order":{"required":["width","height","batch_size"]},"output":["LATENT"],)"
            R"("output_is_list":[false],"output_name":["LATENT"],"name":"EmptyLatentImage",)"
            R"("display_name":"Empty Latent Image","description":"Create a new batch of empty latent images to be )"
            R"(denoised via sampling.","python_module":"nodes","category":"latent","output_node":false,)"
            R"("output_tooltips":["The empty latent image batch."]})");
}

TEST_F(SchemaTest, SaveImageHasHiddenInputsAndIsAnOutput) {
  Json info = object_info_json(*registry_.find("SaveImage"));
  EXPECT_EQ(info["input"]["hidden"].dump(), R"({"prompt":"PROMPT","extra_pnginfo":"EXTRA_PNGINFO"})");
  EXPECT_EQ(info["input_order"].dump(),
            R"({"required":["images","filename_prefix"],"hidden":["prompt","extra_pnginfo"]})");
  EXPECT_EQ(info["output"], Json::array());
  EXPECT_EQ(info["output_is_list"], Json::array());
  EXPECT_EQ(info["output_node"], true);
  EXPECT_FALSE(info.contains("output_tooltips"));
  EXPECT_EQ(info["input"]["required"]["filename_prefix"][1]["default"], "ComfyUI");
}

TEST_F(SchemaTest, ComboIsAListTypeAndSeedMaxIsExact) {
  Json ksampler = object_info_json(*registry_.find("KSampler"));
  const Json& sampler = ksampler["input"]["required"]["sampler_name"];
  ASSERT_TRUE(sampler[0].is_array());
  EXPECT_EQ(sampler[0][0], "euler");
  EXPECT_EQ(sampler[0].size(), 31u);
  EXPECT_EQ(ksampler["input"]["required"]["seed"][1].dump(),
            R"({"default":0,"min":0,"max":18446744073709551615,"tooltip":"The random seed used for creating the noise."})");
  EXPECT_EQ(ksampler["input"]["required"]["cfg"][1]["round"].dump(), "0.01");
  EXPECT_EQ(ksampler["input"]["required"]["cfg"][1]["default"].dump(), "8.0");
  Json clip = object_info_json(*registry_.find("CLIPTextEncode"));
  EXPECT_EQ(clip["input"]["required"]["text"].dump(),
            R"(["STRING",{"multiline":true,"dynamicPrompts":true,"tooltip":"The text to be encoded."}])");
}

TEST_F(SchemaTest, OptionalInputsAndBareTypes) {
  Json info = object_info_json(*registry_.find("TestWidgets"));
  EXPECT_EQ(info["input"]["optional"]["image"].dump(), R"(["IMAGE,MASK"])");
  EXPECT_EQ(info["input_order"]["optional"].dump(), R"(["count","ratio","image"])");
  EXPECT_EQ(info["input"]["required"]["flag"].dump(), R"(["BOOLEAN",{"default":false}])");
  EXPECT_EQ(info["display_name"], "TestWidgets");
}

TEST_F(SchemaTest, FlagsAndDynamicOptions) {
  NodeSchema schema;
  schema.class_type = "Old";
  schema.deprecated = true;
  schema.experimental = true;
  int calls = 0;
  InputSpec combo = combo_input("name", {});
  combo.options_provider = [&calls] {
    ++calls;
    return std::vector<std::string>{"x" + std::to_string(calls)};
  };
  schema.required = {combo};
  Json info = object_info_json(schema);
  EXPECT_EQ(info["deprecated"], true);
  EXPECT_EQ(info["experimental"], true);
  EXPECT_EQ(info["category"], "sd");
  EXPECT_EQ(info["input"]["required"]["name"].dump(), R"([["x1"]])");
  EXPECT_EQ(object_info_json(schema)["input"]["required"]["name"].dump(), R"([["x2"]])");
}

TEST_F(SchemaTest, RegistryObjectInfoInRegistrationOrder) {
  Json all = registry_.object_info();
  std::vector<std::string> names;
  for (auto it = all.begin(); it != all.end(); ++it) names.push_back(it.key());
  EXPECT_EQ(names, registry_.class_types());
  EXPECT_EQ(names.front(), "CheckpointLoaderSimple");
  EXPECT_EQ(registry_.find("Nope"), nullptr);
  EXPECT_EQ(registry_.create("Nope"), nullptr);
  EXPECT_NE(registry_.create("KSampler"), nullptr);
}

TEST(SchemaNodeInputs, TypedAccess) {
  NodeInputs in;
  in.set("seed", uint64_t(0xffffffffffffffffull));
  in.set("steps", int64_t(20));
  in.set("cfg", 7.5);
  in.set("flag", true);
  in.set("name", std::string("euler"));
  in.set("model", fake::thing("MODEL", "m"));
  EXPECT_EQ(in.get_uint64("seed"), 0xffffffffffffffffull);
  EXPECT_EQ(in.get_int("steps"), 20);
  EXPECT_EQ(in.get_float("steps"), 20.0);
  EXPECT_EQ(in.get_float("cfg"), 7.5);
  EXPECT_TRUE(in.get_bool("flag"));
  EXPECT_EQ(in.get_string("name"), "euler");
  ASSERT_NE(in.get_object<fake::Thing>("model"), nullptr);
  EXPECT_EQ(in.get_object<fake::Thing>("model")->label_, "m");
  EXPECT_EQ(in.get_object<fake::Thing>("missing"), nullptr);
  EXPECT_FALSE(in.has("missing"));
  EXPECT_EQ(value_to_json(*in.find("model")), "<MODEL m>");
  EXPECT_EQ(value_kind(*in.find("model")), "MODEL");
}

}  // namespace
}  // namespace netdist::graph
