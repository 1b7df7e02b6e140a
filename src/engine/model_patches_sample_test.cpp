// Model patches in sample() (engine/model_patches.h; the numerics against ComfyUI are
// model_patches_test.cpp's): handles compose without changing their input, row shards equal the unsplit
// batch, and a CFG split (both predictions exchanged, the cfg function run on each member) equals one
// process. On the embedded tiny model.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <ATen/Parallel.h>

#include "engine/model.h"
#include "engine/model_patches.h"
#include "engine/runtime/c10d_group.h"
#include "netdist/engine.h"
#include "netdist/model_patches.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

std::shared_ptr<Model> patches_tiny_model() {
  static std::shared_ptr<Model> model = [] {
    auto loaded = load_model(
        (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {});
    return loaded.is_ok() ? *loaded : nullptr;
  }();
  return model;
}

ModelPatchSpec patches_spec(ModelPatchSpec::Kind kind) {
  ModelPatchSpec s;
  s.kind = kind;
  return s;
}

TEST(ModelPatches, HandlesComposeWithoutChangingTheirInput) {
  auto base = patches_tiny_model();
  ASSERT_TRUE(base);
  auto a = with_model_patch(base, patches_spec(ModelPatchSpec::Kind::kFreeU));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ModelSamplingSpec vpred;
  vpred.prediction = "v_prediction";
  auto b = with_model_sampling(*a, vpred);
  ASSERT_TRUE(b.is_ok());
  auto c = with_model_patch(*b, patches_spec(ModelPatchSpec::Kind::kFreeUV2));
  auto d = with_model_patch(*c, patches_spec(ModelPatchSpec::Kind::kRescaleCfg));
  ASSERT_TRUE(c.is_ok() && d.is_ok());
  EXPECT_FALSE(base->patches_);
  ASSERT_TRUE((*a)->patches_ && (*d)->patches_);
  EXPECT_EQ((*a)->patches_->output_block.size(), 1u);
  EXPECT_EQ((*d)->patches_->output_block.size(), 2u);
  EXPECT_TRUE((*d)->patches_->output_block[1].v2);
  EXPECT_FALSE((*c)->patches_->rescale_cfg.has_value());
  EXPECT_EQ((*d)->patches_->rescale_cfg.value_or(0), 0.7);
  EXPECT_EQ((*d)->sampling_, (*b)->sampling_);  // the model sampling travels through later patches
  EXPECT_NE((*d)->sampling_, base->sampling_);
  ModelPatchSpec bad;
  bad.b1 = std::nan("");
  EXPECT_FALSE(with_model_patch(base, bad).is_ok());
}

SampleRequest patches_request(int64_t batch) {
  SampleRequest req;
  req.seed = 77;
  req.steps = 3;
  req.cfg = 6.0;
  req.latent = at::zeros({batch, 4, 8, 8});
  return req;
}

std::shared_ptr<Model> patches_all(const std::shared_ptr<Model>& base) {
  auto m = with_model_patch(base, patches_spec(ModelPatchSpec::Kind::kFreeU)).value();
  m = with_model_patch(m, patches_spec(ModelPatchSpec::Kind::kFreeUV2)).value();
  return with_model_patch(m, patches_spec(ModelPatchSpec::Kind::kRescaleCfg)).value();
}

TEST(ModelPatches, RowShardsEqualTheUnsplitBatch) {
  auto base = patches_tiny_model();
  ASSERT_TRUE(base);
  auto patched = patches_all(base);
  Conditioning pos = encode_prompt(*base, "a red heart").value(),
               neg = encode_prompt(*base, "blurry").value();
  SampleRequest req = patches_request(2);
  auto whole = sample(*patched, pos, neg, req, nullptr);
  auto plain = sample(*base, pos, neg, req, nullptr);
  ASSERT_TRUE(whole.is_ok() && plain.is_ok()) << whole.status().to_string();
  EXPECT_GT((*whole - *plain).abs().max().item<double>(), 1e-3);  // the patches change the result
  std::vector<at::Tensor> rows;
  for (int64_t r = 0; r < 2; ++r) {
    SampleRequest one = req;
    one.row_begin = r;
    one.row_end = r + 1;
    auto part = sample(*patched, pos, neg, one, nullptr);
    ASSERT_TRUE(part.is_ok()) << part.status().to_string();
    rows.push_back(*part);
  }
  const double diff = (at::cat(rows) - *whole).abs().max().item<double>();
  std::printf("[ patches ] row shards vs whole batch: max |diff| %.3g\n", diff);
  EXPECT_LE(diff, 1e-4);
}

TEST(ModelPatches, CfgSplitRunsTheCfgFunctionOnBothMembers) {
  auto base = patches_tiny_model();
  ASSERT_TRUE(base);
  auto patched = patches_all(base);
  Conditioning pos = encode_prompt(*base, "a red heart").value(),
               neg = encode_prompt(*base, "blurry").value();
  const SampleRequest req = patches_request(1);
  auto alone = sample(*patched, pos, neg, req, nullptr);
  ASSERT_TRUE(alone.is_ok());
  const int saved_threads = at::get_num_threads();
  at::set_num_threads(1);
  // Each member its own Model handle (sample() locks the model: two on one would serialise and deadlock).
  std::shared_ptr<Model> members[2] = {
      patches_all(
          load_model((std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(),
                     {})
              .value()),
      patched};
  auto store = runtime::make_hash_store();
  Result<at::Tensor> out[2] = {Status::internal("not run"), Status::internal("not run")};
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      runtime::StepGroupOptions options;
      options.host = "127.0.0.1";
      options.timeout = std::chrono::milliseconds(20000);
      options.store_prefix = "patches_cfg_split/";
      auto group = runtime::make_step_group(store, rank, 2, options);
      if (!group.is_ok()) {
        out[rank] = group.status();
        return;
      }
      SampleRequest mine = req;
      mine.group = *group;
      mine.cfg_split = true;
      out[rank] = sample(*members[rank], pos, neg, mine, nullptr);
    });
  }
  for (auto& t : threads) t.join();
  at::set_num_threads(saved_threads);
  ASSERT_TRUE(out[0].is_ok() && out[1].is_ok()) << out[0].status().to_string() << out[1].status().to_string();
  EXPECT_TRUE(at::equal(*out[0], *out[1]));
  const double diff = (*out[0] - *alone).abs().max().item<double>();
  std::printf("[ patches ] CFG split vs one process (FreeU, FreeU_V2, RescaleCFG): max |diff| %.3g\n", diff);
  EXPECT_LE(diff,
            5e-3);  // cfg_split_test.cpp's kCfgSplitMaxAbs: separate cond/uncond calls round differently
}

}  // namespace
}  // namespace netdist
