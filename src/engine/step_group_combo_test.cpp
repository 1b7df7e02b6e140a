// Combined step-group modes on the embedded model (CPU fp32, issue #17): CFG split × tiles and rows × CFG on
// four members (one Model and one thread each), whose sub-groups (engine/runtime/c10d_group.h make_cfg_grid)
// are Gloo groups over loopback joined through an in-process store. What must hold (docs/ARCHITECTURE.md,
// "Exactness contract"): every member returns the same latent; CFG split × tiles on 4 equals CFG split on 2
// of the same tiled model bit for bit (tile shares do not change a tile's bytes, whatever the speeds); rows ×
// CFG on 4 equals CFG split on 2 of the whole batch bit for bit (rows are cut at micro-batch bounds); both
// equal one process within CFG split's tolerance (cfg_split_test.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <atomic>
#include <cstdio>
#include <functional>
#include <thread>

#include <ATen/Parallel.h>

#include "engine/row_group.h"
#include "engine/runtime/c10d_group.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"
#include "netdist/tiled_diffusion.h"

namespace netdist {
namespace {

constexpr double kComboCfgSplitMaxAbs = 5e-3;  // as cfg_split_test.cpp's bound

struct ComboMember {
  std::shared_ptr<Model> plain, tiled;
  Conditioning positive, negative;
};

// Four members' models (each Model samples one call at a time), loaded once.
ComboMember& combo_member(int index) {
  static ComboMember members[4];
  static std::once_flag once;
  std::call_once(once, [] {
    for (auto& m : members) {
      auto loaded = load_model(
          (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {});
      if (!loaded.is_ok()) continue;
      m.plain = *loaded;
      TiledDiffusionOptions o;
      o.method = TileMethod::kMultiDiffusion;
      o.tile_width = o.tile_height = 64;
      o.tile_overlap = 32;
      o.tile_batch_size = 1;
      m.tiled = apply_tiled_diffusion(m.plain, o).value();
      m.positive = encode_prompt(*m.plain, "a red heart").value();
      m.negative = encode_prompt(*m.plain, "blurry").value();
    }
  });
  return members[index];
}

SampleRequest combo_request(int64_t batch, int64_t cells_h, int64_t cells_w) {
  SampleRequest req;
  req.seed = 77;
  req.steps = 2;
  req.cfg = 5.0;
  req.sampler = "euler_ancestral";
  req.latent = at::zeros({batch, 4, cells_h, cells_w});
  return req;
}

// `members` threads run `body(rank, store)`; one intra-op thread each while they run.
void combo_threads(int members, const std::function<void(int, const c10::intrusive_ptr<c10d::Store>&)>& body) {
  const int saved = at::get_num_threads();
  at::set_num_threads(1);
  auto store = runtime::make_hash_store();
  std::vector<std::thread> threads;
  for (int r = 0; r < members; ++r) threads.emplace_back([&, r] { body(r, store); });
  for (auto& t : threads) t.join();
  at::set_num_threads(saved);
}

runtime::StepGroupOptions combo_options() {
  runtime::StepGroupOptions o;
  o.host = "127.0.0.1";
  o.timeout = std::chrono::milliseconds(20000);
  return o;
}

// CFG split on 2 members (rank 0 / 1 as members 0 / 1) of `req` on the tiled or plain model.
std::vector<Result<at::Tensor>> combo_cfg_pair(const SampleRequest& req, bool tiled) {
  std::vector<Result<at::Tensor>> out(2, Status::internal("not run"));
  combo_threads(2, [&](int r, const auto& store) {
    auto group = runtime::make_step_group(store, r, 2, combo_options());
    if (!group.is_ok()) {
      out[r] = group.status();
      return;
    }
    ComboMember& m = combo_member(r);
    SampleRequest mine = req;
    mine.group = *group;
    mine.cfg_split = true;
    out[r] = sample(tiled ? *m.tiled : *m.plain, m.positive, m.negative, mine, nullptr);
  });
  return out;
}

// Four members in a CFG grid: the pair splits CFG, the cross group shares tiles (`tiles`) or rows.
std::vector<Result<at::Tensor>> combo_grid(const SampleRequest& req, bool tiles, std::vector<double> speeds = {},
                                           int stop_member = -1) {
  std::vector<Result<at::Tensor>> out(4, Status::internal("not run"));
  combo_threads(4, [&](int r, const auto& store) {
    auto grid = runtime::make_cfg_grid(store, r, 4, combo_options());
    if (!grid.is_ok()) {
      out[r] = grid.status();
      return;
    }
    ComboMember& m = combo_member(r);
    SampleRequest mine = req;
    mine.group = grid->pair;
    mine.cfg_split = true;
    if (tiles) {
      mine.tile_group = grid->cross;
      mine.tile_speeds = speeds;
    } else {
      mine.row_group = grid->cross;
    }
    ProgressFn progress = [&](int step, int) { return !(r == stop_member && step == 1); };
    out[r] = sample(tiles ? *m.tiled : *m.plain, m.positive, m.negative, mine, progress);
  });
  return out;
}

double combo_max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(StepGroupCombo, CfgTimesTilesOnFourEqualsCfgSplitOfTheTiledModel) {
  ASSERT_TRUE(combo_member(0).tiled) << "the embedded model did not load";
  const SampleRequest req = combo_request(1, 16, 12);  // 128×96 px: a 2×3 grid of 64² tiles
  auto pair = combo_cfg_pair(req, true);
  ASSERT_TRUE(pair[0].is_ok()) << pair[0].status().to_string();
  for (const std::vector<double>& speeds : {std::vector<double>{}, std::vector<double>{3.0, 1.0}}) {
    auto grid = combo_grid(req, true, speeds);
    for (int r = 0; r < 4; ++r) {
      ASSERT_TRUE(grid[r].is_ok()) << "member " << r << ": " << grid[r].status().to_string();
      EXPECT_TRUE(at::equal(*grid[r], *pair[0])) << "member " << r << ", " << speeds.size() << " speeds";
    }
  }
  ComboMember& m = combo_member(0);
  const at::Tensor alone = sample(*m.tiled, m.positive, m.negative, req, nullptr).value();
  const double diff = combo_max_abs(*pair[0], alone);
  std::printf("cfg+tiles vs one process: max |diff| %.3g\n", diff);
  EXPECT_LE(diff, kComboCfgSplitMaxAbs);
  EXPECT_GT(combo_max_abs(alone, at::zeros_like(alone)), 0.1) << "the sampling did nothing";
}

TEST(StepGroupCombo, RowsTimesCfgOnFourEqualsCfgSplitOfTheBatch) {
  ASSERT_TRUE(combo_member(0).plain) << "the embedded model did not load";
  const SampleRequest req = combo_request(2, 8, 8);
  auto pair = combo_cfg_pair(req, false);
  ASSERT_TRUE(pair[0].is_ok()) << pair[0].status().to_string();
  auto grid = combo_grid(req, false);
  for (int r = 0; r < 4; ++r) {
    ASSERT_TRUE(grid[r].is_ok()) << "member " << r << ": " << grid[r].status().to_string();
    EXPECT_EQ(grid[r]->size(0), 2);
    EXPECT_TRUE(at::equal(*grid[r], *pair[0])) << "member " << r;
  }
  ComboMember& m = combo_member(0);
  const at::Tensor alone = sample(*m.plain, m.positive, m.negative, req, nullptr).value();
  const double diff = combo_max_abs(*grid[0], alone);
  std::printf("rows x cfg vs one process: max |diff| %.3g\n", diff);
  EXPECT_LE(diff, kComboCfgSplitMaxAbs);
  EXPECT_FALSE(at::equal(grid[0]->select(0, 0), grid[0]->select(0, 1))) << "both rows got the same noise";
}

TEST(StepGroupCombo, AnInterruptInOneRowPairFailsEveryMemberNamingIt) {
  ASSERT_TRUE(combo_member(0).plain);
  auto grid = combo_grid(combo_request(2, 8, 8), false, {}, 3);
  for (int r = 0; r < 4; ++r) {
    ASSERT_FALSE(grid[r].is_ok()) << "member " << r << " finished although member 3 stopped";
    EXPECT_EQ(grid[r].status().code(), StatusCode::kCancelled) << grid[r].status().to_string();
  }
  EXPECT_NE(grid[0].status().message().find("rows [1, 2)"), std::string::npos) << grid[0].status().to_string();
}

TEST(StepGroupCombo, RowBoundsFollowMicroBatchesAndRefuseTooFewRows) {
  EXPECT_EQ(rows::shared_row_bounds(2, 0, 2, 2).value(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(rows::shared_row_bounds(5, 0, 5, 2).value(), (std::vector<int64_t>{0, 2, 5}));
  EXPECT_EQ(rows::shared_row_bounds(4, 1, 4, 3).value(), (std::vector<int64_t>{1, 2, 3, 4}));
  auto few = rows::shared_row_bounds(1, 0, 1, 2);
  EXPECT_EQ(few.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(few.status().message().find("micro-batches"), std::string::npos) << few.status().to_string();
  EXPECT_EQ(rows::shared_row_bounds(2, 1, 3, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(runtime::make_cfg_grid(runtime::make_hash_store(), 0, 3, combo_options()).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace netdist
