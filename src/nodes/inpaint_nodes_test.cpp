// The inpainting nodes (SetLatentNoiseMask, VAEEncodeForInpaint, InpaintModelConditioning) through the real
// registry and executor on the embedded tiny model: /object_info as ComfyUI declares them, the pixel
// neutralisation and mask growth against values worked out from nodes.py, a masked KSampler keeping the
// unmasked latent, the shard sampler's rows with a mask equal to the unsplit batch's (what a cluster worker
// runs), the batch nodes carrying the mask, and bad input named.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "core/base64.h"
#include "engine/runtime/tensor_io.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/png.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"
#include "nodes/inpaint_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

class InpaintNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_inpaint_nodes_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models");
    fs::create_directories(dir_ / "input");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    o.default_checkpoint = (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
    register_shard_nodes(registry_);
    // A 64×64 RGBA picture whose left half is transparent: LoadImage's mask (1 − alpha) is 1 there.
    io::Image8 im{64, 64, 4, std::vector<uint8_t>(64 * 64 * 4)};
    for (int y = 0; y < 64; ++y) {
      for (int x = 0; x < 64; ++x) {
        uint8_t* p = &im.pixels[static_cast<size_t>((y * 64 + x) * 4)];
        p[0] = static_cast<uint8_t>(x * 4);
        p[1] = static_cast<uint8_t>(y * 4);
        p[2] = 128;
        p[3] = x < 32 ? 0 : 255;
      }
    }
    auto png = io::encode_png(im, {}, 1);
    ASSERT_TRUE(png.is_ok());
    ASSERT_TRUE(io::write_file_atomic((dir_ / "input" / "hole.png").string(), *png).is_ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  graph::ExecutionOutcome run(const Json& prompt) {
    graph::ValidationResult v = graph::validate_prompt(prompt, registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }

  static at::Tensor latent_of(const graph::ExecutionOutcome& outcome, const std::string& node = "out") {
    EXPECT_TRUE(outcome.success) << outcome.status.to_string();
    if (!outcome.success) return {};
    auto bytes = base64_decode(outcome.outputs[node]["netdist_latent"][0].get<std::string>());
    EXPECT_TRUE(bytes.is_ok());
    auto weights = runtime::weights_from_buffer(*bytes, "latent");
    EXPECT_TRUE(weights.is_ok()) << weights.status().to_string();
    return weights->at("samples");
  }

  // Checkpoint, prompts, the picture and its mask, its latent (node "5"), plus `nodes`; "out" takes `out`.
  static Json graph_with(const Json& nodes, const Json& out) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "LoadImage", "inputs": {"image": "hole.png"}},
      "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0], "vae": ["1", 2]}}
    })");
    for (auto it = nodes.begin(); it != nodes.end(); ++it) p[it.key()] = it.value();
    p["out"] = {{"class_type", "NetdistShardLatentOutput"}, {"inputs", {{"samples", out}}}};
    return p;
  }

  static Json ksampler(const std::string& cls, const Json& latent, const Json& positive = Json::array({"2", 0}),
                       const Json& negative = Json::array({"3", 0})) {
    Json in = {{"model", {"1", 0}}, {"seed", 5},          {"steps", 3},          {"cfg", 6.0},
               {"sampler_name", "euler_ancestral"}, {"scheduler", "normal"}, {"positive", positive},
               {"negative", negative},           {"latent_image", latent}, {"denoise", 1.0}};
    return {{"class_type", cls}, {"inputs", in}};
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
};

TEST_F(InpaintNodes, ObjectInfoIsComfyUIs) {
  const Json info = registry_.object_info();
  const Json& set = info["SetLatentNoiseMask"];
  EXPECT_EQ(set["input"]["required"], Json::parse(R"({"samples": ["LATENT"], "mask": ["MASK"]})"));
  EXPECT_EQ(set["output"], Json::parse(R"(["LATENT"])"));
  EXPECT_EQ(set["display_name"], "Set Latent Noise Mask");
  EXPECT_EQ(set["category"], "latent/inpaint");
  const Json& enc = info["VAEEncodeForInpaint"];
  EXPECT_EQ(enc["input"]["required"], Json::parse(R"({"pixels": ["IMAGE"], "vae": ["VAE"], "mask": ["MASK"],
      "grow_mask_by": ["INT", {"default": 6, "min": 0, "max": 64, "step": 1}]})"));
  EXPECT_EQ(enc["display_name"], "VAE Encode (for Inpainting)");
  EXPECT_EQ(enc["category"], "latent/inpaint");
  const Json& cond = info["InpaintModelConditioning"];
  EXPECT_EQ(cond["input"]["required"]["noise_mask"][0], "BOOLEAN");
  EXPECT_EQ(cond["input"]["required"]["noise_mask"][1]["default"], true);
  EXPECT_EQ(cond["output"], Json::parse(R"(["CONDITIONING", "CONDITIONING", "LATENT"])"));
  EXPECT_EQ(cond["output_name"], Json::parse(R"(["positive", "negative", "latent"])"));
  EXPECT_EQ(cond["category"], "conditioning/inpaint");
  EXPECT_EQ(cond["display_name"], "InpaintModelConditioning");
}

TEST(InpaintPixels, CropsCentredAndNeutralisesTheMaskedPixels) {
  // 10 high, 12 wide → 8×8 from row 1, column 2; the mask is 1 on the left half of the full picture.
  at::Tensor px = at::rand({1, 10, 12, 3});
  at::Tensor mask = at::zeros({1, 10, 12});
  mask.slice(2, 0, 6).fill_(1.0);
  auto r = inpaint_pixels(px, mask, "VAEEncodeForInpaint");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->pixels.sizes(), (std::vector<int64_t>{1, 8, 8, 3}));
  ASSERT_EQ(r->mask.sizes(), (std::vector<int64_t>{1, 1, 8, 8}));
  // Columns 2..5 of the picture are masked (now 0..3): grey; the rest are the picture's.
  EXPECT_TRUE(at::allclose(r->pixels.slice(2, 0, 4), at::full({1, 8, 4, 3}, 0.5)));
  EXPECT_TRUE(at::allclose(r->pixels.slice(2, 4, 8), px.slice(1, 1, 9).slice(2, 6, 10), 0, 1e-6));
  EXPECT_TRUE(at::equal(r->mask.slice(3, 0, 4), at::ones({1, 1, 8, 4})));
}

TEST(InpaintPixels, BadInputIsNamed) {
  auto rows = inpaint_pixels(at::rand({3, 8, 8, 3}), at::ones({2, 8, 8}), "VAEEncodeForInpaint");
  ASSERT_FALSE(rows.is_ok());
  EXPECT_NE(rows.status().message().find("VAEEncodeForInpaint: mask has 2 rows for 3 images"), std::string::npos)
      << rows.status().message();
  auto tiny = inpaint_pixels(at::rand({1, 4, 8, 3}), at::ones({8, 8}), "InpaintModelConditioning");
  ASSERT_FALSE(tiny.is_ok());
  EXPECT_NE(tiny.status().message().find("smaller than one latent cell"), std::string::npos);
  auto flat = inpaint_pixels(at::rand({1, 8, 8, 3}), at::ones({8}), "InpaintModelConditioning");
  ASSERT_FALSE(flat.is_ok());
  EXPECT_NE(flat.status().message().find("InpaintModelConditioning: mask is [8]"), std::string::npos)
      << flat.status().message();
}

TEST(InpaintGrowMask, BoxConvolutionAsComfyUI) {
  at::Tensor mask = at::zeros({1, 1, 8, 8});
  mask[0][0][4][4] = 0.75;  // rounds to 1
  // grow 3: padding 1, a 3×3 box around the pixel.
  at::Tensor g3 = grow_mask(mask, 3);
  EXPECT_EQ(g3.sum().item<float>(), 9.0f);
  EXPECT_TRUE(at::equal(g3[0][0].slice(0, 3, 6).slice(1, 3, 6), at::ones({3, 3})));
  // grow 6: padding 3 → out[i] covers in[i − 3 .. i + 2]: rows and columns 2..7.
  at::Tensor g6 = grow_mask(mask, 6);
  ASSERT_EQ(g6.sizes(), (std::vector<int64_t>{1, 1, 8, 8}));
  EXPECT_TRUE(at::equal(g6[0][0].slice(0, 2, 8).slice(1, 2, 8), at::ones({6, 6})));
  EXPECT_EQ(g6.sum().item<float>(), 36.0f);
  // grow 0: the mask itself, rounded.
  EXPECT_TRUE(at::equal(grow_mask(mask, 0), mask.round()));
}

TEST_F(InpaintNodes, MaskedKSamplerKeepsTheUnmaskedHalf) {
  Json nodes = {{"6", {{"class_type", "SetLatentNoiseMask"}, {"inputs", {{"samples", {"5", 0}}, {"mask", {"4", 1}}}}}},
                {"7", ksampler("KSampler", {"6", 0})}};
  at::Tensor sampled = latent_of(run(graph_with(nodes, {"7", 0})));
  at::Tensor encoded = latent_of(run(graph_with({}, {"5", 0})));
  ASSERT_TRUE(sampled.defined() && encoded.defined());
  EXPECT_TRUE(at::allclose(sampled.slice(3, 4, 8), encoded.slice(3, 4, 8), 1e-4, 1e-5));
  EXPECT_FALSE(at::allclose(sampled.slice(3, 0, 4), encoded.slice(3, 0, 4), 1e-2, 1e-2));
}

TEST_F(InpaintNodes, ShardRowsWithAMaskEqualTheUnsplitBatch) {
  // Three rows (RepeatLatentBatch keeps a one-row mask) sampled whole, and rows [1, 2) as a worker's shard.
  Json nodes = {{"6", {{"class_type", "SetLatentNoiseMask"}, {"inputs", {{"samples", {"5", 0}}, {"mask", {"4", 1}}}}}},
                {"8", {{"class_type", "RepeatLatentBatch"}, {"inputs", {{"samples", {"6", 0}}, {"amount", 3}}}}},
                {"7", ksampler("KSamplerAdvanced", {"8", 0})}};
  Json& adv = nodes["7"]["inputs"];
  adv.erase("seed");
  adv.erase("denoise");
  adv["noise_seed"] = 5;
  adv["add_noise"] = "enable";
  adv["start_at_step"] = 0;
  adv["end_at_step"] = 10000;
  adv["return_with_leftover_noise"] = "disable";
  at::Tensor whole = latent_of(run(graph_with(nodes, {"7", 0})));
  nodes["7"]["class_type"] = "NetdistShardKSamplerAdvanced";
  adv["row_begin"] = 1;
  adv["row_end"] = 2;
  at::Tensor shard = latent_of(run(graph_with(nodes, {"7", 0})));
  ASSERT_TRUE(whole.defined() && shard.defined());
  ASSERT_EQ(whole.size(0), 3);
  EXPECT_TRUE(at::equal(shard, whole.slice(0, 1, 2)));
}

TEST_F(InpaintNodes, VAEEncodeForInpaintAndInpaintModelConditioningRun) {
  Json nodes = {
      {"6", {{"class_type", "VAEEncodeForInpaint"},
             {"inputs", {{"pixels", {"4", 0}}, {"vae", {"1", 2}}, {"mask", {"4", 1}}, {"grow_mask_by", 6}}}}},
      {"7", ksampler("KSampler", {"6", 0})},
      {"8", {{"class_type", "InpaintModelConditioning"},
             {"inputs", {{"positive", {"2", 0}}, {"negative", {"3", 0}}, {"vae", {"1", 2}}, {"pixels", {"4", 0}},
                         {"mask", {"4", 1}}, {"noise_mask", true}}}}},
      {"9", ksampler("KSampler", {"8", 2}, {"8", 0}, {"8", 1})}};
  Json p = graph_with(nodes, {"7", 0});
  p["out2"] = {{"class_type", "NetdistShardLatentOutput"}, {"inputs", {{"samples", {"9", 0}}}}};
  graph::ExecutionOutcome outcome = run(p);
  at::Tensor a = latent_of(outcome, "out"), b = latent_of(outcome, "out2");
  ASSERT_TRUE(a.defined() && b.defined());
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{1, 4, 8, 8}));
  // InpaintModelConditioning keeps the original latent where its mask is 0 (columns 4..7 of 8).
  at::Tensor encoded = latent_of(run(graph_with({}, {"5", 0})));
  EXPECT_TRUE(at::allclose(b.slice(3, 4, 8), encoded.slice(3, 4, 8), 1e-4, 1e-5));
}

// CLIPTextEncodeSDXL (sdxl_text_nodes.h) shares this fixture: its schema as ComfyUI's, and a CLIP without
// clip_g refused by name.
TEST_F(InpaintNodes, ClipTextEncodeSdxlSchemaAndSd1ClipRefused) {
  const Json info = registry_.object_info()["CLIPTextEncodeSDXL"];
  EXPECT_EQ(info["input"]["required"]["width"].dump(), R"(["INT",{"default":1024.0,"min":0,"max":16384}])");
  EXPECT_EQ(info["input"]["required"]["crop_w"].dump(), R"(["INT",{"default":0,"min":0,"max":16384}])");
  EXPECT_EQ(info["input"]["required"]["text_g"].dump(), R"(["STRING",{"multiline":true,"dynamicPrompts":true}])");
  EXPECT_EQ(info["input_order"]["required"],
            Json::parse(R"(["clip", "width", "height", "crop_w", "crop_h", "target_width", "target_height",
                           "text_g", "text_l"])"));
  EXPECT_EQ(info["category"], "advanced/conditioning");
  EXPECT_EQ(info["python_module"], "comfy_extras.nodes_clip_sdxl");
  Json p = graph_with({{"6", {{"class_type", "CLIPTextEncodeSDXL"},
                              {"inputs", {{"clip", {"1", 1}}, {"width", 1024}, {"height", 1024}, {"crop_w", 0},
                                          {"crop_h", 0}, {"target_width", 1024}, {"target_height", 1024},
                                          {"text_g", "a castle"}, {"text_l", "a hill"}}}}},
                       {"7", ksampler("KSampler", {"5", 0}, {"6", 0})}},
                      {"7", 0});
  graph::ExecutionOutcome outcome = run(p);
  ASSERT_FALSE(outcome.success);
  EXPECT_NE(outcome.status.message().find("CLIPTextEncodeSDXL"), std::string::npos) << outcome.status.to_string();
  EXPECT_NE(outcome.status.message().find("needs an SDXL CLIP (clip_l and clip_g)"), std::string::npos)
      << outcome.status.to_string();
}

}  // namespace
}  // namespace netdist::nodes
