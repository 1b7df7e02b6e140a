// Tiled diffusion (engine/tiled_diffusion.h) against shiimizu/ComfyUI-TiledDiffusion's formulas: the grid and
// batching of split_bboxes/init_grid_bbox, gaussian_weights, the two blends computed by hand, the tile
// batches the UNet sees, step groups of 1–3 members (threads in this process, exchanging through an
// in-process all_gather) giving the bytes of no group, and whole samplings on the embedded tiny model.
#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <thread>

#include <torch/torch.h>

#include "engine/model.h"
#include "engine/runtime/c10d_group.h"
#include "engine/tiled_diffusion.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"
#include "netdist/tiled_diffusion.h"

namespace netdist::tiles {
namespace {

TiledDiffusionOptions tile_options(TileMethod method, int64_t tw, int64_t th, int64_t overlap, int64_t batch) {
  TiledDiffusionOptions o;
  o.method = method;
  o.tile_width = tw;
  o.tile_height = th;
  o.tile_overlap = overlap;
  o.tile_batch_size = batch;
  return o;
}

struct TileLayoutCase {
  int64_t w, h, tw, th, overlap, batch;
  int64_t tile_w, tile_h, cells_overlap;
  std::vector<std::array<int64_t, 2>> starts;  // {x, y} of each tile, in order
  std::vector<int64_t> batch_sizes;
};

// Expected values printed by the node's own functions (split_bboxes, init_grid_bbox's clamps and batching,
// copied into a plain python3 script): grid((w, h, tile_width, tile_height, tile_overlap, tile_batch_size)).
//   (160, 96, 768, 768, 64, 4) → 96, 96, 8, [(0,0), (64,0)], [2]
//   (100, 75, 512, 384, 96, 4) → 64, 48, 12, [(0,0), (36,0), (0,27), (36,27)], [4]
//   (16, 12, 64, 64, 32, 3)    → 8, 8, 4, [(0,0), (4,0), (8,0), (0,4), (4,4), (8,4)], [3, 3]
//   (37, 23, 128, 96, 48, 2)   → 16, 12, 6, x ∈ {0, 7, 14, 21} × y ∈ {0, 5, 11}, [2] * 6
//   (200, 9, 256, 1024, 512, 7) → 32, 9, 28 (overlap > tile_h: one row), x = 0, 4, …, 168, [7] * 6 + [1]
TEST(TiledDiffusionLayout, MatchesTheNodesGridAndBatches) {
  std::vector<TileLayoutCase> cases = {
      {160, 96, 768, 768, 64, 4, 96, 96, 8, {{0, 0}, {64, 0}}, {2}},
      {100, 75, 512, 384, 96, 4, 64, 48, 12, {{0, 0}, {36, 0}, {0, 27}, {36, 27}}, {4}},
      {16, 12, 64, 64, 32, 3, 8, 8, 4, {{0, 0}, {4, 0}, {8, 0}, {0, 4}, {4, 4}, {8, 4}}, {3, 3}},
      {37, 23, 128, 96, 48, 2, 16, 12, 6, {}, {2, 2, 2, 2, 2, 2}},
      {200, 9, 256, 1024, 512, 7, 32, 9, 28, {}, {7, 7, 7, 7, 7, 7, 1}},
  };
  for (int64_t y : {0, 5, 11})
    for (int64_t x : {0, 7, 14, 21}) cases[3].starts.push_back({x, y});
  for (int64_t x = 0; x <= 168; x += 4) cases[4].starts.push_back({x, 0});
  for (const TileLayoutCase& c : cases) {
    SCOPED_TRACE(std::to_string(c.w) + "x" + std::to_string(c.h));
    auto layout = tile_layout(tile_options(TileMethod::kMultiDiffusion, c.tw, c.th, c.overlap, c.batch), c.h, c.w);
    ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
    EXPECT_EQ(layout->tile_w, c.tile_w);
    EXPECT_EQ(layout->tile_h, c.tile_h);
    EXPECT_EQ(layout->overlap, c.cells_overlap);
    ASSERT_EQ(layout->boxes.size(), c.starts.size());
    for (size_t i = 0; i < c.starts.size(); ++i) {
      EXPECT_EQ(layout->boxes[i].x, c.starts[i][0]) << "tile " << i;
      EXPECT_EQ(layout->boxes[i].y, c.starts[i][1]) << "tile " << i;
    }
    std::vector<int64_t> sizes;
    for (size_t b = 0; b + 1 < layout->batch_bounds.size(); ++b)
      sizes.push_back(layout->batch_bounds[b + 1] - layout->batch_bounds[b]);
    EXPECT_EQ(sizes, c.batch_sizes);
  }
}

// An 8×8-cell latent with 768-px tiles and a 64-px overlap: the tile is clamped to 8 cells, the overlap
// stays 8 cells, and the node divides by tile_w − overlap = 0. netdist names the input instead.
TEST(TiledDiffusionLayout, OverlapAsWideAsTheClampedTileIsANamedError) {
  auto layout = tile_layout(tile_options(TileMethod::kMultiDiffusion, 768, 768, 64, 4), 8, 8);
  ASSERT_FALSE(layout.is_ok());
  EXPECT_EQ(layout.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(layout.status().message().find("tile_overlap"), std::string::npos) << layout.status().to_string();
  EXPECT_FALSE(tile_layout(tile_options(TileMethod::kMultiDiffusion, 64, 64, 0, 0), 8, 8).is_ok());
}

// gaussian_weights(4, 3) and gaussian_weights(8, 8) from the node's formula in python3 (math.exp, float64):
//   f = lambda x, m, var=0.01: exp(-(x-m)*(x-m) / (tile_w*tile_w) / (2*var)) / sqrt(2*pi*var)
//   rows: [1.24323715e-05, 0.00644012789, 0.00644012789, 1.24323715e-05], then twice
//         [0.00644012789, 3.33606884, 3.33606884, 0.00644012789] (y midpoint 1.5 is tile_h / 2)
//   (8, 8): w[0][0] = 4.13814019e-09, w[4][3] = 13.0917285, w[7][7] = 9.81416029e-07
TEST(TiledDiffusionWeights, GaussianMatchesTheNodesFormula) {
  at::Tensor g = gaussian_weights(4, 3);
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{3, 4}));
  const double row0[4] = {1.24323715e-05, 0.00644012789, 0.00644012789, 1.24323715e-05};
  const double row1[4] = {0.00644012789, 3.33606884, 3.33606884, 0.00644012789};
  for (int x = 0; x < 4; ++x) {
    EXPECT_NEAR(g[0][x].item<float>(), row0[x], row0[x] * 1e-6);
    EXPECT_NEAR(g[1][x].item<float>(), row1[x], row1[x] * 1e-6);
    EXPECT_NEAR(g[2][x].item<float>(), row1[x], row1[x] * 1e-6);
  }
  at::Tensor g8 = gaussian_weights(8, 8);
  EXPECT_NEAR(g8[0][0].item<float>(), 4.13814019e-09, 4.13814019e-09 * 1e-6);
  EXPECT_NEAR(g8[4][3].item<float>(), 13.0917285, 13.0917285 * 1e-6);
  EXPECT_NEAR(g8[7][7].item<float>(), 9.81416029e-07, 9.81416029e-07 * 1e-6);
}

// A stand-in UNet whose output depends on the position inside the tile and on the tile's own content, so
// overlapping tiles disagree and the blend matters: out = sin(x) · (1 + x[.., 0, 0] / 100) + sigma.
at::Tensor tile_fake_unet(const at::Tensor& x, const at::Tensor& sigma) {
  return at::sin(x) * (1 + x.narrow(2, 0, 1).narrow(3, 0, 1) / 100) + sigma.view({-1, 1, 1, 1});
}

// The blend recomputed in double with plain loops: MultiDiffusion's mean of the covering tiles, Mixture of
// Diffusers' Σ g·out / Σ g.
at::Tensor tile_hand_blend(const TileLayout& layout, TileMethod method, const at::Tensor& x,
                           const at::Tensor& sigma) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor num = at::zeros({n, c, h, w}, at::kDouble), den = at::zeros({h, w}, at::kDouble);
  at::Tensor g = gaussian_weights(layout.tile_w, layout.tile_h).to(at::kDouble);
  for (const TileBox& b : layout.boxes) {
    at::Tensor crop = x.narrow(2, b.y, b.h).narrow(3, b.x, b.w).to(at::kDouble);
    at::Tensor out = tile_fake_unet(crop, sigma.to(at::kDouble));
    at::Tensor wt = method == TileMethod::kMultiDiffusion ? at::ones({b.h, b.w}, at::kDouble) : g;
    num.narrow(2, b.y, b.h).narrow(3, b.x, b.w).add_(out * wt);
    den.narrow(0, b.y, b.h).narrow(1, b.x, b.w).add_(wt);
  }
  return num / den;
}

TEST(TiledDiffusionBlend, BothMethodsEqualTheHandComputedBlend) {
  for (TileMethod method : {TileMethod::kMultiDiffusion, TileMethod::kMixtureOfDiffusers}) {
    SCOPED_TRACE(tile_method_name(method));
    const TiledDiffusionOptions o = tile_options(method, 64, 64, 32, 3);
    at::Tensor x = at::randn({2, 4, 12, 16}, at::TensorOptions().dtype(at::kFloat));
    at::Tensor sigma = at::tensor({3.0f, 0.5f});
    at::Tensor context = at::randn({2, 5, 6});
    std::vector<int64_t> rows_per_call;
    cond::ModelFn fake = [&](const at::Tensor& xb, const at::Tensor& sb, const at::Tensor& cb, const at::Tensor&) {
      rows_per_call.push_back(xb.size(0));
      EXPECT_EQ(sb.size(0), xb.size(0));
      EXPECT_EQ(cb.size(0), xb.size(0));
      // The node's repeat_to_batch_size: tile-major, the N rows of each tile in order.
      for (int64_t r = 0; r < xb.size(0); ++r) {
        EXPECT_EQ(sb[r].item<float>(), sigma[r % 2].item<float>());
        EXPECT_TRUE(at::equal(cb[r], context[r % 2]));
      }
      return tile_fake_unet(xb, sb);
    };
    Status failure;
    at::Tensor out = tiled_model_fn(fake, o, {}, &failure)(x, sigma, context, at::Tensor());
    ASSERT_TRUE(failure.is_ok());
    EXPECT_EQ(rows_per_call, (std::vector<int64_t>{6, 6}));  // 6 tiles in 2 batches of 3, 2 rows each
    const TileLayout layout = tile_layout(o, 12, 16).value();
    at::Tensor want = tile_hand_blend(layout, method, x, sigma);
    EXPECT_LT((out.to(at::kDouble) - want).abs().max().item<double>(), 1e-5);
  }
}

TEST(TiledDiffusionParallel, ShareBoundsFollowSpeeds) {
  EXPECT_EQ(share_bounds(6, {}), (std::vector<int64_t>{0, 6}));
  EXPECT_EQ(share_bounds(6, {1, 1}), (std::vector<int64_t>{0, 3, 6}));
  EXPECT_EQ(share_bounds(6, {2, 1}), (std::vector<int64_t>{0, 4, 6}));
  EXPECT_EQ(share_bounds(2, {1, 1, 1}), (std::vector<int64_t>{0, 1, 1, 2}));
  EXPECT_EQ(share_bounds(7, {3, 1, 2}), (std::vector<int64_t>{0, 4, 5, 7}));
}

// A step group of threads in this process: all_gather waits for every member's tensor (a barrier), then
// hands each a copy of all of them. `fail_rank` makes every member's gather fail as a lost member would.
class TileThreadGroup {
 public:
  explicit TileThreadGroup(int size) : size_(size), slots_(size), barrier_(size) {}
  class Member : public StepGroup {
   public:
    Member(TileThreadGroup* g, int rank) : g_(g), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return g_->size_; }
    Result<std::vector<at::Tensor>> all_gather(const at::Tensor& t) override {
      if (g_->fail) return Status::unavailable("step group: " + describe(1) + " lost");
      g_->slots_[rank_] = t.clone();
      g_->barrier_.arrive_and_wait();
      std::vector<at::Tensor> all;
      for (const at::Tensor& s : g_->slots_) all.push_back(s.clone());
      g_->barrier_.arrive_and_wait();
      return all;
    }
    Status broadcast(at::Tensor&, int) override { return Status::unsupported("not used by tiles"); }
    std::string describe(int rank) const override { return "rank " + std::to_string(rank) + " (thread)"; }

   private:
    TileThreadGroup* g_;
    int rank_;
  };
  bool fail = false;

 private:
  int size_;
  std::vector<at::Tensor> slots_;
  std::barrier<> barrier_;
};

// Runs the tiled function on `members` threads (or with no group for 0) and returns every member's result.
std::vector<at::Tensor> tile_run_members(int members, const std::vector<double>& speeds, const cond::ModelFn& inner,
                                         const TiledDiffusionOptions& o, const at::Tensor& x, const at::Tensor& sigma,
                                         const at::Tensor& context, std::vector<Status>* failures = nullptr,
                                         bool fail = false) {
  if (members == 0) {
    Status failure;
    return {tiled_model_fn(inner, o, {}, &failure)(x, sigma, context, at::Tensor())};
  }
  TileThreadGroup group(members);
  group.fail = fail;
  std::vector<at::Tensor> out(members);
  std::vector<Status> status(members);
  std::vector<std::thread> threads;
  for (int r = 0; r < members; ++r) {
    threads.emplace_back([&, r] {
      c10::InferenceMode inference;
      TileThreadGroup::Member member(&group, r);
      TileParallel parallel{&member, speeds};
      try {
        out[r] = tiled_model_fn(inner, o, parallel, &status[r])(x, sigma, context, at::Tensor());
      } catch (const std::exception&) {
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failures) *failures = status;
  return out;
}

std::shared_ptr<Model> tile_tiny() {
  static std::shared_ptr<Model> model =
      load_model((std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {})
          .value();
  return model;
}

// The real tiny UNet per tile batch: 1, 2 and 3 members (equal and unequal speeds) give exactly the bytes of
// no group, for both methods.
TEST(TiledDiffusionParallel, AnyNumberOfMembersGivesTheSameBytes) {
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);  // OnDevice's setting, kept for the blends that run outside the UNet calls
  std::shared_ptr<Model> m = tile_tiny();
  cond::ModelFn unet = [&](const at::Tensor& xb, const at::Tensor& sb, const at::Tensor& cb, const at::Tensor& yb) {
    return apply_model_once(*m, xb, sb, cb, yb).value();
  };
  Conditioning pos = encode_prompt(*m, "a red heart").value();
  at::Tensor x = at::randn({1, 4, 12, 16}) * 3;
  at::Tensor sigma = at::tensor({3.0f});
  for (TileMethod method : {TileMethod::kMultiDiffusion, TileMethod::kMixtureOfDiffusers}) {
    SCOPED_TRACE(tile_method_name(method));
    const TiledDiffusionOptions o = tile_options(method, 64, 64, 32, 1);  // 6 tiles, one per call
    const at::Tensor alone = tile_run_members(0, {}, unet, o, x, sigma, pos[0].context)[0];
    ASSERT_EQ(alone.sizes(), x.sizes());
    EXPECT_TRUE(at::isfinite(alone).all().item<bool>());
    for (auto [members, speeds] : std::vector<std::pair<int, std::vector<double>>>{
             {1, {}}, {2, {}}, {3, {}}, {3, {3, 1, 2}}, {2, {1, 5}}}) {
      std::vector<Status> failures;
      std::vector<at::Tensor> outs = tile_run_members(members, speeds, unet, o, x, sigma, pos[0].context, &failures);
      for (int r = 0; r < members; ++r) {
        ASSERT_TRUE(failures[r].is_ok()) << failures[r].to_string();
        EXPECT_TRUE(at::equal(outs[r], alone)) << members << " members, rank " << r;
      }
    }
  }
  at::set_num_threads(threads_before);
}

TEST(TiledDiffusionParallel, ALostMemberFailsEveryMemberWithItsName) {
  cond::ModelFn fake = [](const at::Tensor& xb, const at::Tensor& sb, const at::Tensor&, const at::Tensor&) {
    return tile_fake_unet(xb, sb);
  };
  std::vector<Status> failures;
  tile_run_members(2, {}, fake, tile_options(TileMethod::kMultiDiffusion, 64, 64, 32, 1), at::randn({1, 4, 12, 16}),
                   at::tensor({1.0f}), at::randn({1, 3, 8}), &failures, /*fail=*/true);
  for (const Status& s : failures) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.to_string();
  }
  TileThreadGroup group(2);
  TileThreadGroup::Member member(&group, 0);
  EXPECT_FALSE(check_parallel({&member, {1.0}}).is_ok());           // one speed for two members
  EXPECT_FALSE(check_parallel({&member, {1.0, -2.0}}).is_ok());     // a negative speed
  EXPECT_FALSE(check_parallel({&member, {1.0, NAN}}).is_ok());      // not finite
  EXPECT_TRUE(check_parallel({&member, {1.0, 2.0}}).is_ok());
}

}  // namespace
}  // namespace netdist::tiles

namespace netdist {
namespace {

at::Tensor tile_sample(const std::shared_ptr<Model>& m, int64_t width, int64_t height, double cfg,
                       const Conditioning& pos, Status* status = nullptr) {
  Conditioning neg = encode_prompt(*m, "").value();
  SampleRequest req;
  req.seed = 7;
  req.steps = 3;
  req.cfg = cfg;
  req.latent = empty_latent(*m, 1, width, height);
  Result<at::Tensor> r = sample(*m, pos, neg, req, nullptr);
  if (status) *status = r.status();
  return r.is_ok() ? *r : at::Tensor();
}

TiledDiffusionOptions tile_sample_options(TileMethod method, int64_t tile, int64_t overlap) {
  TiledDiffusionOptions o;
  o.method = method;
  o.tile_width = o.tile_height = tile;
  o.tile_overlap = overlap;
  return o;
}

// One tile covering the latent: MultiDiffusion's weights are all 1, so the tiled sampling is the untiled one.
TEST(TiledDiffusionSample, OneTileOverTheLatentIsTheUntiledSampling) {
  std::shared_ptr<Model> m = tiles::tile_tiny();
  Conditioning pos = encode_prompt(*m, "a red heart").value();
  auto tiled = apply_tiled_diffusion(m, tile_sample_options(TileMethod::kMultiDiffusion, 768, 0));
  ASSERT_TRUE(tiled.is_ok()) << tiled.status().to_string();
  EXPECT_TRUE(at::equal(tile_sample(*tiled, 64, 64, 5.0, pos), tile_sample(m, 64, 64, 5.0, pos)));
}

// A 128×96-px latent in 64-px tiles overlapping by 32 px (6 tiles): both methods sample, deterministically,
// with cfg 5 and cfg 1, and differ from the untiled image and from each other; an area entry (its own grid
// for its cropped x, as in ComfyUI) works too.
TEST(TiledDiffusionSample, LatentsLargerThanATileSampleDeterministically) {
  std::shared_ptr<Model> m = tiles::tile_tiny();
  Conditioning pos = encode_prompt(*m, "a red heart").value();
  const at::Tensor plain = tile_sample(m, 128, 96, 5.0, pos);
  std::vector<at::Tensor> results;
  for (TileMethod method : {TileMethod::kMultiDiffusion, TileMethod::kMixtureOfDiffusers}) {
    SCOPED_TRACE(tile_method_name(method));
    auto tiled = apply_tiled_diffusion(m, tile_sample_options(method, 64, 32)).value();
    for (double cfg : {5.0, 1.0}) {
      Status s;
      at::Tensor a = tile_sample(tiled, 128, 96, cfg, pos, &s);
      ASSERT_TRUE(s.is_ok()) << s.to_string();
      EXPECT_EQ(a.sizes(), plain.sizes());
      EXPECT_TRUE(at::isfinite(a).all().item<bool>());
      EXPECT_TRUE(at::equal(a, tile_sample(tiled, 128, 96, cfg, pos)));
      if (cfg == 5.0) results.push_back(a);
    }
    Conditioning area = pos;
    area.push_back(encode_prompt(*m, "a blue circle").value()[0]);
    area.back().area = std::array<int, 4>{64, 128, 32, 0};  // rows 4..11: an 8×16-cell x
    Status s;
    at::Tensor a = tile_sample(tiled, 128, 96, 5.0, area, &s);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    EXPECT_FALSE(at::equal(a, results.back()));
  }
  EXPECT_FALSE(at::equal(results[0], plain));
  EXPECT_FALSE(at::equal(results[1], plain));
  EXPECT_FALSE(at::equal(results[0], results[1]));
}

// sample() with a tile_group: each member (a thread with its own Model, as processes would have) renders its
// share of the tile batches; 1, 2 and 3 members, equal and unequal speeds, cfg 5 and cfg 1, all give the bytes
// of the same sampling without a group. One intra-op thread throughout, as OnDevice keeps it on the CPU.
TEST(TiledDiffusionSample, StepGroupsOfOneToThreeMembersGiveTheUngroupedLatent) {
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);
  std::vector<std::shared_ptr<Model>> models;
  for (int r = 0; r < 3; ++r) {
    auto base =
        load_model((std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {})
            .value();
    models.push_back(apply_tiled_diffusion(base, tile_sample_options(TileMethod::kMixtureOfDiffusers, 64, 32)).value());
  }
  Conditioning pos = encode_prompt(*models[0], "a red heart").value();
  Conditioning neg = encode_prompt(*models[0], "").value();
  for (double cfg : {5.0, 1.0}) {
    SampleRequest req;
    req.seed = 11;
    req.steps = 2;
    req.cfg = cfg;
    req.latent = empty_latent(*models[0], 1, 128, 96);
    const at::Tensor alone = sample(*models[0], pos, neg, req, nullptr).value();
    for (auto [members, speeds] : std::vector<std::pair<int, std::vector<double>>>{
             {1, {}}, {2, {}}, {3, {}}, {3, {1, 4, 2}}}) {
      tiles::TileThreadGroup group(members);
      std::vector<Result<at::Tensor>> out(members, Status::internal("not run"));
      std::vector<std::thread> threads;
      for (int r = 0; r < members; ++r) {
        threads.emplace_back([&, r, speeds = speeds] {
          SampleRequest mine = req;
          mine.tile_group = std::make_shared<tiles::TileThreadGroup::Member>(&group, r);
          mine.tile_speeds = speeds;
          out[r] = sample(*models[r], pos, neg, mine, nullptr);
        });
      }
      for (auto& t : threads) t.join();
      for (int r = 0; r < members; ++r) {
        ASSERT_TRUE(out[r].is_ok()) << out[r].status().to_string();
        EXPECT_TRUE(at::equal(*out[r], alone)) << "cfg " << cfg << ", " << members << " members, rank " << r;
      }
    }
  }
  tiles::TileThreadGroup lost(2);
  lost.fail = true;
  SampleRequest req;
  req.latent = empty_latent(*models[0], 1, 128, 96);
  req.steps = 1;
  req.tile_group = std::make_shared<tiles::TileThreadGroup::Member>(&lost, 0);
  Result<at::Tensor> failed = sample(*models[0], pos, neg, req, nullptr);
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().to_string();
  req.tile_speeds = {1.0, 0.0};
  EXPECT_EQ(sample(*models[0], pos, neg, req, nullptr).status().code(), StatusCode::kInvalidArgument);
  at::set_num_threads(threads_before);
}

// The same over real c10d groups (Gloo over loopback, engine/runtime/c10d_group.h), one group per member thread
// joined through an in-process store: 1, 2 and 3 members, cfg 5 and cfg 1, the bytes of no group.
TEST(TiledDiffusionSample, C10dGlooGroupsGiveTheUngroupedLatent) {
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);
  std::vector<std::shared_ptr<Model>> models;
  for (int r = 0; r < 3; ++r) {
    auto base =
        load_model((std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {})
            .value();
    models.push_back(apply_tiled_diffusion(base, tile_sample_options(TileMethod::kMultiDiffusion, 64, 32)).value());
  }
  Conditioning pos = encode_prompt(*models[0], "a red heart").value();
  Conditioning neg = encode_prompt(*models[0], "").value();
  for (double cfg : {5.0, 1.0}) {
    SampleRequest req;
    req.seed = 5;
    req.steps = 2;
    req.cfg = cfg;
    req.latent = empty_latent(*models[0], 1, 128, 96);
    const at::Tensor alone = sample(*models[0], pos, neg, req, nullptr).value();
    for (int members : {1, 2, 3}) {
      auto store = runtime::make_hash_store();
      std::vector<Result<at::Tensor>> out(members, Status::internal("not run"));
      std::vector<std::thread> threads;
      for (int r = 0; r < members; ++r) {
        threads.emplace_back([&, r] {
          runtime::StepGroupOptions o;
          o.host = "127.0.0.1";
          auto group = runtime::make_step_group(store, r, members, o);
          if (!group.is_ok()) {
            out[r] = group.status();
            return;
          }
          SampleRequest mine = req;
          mine.tile_group = *group;
          mine.tile_speeds = members == 3 ? std::vector<double>{2, 1, 1} : std::vector<double>{};
          out[r] = sample(*models[r], pos, neg, mine, nullptr);
        });
      }
      for (auto& t : threads) t.join();
      for (int r = 0; r < members; ++r) {
        ASSERT_TRUE(out[r].is_ok()) << out[r].status().to_string();
        EXPECT_TRUE(at::equal(*out[r], alone)) << "cfg " << cfg << ", " << members << " members, rank " << r;
      }
    }
  }
  at::set_num_threads(threads_before);
}

TEST(TiledDiffusionSample, BadOptionsAreNamedErrors) {
  std::shared_ptr<Model> m = tiles::tile_tiny();
  Conditioning pos = encode_prompt(*m, "a red heart").value();
  // 64×64 px: the 768-px tile is clamped to 8 cells, as wide as the 64-px overlap.
  auto tiled = apply_tiled_diffusion(m, tile_sample_options(TileMethod::kMixtureOfDiffusers, 768, 64)).value();
  Status s;
  tile_sample(tiled, 64, 64, 5.0, pos, &s);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tile_overlap"), std::string::npos) << s.to_string();
  EXPECT_FALSE(apply_tiled_diffusion(m, tile_sample_options(TileMethod::kMultiDiffusion, 4, 0)).is_ok());
  EXPECT_FALSE(apply_tiled_diffusion(m, tile_sample_options(TileMethod::kMultiDiffusion, 64, -8)).is_ok());
  TiledDiffusionOptions zero_batch = tile_sample_options(TileMethod::kMultiDiffusion, 64, 0);
  zero_batch.tile_batch_size = 0;
  EXPECT_FALSE(apply_tiled_diffusion(m, zero_batch).is_ok());
  EXPECT_FALSE(apply_tiled_diffusion(nullptr, zero_batch).is_ok());
  tiles::TileThreadGroup group(1);
  SampleRequest req;
  req.latent = empty_latent(*m, 1, 64, 64);
  req.tile_group = std::make_shared<tiles::TileThreadGroup::Member>(&group, 0);
  EXPECT_EQ(sample(*m, pos, pos, req, nullptr).status().code(), StatusCode::kInvalidArgument);  // not tiled
  EXPECT_EQ(parse_tile_method("SpotDiffusion").status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(parse_tile_method("Mixture of diffusers").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_tile_method("Mixture of Diffusers").value(), TileMethod::kMixtureOfDiffusers);
}

}  // namespace
}  // namespace netdist
