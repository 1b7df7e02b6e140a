// The ControlNet nodes through the real registry and executor on the embedded tiny model: /object_info as the
// pinned ComfyUI declares them (tests/data/controlnet/schema_golden.json from
// tools/parity/controlnet_golden.py), a KSampler with ControlNetLoader + ControlNetApplyAdvanced equal to the
// engine's sample() with the same ControlApply, the old ControlNetApply and DiffControlNetLoader running,
// strength 0 passing through, and a missing ControlNet named.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "core/base64.h"
#include "engine/control/controlnet.h"
#include "engine/model.h"
#include "engine/runtime/tensor_io.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/files.h"
#include "io/png.h"
#include "netdist/source_dir.h"
#include "nodes/controlnet_nodes.h"
#include "nodes/core_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

class ControlNetNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_controlnet_nodes_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models" / "controlnet");
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
    io::Image8 im{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3)};
    for (size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<uint8_t>((i * 37) % 251);
    auto png = io::encode_png(im, {}, 1);
    ASSERT_TRUE(png.is_ok());
    ASSERT_TRUE(io::write_file_atomic((dir_ / "input" / "edges.png").string(), *png).is_ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A random-weight ControlNet for the tiny model's UNet in models/controlnet/`name`.
  void write_controlnet(const std::string& name, const std::string& prefix, bool difference = false) {
    auto model = load_model(env_->options().default_checkpoint, {});
    ASSERT_TRUE(model.is_ok());
    torch::manual_seed(3);
    control::ControlNetModel m((*model)->unet_->config(), 3, at::kFloat);
    runtime::WeightMap w;
    for (const auto& p : m->named_parameters(true))
      w[prefix + p.key()] = at::randn(p.value().sizes()) * (p.value().dim() >= 2 ? 0.05 : 0.1);
    if (difference) w["difference"] = at::zeros({1});
    ASSERT_TRUE(runtime::save_safetensors((dir_ / "models" / "controlnet" / name).string(), w).is_ok());
  }

  graph::ExecutionOutcome run(const Json& prompt) {
    graph::ValidationResult v = graph::validate_prompt(prompt, registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }

  static at::Tensor latent_of(const graph::ExecutionOutcome& outcome) {
    EXPECT_TRUE(outcome.success) << outcome.status.to_string();
    if (!outcome.success) return {};
    auto bytes = base64_decode(outcome.outputs["out"]["netdist_latent"][0].get<std::string>());
    EXPECT_TRUE(bytes.is_ok());
    auto weights = runtime::weights_from_buffer(*bytes, "latent");
    EXPECT_TRUE(weights.is_ok()) << weights.status().to_string();
    return weights->at("samples");
  }

  // Checkpoint, prompts, the hint picture, an empty latent of `batch`, `nodes`; KSampler on
  // positive/negative.
  static Json graph_with(const Json& nodes, const Json& positive, const Json& negative, int batch = 2) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "LoadImage", "inputs": {"image": "edges.png"}},
      "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}}
    })");
    p["5"]["inputs"]["batch_size"] = batch;
    for (auto it = nodes.begin(); it != nodes.end(); ++it) p[it.key()] = it.value();
    Json in = {{"model", {"1", 0}},
               {"seed", 5},
               {"steps", 3},
               {"cfg", 6.0},
               {"sampler_name", "euler"},
               {"scheduler", "normal"},
               {"positive", positive},
               {"negative", negative},
               {"latent_image", {"5", 0}},
               {"denoise", 1.0}};
    p["k"] = {{"class_type", "KSampler"}, {"inputs", in}};
    p["out"] = {{"class_type", "NetdistShardLatentOutput"}, {"inputs", {{"samples", {"k", 0}}}}};
    return p;
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
};

TEST_F(ControlNetNodes, ObjectInfoIsComfyUIs) {
  std::ifstream f(fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "controlnet" / "schema_golden.json");
  ASSERT_TRUE(f.good())
      << "tests/data/controlnet/schema_golden.json missing (tools/parity/controlnet_golden.py)";
  // Compared as unordered JSON: the golden's keys are sorted, /object_info keeps ComfyUI's order.
  const nlohmann::json golden = nlohmann::json::parse(f);
  const nlohmann::json info = nlohmann::json::parse(registry_.object_info().dump());
  for (auto it = golden.begin(); it != golden.end(); ++it) {
    ASSERT_TRUE(info.contains(it.key())) << it.key() << " is not registered";
    const nlohmann::json& mine = info.at(it.key());
    const nlohmann::json& g = it.value();
    for (const char* kind : {"required", "optional"}) {
      const nlohmann::json want = g["input"].value(kind, nlohmann::json::object());
      const nlohmann::json got = mine["input"].value(kind, nlohmann::json::object());
      EXPECT_EQ(got, want) << it.key() << " " << kind;
    }
    EXPECT_EQ(mine["output"], g["output"]) << it.key();
    EXPECT_EQ(mine["output_name"], g["output_name"]) << it.key();
    EXPECT_EQ(mine["display_name"], g["display_name"]) << it.key();
    EXPECT_EQ(mine["category"], g["category"]) << it.key();
    EXPECT_EQ(mine.value("deprecated", false), g["deprecated"].get<bool>()) << it.key();
  }
}

TEST_F(ControlNetNodes, ApplyAdvancedEqualsTheEngineAndChangesTheImage) {
  write_controlnet("cn.safetensors", "control_model.");
  const Json plain = graph_with(Json::object(), {"2", 0}, {"3", 0});
  at::Tensor without = latent_of(run(plain));
  Json nodes = Json::parse(R"({
    "c": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
    "a": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["2", 0], "negative": ["3", 0],
          "control_net": ["c", 0], "image": ["4", 0], "strength": 0.8, "start_percent": 0.0, "end_percent": 0.7}}
  })");
  at::Tensor with = latent_of(run(graph_with(nodes, {"a", 0}, {"a", 1})));
  ASSERT_TRUE(with.defined() && without.defined());
  EXPECT_GT((with - without).abs().max().item<double>(), 1e-3);

  // The same through the engine API.
  auto model = load_model(env_->options().default_checkpoint, {});
  auto net = load_controlnet((dir_ / "models" / "controlnet" / "cn.safetensors").string(), {});
  ASSERT_TRUE(model.is_ok() && net.is_ok());
  auto apply = std::make_shared<ControlApply>();
  apply->net = *net;
  std::vector<float> px(64 * 64 * 3);  // edges.png as LoadImage gives it: bytes / 255
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<float>((i * 37) % 251) / 255.0f;
  apply->hint = at::from_blob(px.data(), {1, 64, 64, 3}, at::kFloat).permute({0, 3, 1, 2}).contiguous();
  apply->strength = 0.8;
  apply->end_percent = 0.7;
  Conditioning pos = encode_prompt(**model, "a red heart").value(), neg = encode_prompt(**model, "").value();
  for (auto* l : {&pos, &neg}) {
    for (CondEntry& e : *l) e.control = apply;
  }
  SampleRequest req;
  req.seed = 5;
  req.steps = 3;
  req.cfg = 6.0;
  req.latent = empty_latent(**model, 2, 64, 64);
  auto direct = sample(**model, pos, neg, req, nullptr);
  ASSERT_TRUE(direct.is_ok()) << direct.status().to_string();
  EXPECT_TRUE(torch::equal(*direct, with));
}

TEST_F(ControlNetNodes, OldApplyChainDiffLoaderAndStrengthZero) {
  write_controlnet("cn.safetensors", "");
  write_controlnet("diff.safetensors", "control_model.", true);
  const Json plain = graph_with(Json::object(), {"2", 0}, {"3", 0}, 1);
  at::Tensor without = latent_of(run(plain));
  Json zero = Json::parse(R"({
    "c": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
    "a": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["2", 0], "control_net": ["c", 0],
          "image": ["4", 0], "strength": 0.0}}
  })");
  EXPECT_TRUE(torch::equal(latent_of(run(graph_with(zero, {"a", 0}, {"3", 0}, 1))), without));
  Json chain = Json::parse(R"({
    "c": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
    "d": {"class_type": "DiffControlNetLoader", "inputs": {"model": ["1", 0], "control_net_name": "diff.safetensors"}},
    "a": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["2", 0], "control_net": ["c", 0],
          "image": ["4", 0], "strength": 0.5}},
    "b": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["a", 0], "control_net": ["d", 0],
          "image": ["4", 0], "strength": 0.02}}
  })");
  at::Tensor chained = latent_of(run(graph_with(chain, {"b", 0}, {"3", 0}, 1)));
  ASSERT_TRUE(chained.defined());
  EXPECT_TRUE(at::isfinite(chained).all().item<bool>());
  EXPECT_GT((chained - without).abs().max().item<double>(), 1e-3);
}

// What a cluster worker runs for a row shard: rows [1, 3) of a batch of 3 with a ControlNet equal the unsplit
// rows.
TEST_F(ControlNetNodes, ShardRowsWithAControlNetEqualTheUnsplitBatch) {
  write_controlnet("cn.safetensors", "control_model.");
  Json nodes = Json::parse(R"({
    "c": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}},
    "a": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["2", 0], "negative": ["3", 0],
          "control_net": ["c", 0], "image": ["4", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
  })");
  Json p = graph_with(nodes, {"a", 0}, {"a", 1}, 3);
  Json& k = p["k"];
  k["class_type"] = "KSamplerAdvanced";
  Json& in = k["inputs"];
  in.erase("seed");
  in.erase("denoise");
  in["noise_seed"] = 5;
  in["add_noise"] = "enable";
  in["start_at_step"] = 0;
  in["end_at_step"] = 10000;
  in["return_with_leftover_noise"] = "disable";
  in["sampler_name"] = "euler_ancestral";
  at::Tensor whole = latent_of(run(p));
  k["class_type"] = "NetdistShardKSamplerAdvanced";
  in["row_begin"] = 1;
  in["row_end"] = 3;
  at::Tensor shard = latent_of(run(p));
  ASSERT_TRUE(whole.defined() && shard.defined());
  ASSERT_EQ(whole.size(0), 3);
  EXPECT_TRUE(at::equal(shard, whole.slice(0, 1, 3)));
}

TEST_F(ControlNetNodes, MissingControlNetIsNamed) {
  write_controlnet("cn.safetensors", "control_model.");
  Json nodes = Json::parse(R"({
    "c": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "nope.safetensors"}},
    "a": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["2", 0], "negative": ["3", 0],
          "control_net": ["c", 0], "image": ["4", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
  })");
  Json p = graph_with(nodes, {"a", 0}, {"a", 1});
  graph::ValidationResult v = graph::validate_prompt(p, registry_);
  ASSERT_FALSE(v.ok());  // not among the listed files, as ComfyUI's value_not_in_list
  EXPECT_NE(v.error_body.dump().find("nope.safetensors"), std::string::npos) << v.error_body.dump();
}

}  // namespace
}  // namespace netdist::nodes
