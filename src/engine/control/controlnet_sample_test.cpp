// ControlNet files and sampling on the embedded model (models/tiny-emoji.safetensors): a random-weight
// ControlNet shaped for its UNet, written in the ldm layouts ("control_model." prefix, none, a diff file) and
// loaded back; sample() with it: a visible effect, rows sampled alone equal to the unsplit batch (what row
// shards run), a range that never covers a step equal to no ControlNet; bad files, hints and families named.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <unistd.h>

#include "engine/control/controlnet.h"
#include "engine/micro_batch.h"
#include "engine/model.h"
#include "engine/runtime/c10d_group.h"
#include "engine/runtime/tensor_io.h"
#include "netdist/controlnet.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<Model> cn_tiny_model() {
  static std::shared_ptr<Model> model = [] {
    auto m = load_model((fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string(), {});
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? *m : nullptr;
  }();
  return model;
}

fs::path cn_dir() {
  static fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("netdist_controlnet_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

// A ControlNet for the tiny model's UNet with seeded small random weights, as name → tensor (no prefix).
runtime::WeightMap cn_random_weights(uint64_t seed, const unet::UNetConfig& config) {
  torch::manual_seed(seed);
  control::ControlNetModel m(config, 3, at::kFloat);
  runtime::WeightMap w;
  torch::NoGradGuard no_grad;
  for (const auto& p : m->named_parameters(true)) {
    at::Tensor t = at::randn(p.value().sizes()) * (p.value().dim() >= 2 ? 0.05 : 0.1);
    w[p.key()] = t;
  }
  return w;
}

std::string cn_write(const std::string& name, const runtime::WeightMap& w, const std::string& prefix) {
  runtime::WeightMap out;
  for (const auto& [k, v] : w) out[prefix + k] = v;
  const std::string path = (cn_dir() / name).string();
  EXPECT_TRUE(runtime::save_safetensors(path, out).is_ok());
  return path;
}

std::shared_ptr<ControlNet> cn_tiny_controlnet() {
  static std::shared_ptr<ControlNet> net = [] {
    const std::string path = cn_write(
        "tiny_cn.safetensors", cn_random_weights(3, cn_tiny_model()->unet_->config()), "control_model.");
    auto n = load_controlnet(path, {});
    EXPECT_TRUE(n.is_ok()) << n.status().to_string();
    return n.is_ok() ? *n : nullptr;
  }();
  return net;
}

at::Tensor cn_hint(int64_t rows) {
  torch::manual_seed(9);
  return at::rand({rows, 3, 64, 64});
}

std::shared_ptr<ControlApply> cn_apply(at::Tensor hint, double start = 0.0, double end = 1.0,
                                       std::shared_ptr<const ControlApply> previous = nullptr) {
  auto a = std::make_shared<ControlApply>();
  a->net = cn_tiny_controlnet();
  a->hint = std::move(hint);
  a->strength = 0.8;
  a->start_percent = start;
  a->end_percent = end;
  a->previous = std::move(previous);
  return a;
}

struct CnPrompt {
  Conditioning pos, neg;
  SampleRequest req;
};

CnPrompt cn_prompt(int64_t batch, const std::shared_ptr<const ControlApply>& control) {
  Model& m = *cn_tiny_model();
  CnPrompt p;
  p.pos = encode_prompt(m, "a red heart").value();
  p.neg = encode_prompt(m, "").value();
  for (auto* list : {&p.pos, &p.neg}) {
    for (CondEntry& e : *list) e.control = control;
  }
  p.req.seed = 7;
  p.req.steps = 3;
  p.req.cfg = 6.0;
  p.req.sampler = "euler_ancestral";
  p.req.latent = empty_latent(m, batch, 64, 64);
  return p;
}

TEST(ControlNetLoad, LdmLayoutsLoadTheSameWeights) {
  Model& m = *cn_tiny_model();
  const runtime::WeightMap w = cn_random_weights(3, m.unet_->config());
  for (const std::string prefix : {"control_model.", ""}) {
    const std::string path = cn_write("layout.safetensors", w, prefix);
    auto net = load_controlnet(path, {});
    ASSERT_TRUE(net.is_ok()) << net.status().to_string();
    const ControlNetInfo info = controlnet_info(**net);
    EXPECT_EQ(info.context_dim, 256);
    EXPECT_EQ(info.model_channels, 64);
    EXPECT_EQ(info.hint_channels, 3);
    for (const auto& p : (*net)->model_->named_parameters(true)) {
      EXPECT_TRUE(torch::equal(p.value(), w.at(p.key()))) << prefix << p.key();
    }
  }
}

TEST(ControlNetLoad, DiffControlNetAddsTheModelsUNet) {
  Model& m = *cn_tiny_model();
  runtime::WeightMap w = cn_random_weights(4, m.unet_->config());
  runtime::WeightMap with_diff;
  for (const auto& [k, v] : w) with_diff["control_model." + k] = v;
  with_diff["difference"] = at::zeros({1});  // a top-level tensor, as ComfyUI's diff files have it
  const std::string path = cn_write("diff.safetensors", with_diff, "");
  auto net = load_controlnet(path, {}, &m);
  ASSERT_TRUE(net.is_ok()) << net.status().to_string();
  const runtime::WeightMap base = runtime::module_weights(*m.unet_, "");
  int added = 0;
  for (const auto& p : (*net)->model_->named_parameters(true)) {
    auto b = base.find(p.key());
    at::Tensor expected = b == base.end() ? w.at(p.key()) : w.at(p.key()) + b->second.to(at::kFloat);
    added += b != base.end();
    EXPECT_TRUE(torch::equal(p.value(), expected)) << p.key();
  }
  EXPECT_GT(added, 10);
}

TEST(ControlNetLoad, FilesThatAreNotControlNetsAreNamed) {
  const std::string other = cn_write("other.safetensors", {{"foo.weight", at::zeros({2})}}, "");
  auto r = load_controlnet(other, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("does not contain ControlNet"), std::string::npos)
      << r.status().to_string();
  EXPECT_NE(r.status().message().find("other.safetensors"), std::string::npos);
  const std::string lora = cn_write("lora.safetensors", {{"lora_controlnet", at::zeros({1})}}, "");
  r = load_controlnet(lora, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().to_string();
  r = load_controlnet((cn_dir() / "missing.safetensors").string(), {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("missing.safetensors"), std::string::npos) << r.status().to_string();
}

TEST(ControlNetSample, ControlChangesTheResultAndRowsEqualTheUnsplitBatch) {
  Model& m = *cn_tiny_model();
  CnPrompt plain = cn_prompt(5, nullptr);
  at::Tensor without = sample(m, plain.pos, plain.neg, plain.req, nullptr).value();
  CnPrompt p = cn_prompt(5, cn_apply(cn_hint(2)));
  auto whole = sample(m, p.pos, p.neg, p.req, nullptr);
  ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
  EXPECT_GT((*whole - without).abs().max().item<double>(), 1e-3);
  const std::vector<int64_t> bounds = micro_batch_bounds(5);
  for (size_t g = 0; g + 1 < bounds.size(); ++g) {
    SampleRequest part = p.req;
    part.row_begin = bounds[g];
    part.row_end = bounds[g + 1];
    at::Tensor rows = sample(m, p.pos, p.neg, part, nullptr).value();
    EXPECT_TRUE(torch::equal(rows, whole->slice(0, part.row_begin, part.row_end)))
        << "rows [" << part.row_begin << ", " << part.row_end << ") differ from the unsplit batch";
  }
}

TEST(ControlNetSample, RangeThatCoversNoStepChangesNothing) {
  Model& m = *cn_tiny_model();
  CnPrompt plain = cn_prompt(2, nullptr);
  at::Tensor without = sample(m, plain.pos, plain.neg, plain.req, nullptr).value();
  // 37 %–37 % is one sigma (t = 629.37) that no step of this 3-step normal schedule (t = 999, 499.5, 0) hits.
  CnPrompt p = cn_prompt(2, cn_apply(cn_hint(1), 0.37, 0.37));
  at::Tensor with = sample(m, p.pos, p.neg, p.req, nullptr).value();
  EXPECT_TRUE(torch::equal(with, without));
}

TEST(ControlNetSample, ChainAndPositiveOnlyRun) {
  Model& m = *cn_tiny_model();
  auto first = cn_apply(cn_hint(1));
  CnPrompt p = cn_prompt(1, cn_apply(cn_hint(3), 0.0, 0.6, first));
  for (CondEntry& e : p.neg) e.control = nullptr;  // ControlNetApply style: positive only
  auto r = sample(m, p.pos, p.neg, p.req, nullptr);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(at::isfinite(*r).all().item<bool>());
}

TEST(ControlNetSample, WrongHintAndWrongFamilyAreNamed) {
  Model& m = *cn_tiny_model();
  CnPrompt p = cn_prompt(1, cn_apply(at::rand({1, 4, 64, 64})));
  auto r = sample(m, p.pos, p.neg, p.req, nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("image"), std::string::npos) << r.status().to_string();

  unet::UNetConfig other = m.unet_->config();
  other.context_dim = 64;  // a ControlNet of another family (context width)
  auto foreign = cn_apply(cn_hint(1));
  auto net = load_controlnet(cn_write("foreign.safetensors", cn_random_weights(5, other), ""), {});
  ASSERT_TRUE(net.is_ok()) << net.status().to_string();
  foreign->net = *net;
  CnPrompt q = cn_prompt(1, foreign);
  r = sample(m, q.pos, q.neg, q.req, nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("another model family"), std::string::npos) << r.status().to_string();
}

// CFG split (per-step mode): rank 0 runs the positive entries with their ControlNet, rank 1 the negative ones
// with theirs; both members return the same latent, within cfg_split_test's bound of the one-process run.
TEST(ControlNetSample, CfgSplitMembersApplyTheirOwnControl) {
  const int saved_threads = at::get_num_threads();
  at::set_num_threads(1);
  auto second = load_model((fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string(), {});
  ASSERT_TRUE(second.is_ok());
  std::shared_ptr<Model> models[2] = {cn_tiny_model(), *second};
  CnPrompt p = cn_prompt(1, cn_apply(cn_hint(1)));
  for (CondEntry& e : p.neg) e.control = cn_apply(cn_hint(2), 0.0, 0.5);
  p.req.sampler = "euler";
  auto alone = sample(*models[0], p.pos, p.neg, p.req, nullptr);
  ASSERT_TRUE(alone.is_ok()) << alone.status().to_string();
  auto store = runtime::make_hash_store();
  Result<at::Tensor> out[2] = {Status::internal("not run"), Status::internal("not run")};
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      runtime::StepGroupOptions options;
      options.host = "127.0.0.1";
      options.timeout = std::chrono::milliseconds(20000);
      options.store_prefix = "controlnet_cfg_split/";
      auto group = runtime::make_step_group(store, rank, 2, options);
      if (!group.is_ok()) {
        out[rank] = group.status();
        return;
      }
      SampleRequest mine = p.req;
      mine.group = *group;
      mine.cfg_split = true;
      out[rank] = sample(*models[rank], p.pos, p.neg, mine, nullptr);
    });
  }
  for (auto& t : threads) t.join();
  at::set_num_threads(saved_threads);
  ASSERT_TRUE(out[0].is_ok()) << out[0].status().to_string();
  ASSERT_TRUE(out[1].is_ok()) << out[1].status().to_string();
  EXPECT_TRUE(at::equal(*out[0], *out[1]));
  const double diff = (*out[0] - *alone).abs().max().item<double>();
  std::printf("[controlnet cfg split] max |split - one process| = %.3g\n", diff);
  EXPECT_LE(diff, 5e-3);
}

}  // namespace
}  // namespace netdist
