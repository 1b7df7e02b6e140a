// Split = unsplit at the engine level: every micro-batch of a batch sampled alone (SampleRequest rows) is
// bit-identical to those rows of the whole batch, for a deterministic and an ancestral sampler; the
// micro-batch bounds balance 2 and 4 workers; a range that cuts a micro-batch is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <algorithm>
#include <vector>

#include <torch/torch.h>

#include "engine/micro_batch.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

std::shared_ptr<Model> tiny_model() {
  static std::shared_ptr<Model> model = [] {
    auto m = load_model(
        (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {});
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? *m : nullptr;
  }();
  return model;
}

void expect_rows_match(const std::string& sampler) {
  Model& m = *tiny_model();
  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning neg = encode_prompt(m, "").value();
  SampleRequest req;
  req.seed = 42;
  req.steps = 3;
  req.cfg = 7.0;
  req.sampler = sampler;
  req.latent = empty_latent(m, 5, 64, 64);
  at::Tensor whole = sample(m, pos, neg, req, nullptr).value();
  const std::vector<int64_t> bounds = micro_batch_bounds(5);
  ASSERT_EQ(bounds, (std::vector<int64_t>{0, 1, 2, 3, 5}));
  for (size_t g = 0; g + 1 < bounds.size(); ++g) {
    SampleRequest part = req;
    part.row_begin = bounds[g];
    part.row_end = bounds[g + 1];
    at::Tensor rows = sample(m, pos, neg, part, nullptr).value();
    EXPECT_TRUE(torch::equal(rows, whole.slice(0, part.row_begin, part.row_end)))
        << sampler << " rows [" << part.row_begin << ", " << part.row_end
        << ") differ from the unsplit batch";
  }
}

TEST(SplitRows, EulerRowsEqualUnsplitBatch) { expect_rows_match("euler"); }
TEST(SplitRows, AncestralRowsEqualUnsplitBatch) { expect_rows_match("euler_ancestral"); }

TEST(SplitRows, RangeThatCutsAMicroBatchIsRefused) {
  Model& m = *tiny_model();
  Conditioning pos = encode_prompt(m, "a red heart").value();
  SampleRequest req;
  req.steps = 2;
  req.latent = empty_latent(m, 5, 64, 64);
  req.row_begin = 2;  // ends inside micro-batch [3, 5)
  req.row_end = 4;
  auto r = sample(m, pos, pos, req, nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("cut a micro-batch"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find("{0, 1, 2, 3, 5}"), std::string::npos) << r.status().to_string();
}

bool has_bound(const std::vector<int64_t>& bounds, int64_t row) {
  return std::find(bounds.begin(), bounds.end(), row) != bounds.end();
}

// Contiguous runs of groups are what the cluster hands one worker: halves and quarters of the batch must be
// runs of whole groups whenever n allows it, so 2 or 4 equal workers get equal work.
TEST(MicroBatch, BoundsCoverTheBatchInAtMostEightImagesAndSplitIntoEqualRuns) {
  EXPECT_EQ(micro_batch_bounds(0), (std::vector<int64_t>{0}));
  EXPECT_EQ(micro_batch_bounds(1), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(micro_batch_bounds(10), (std::vector<int64_t>{0, 2, 5, 7, 10}));
  EXPECT_EQ(micro_batch_bounds(33), (std::vector<int64_t>{0, 4, 8, 12, 16, 20, 24, 28, 33}));
  for (int64_t n = 1; n <= 200; ++n) {
    const std::vector<int64_t> b = micro_batch_bounds(n);
    ASSERT_EQ(b.front(), 0);
    ASSERT_EQ(b.back(), n);
    for (size_t g = 0; g + 1 < b.size(); ++g) {
      ASSERT_GE(b[g + 1] - b[g], 1) << n;
      ASSERT_LE(b[g + 1] - b[g], 8) << n;
    }
    if (n % 2 == 0) {
      EXPECT_TRUE(has_bound(b, n / 2)) << "n = " << n;
    }
    if (n % 4 == 0) {
      EXPECT_TRUE(has_bound(b, n / 4) && has_bound(b, 3 * n / 4)) << "n = " << n;
    }
  }
}

}  // namespace
}  // namespace netdist
