#include "engine/sampling/brownian_tree.h"

#include <cmath>

#include <gtest/gtest.h>

namespace netdist::sampling {
namespace {

// numpy/random/tests/test_seed_sequence.py test_reference_data (pool size 4).
TEST(BrownianTree, SeedSequenceMatchesNumpyReference) {
  EXPECT_EQ(seed_sequence_state(std::vector<uint32_t>{3735928559u, 195939070u, 229505742u, 305419896u}, {}, 4, 4),
            (std::vector<uint32_t>{3914649087u, 576849849u, 3593928901u, 2229911004u}));
  EXPECT_EQ(seed_sequence_state(std::vector<uint32_t>{3668361503u, 4165561550u, 1661411377u, 3634257570u}, {}, 4, 4),
            (std::vector<uint32_t>{2240804226u, 3691353228u, 1365957195u, 2654016646u}));
}

TEST(BrownianTree, SeedSequenceEntropyAndSpawnKeys) {
  EXPECT_EQ(seed_sequence_state(uint64_t{0}, {}, 24, 3), seed_sequence_state(std::vector<uint32_t>{0}, {}, 24, 3));
  EXPECT_EQ(seed_sequence_state((uint64_t{7} << 32) | 5, {}, 24, 3),
            seed_sequence_state(std::vector<uint32_t>{5, 7}, {}, 24, 3));
  // A spawn key pads the run entropy to the pool size first (numpy >= 1.19).
  std::vector<uint32_t> padded(24, 0);
  padded[0] = 9;
  padded.push_back(3);
  padded.push_back(2);
  EXPECT_EQ(seed_sequence_state(uint64_t{9}, {3, 2}, 24, 4), seed_sequence_state(padded, {}, 24, 4));
  EXPECT_NE(seed_sequence_state(uint64_t{9}, {3, 2}, 24, 4), seed_sequence_state(uint64_t{9}, {2, 2}, 24, 4));
}

TEST(BrownianTree, RoundsLikePython) {
  EXPECT_EQ(round_to_micro(0.0291671585), 0.029167);
  EXPECT_EQ(round_to_micro(14.614641189575195), 14.614641);
  EXPECT_EQ(round_to_micro(0.0078125), 0.007812);  // exact tie → even
  EXPECT_EQ(round_to_micro(0.0000015), 0.000002);
  EXPECT_EQ(round_to_micro(7.3220705), 7.32207);  // binary value is below the tie
}

at::Tensor query(BrownianTree& tree, double a, double b) { return tree.increment(a, b); }

TEST(BrownianTree, DeterministicAndQueryOrderIndependent) {
  std::vector<int64_t> shape = {2, 4, 8, 8};
  BrownianTree first(0.03, 14.6, 123, shape, 0, 2, at::kFloat, at::kCPU);
  at::Tensor a = query(first, 1.0, 2.0);
  at::Tensor b = query(first, 0.5, 0.7);
  BrownianTree second(0.03, 14.6, 123, shape, 0, 2, at::kFloat, at::kCPU);
  at::Tensor b2 = query(second, 0.5, 0.7);
  at::Tensor a2 = query(second, 1.0, 2.0);
  EXPECT_TRUE(at::equal(a, a2));
  EXPECT_TRUE(at::equal(b, b2));
  BrownianTree other_seed(0.03, 14.6, 124, shape, 0, 2, at::kFloat, at::kCPU);
  EXPECT_FALSE(at::equal(query(other_seed, 1.0, 2.0), a));
}

TEST(BrownianTree, IncrementsAddUpAndHaveBrownianVariance) {
  std::vector<int64_t> shape = {1, 4, 64, 64};
  BrownianTree tree(0.0292, 14.6146, 8566257, shape, 0, 1, at::kFloat, at::kCPU);
  at::Tensor whole = query(tree, 1.0, 3.0);
  at::Tensor left = query(tree, 1.0, 2.0);
  at::Tensor right = query(tree, 2.0, 3.0);
  EXPECT_LT((whole - (left + right)).abs().max().item<double>(), 1e-5);
  double var = whole.var().item<double>();
  EXPECT_NEAR(var, 2.0, 0.1);
  EXPECT_NEAR(query(tree, 0.1, 0.2).var().item<double>(), 0.1, 0.006);
  EXPECT_NEAR(query(tree, 0.0292, 14.6146).var().item<double>(), 14.6146 - 0.0292, 0.5);
  EXPECT_EQ(query(tree, 2.0, 2.0).abs().max().item<double>(), 0.0);
  EXPECT_EQ(query(tree, 1.0, 1.0000001).abs().max().item<double>(), 0.0);
  at::Tensor clamped = query(tree, 10.0, 100.0);
  EXPECT_TRUE(at::equal(clamped, query(tree, 10.0, 14.6146)));
}

TEST(BrownianTree, ShardRowsEqualFullBatchRows) {
  std::vector<int64_t> shape = {4, 4, 8, 8};
  BrownianTree full(0.03, 14.6, 77, shape, 0, 4, at::kFloat, at::kCPU);
  BrownianTree shard(0.03, 14.6, 77, shape, 1, 3, at::kFloat, at::kCPU);
  for (auto [a, b] : {std::pair{7.0, 9.5}, std::pair{0.03, 0.5}, std::pair{2.25, 2.5}}) {
    EXPECT_TRUE(at::equal(query(shard, a, b), query(full, a, b).slice(0, 1, 3))) << a << " " << b;
  }
}

TEST(BrownianTree, NoiseSamplerIsUnitVarianceAndSignAware) {
  std::vector<int64_t> shape = {1, 4, 64, 64};
  at::Tensor sigma_min = at::full({}, 0.0292f);
  at::Tensor sigma_max = at::full({}, 14.6146f);
  BrownianTreeNoiseSampler sampler(sigma_min, sigma_max, 3, shape, 0, 1, at::kFloat, at::kCPU);
  at::Tensor s0 = at::full({}, 5.0f);
  at::Tensor s1 = at::full({}, 3.0f);
  at::Tensor down = sampler(s0, s1);
  EXPECT_NEAR(down.var().item<double>(), 1.0, 0.05);
  at::Tensor up = sampler(s1, s0);
  EXPECT_TRUE(at::equal(up, -down));
  BrownianTree tree(sigma_min.item<double>(), sigma_max.item<double>(), 3, shape, 0, 1, at::kFloat, at::kCPU);
  at::Tensor expected = tree.increment(3.0, 5.0) * -1 / std::sqrt(2.0f);
  EXPECT_LT((down - expected).abs().max().item<double>(), 1e-6);
}

}  // namespace
}  // namespace netdist::sampling
