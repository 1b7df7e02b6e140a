#include "engine/runtime/torch_compat.h"

#include <gtest/gtest.h>

namespace netdist::runtime {
namespace {

at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal) {
  at::Tensor s = at::matmul(q.to(at::kDouble), k.to(at::kDouble).transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  if (causal) {
    for (int64_t i = 0; i < s.size(-2); ++i)
      for (int64_t j = i + 1; j < s.size(-1); ++j) s.select(-2, i).select(-1, j).fill_(-1e300);
  }
  return at::matmul(at::softmax(s, -1), v.to(at::kDouble)).to(at::kFloat);
}

TEST(TorchCompat, VersionIsKnown) {
  std::string v = torch_version();
  EXPECT_TRUE(v.rfind("1.13", 0) == 0 || v.rfind("2.", 0) == 0) << v;
}

TEST(TorchCompat, AttentionMatchesReference) {
  at::manual_seed(7);
  at::Tensor q = at::randn({2, 3, 5, 8});
  at::Tensor k = at::randn({2, 3, 7, 8});
  at::Tensor v = at::randn({2, 3, 7, 8});
  at::Tensor got = attention(q, k, v, false);
  EXPECT_LT((got - reference_attention(q, k, v, false)).abs().max().item<double>(), 1e-5);
}

TEST(TorchCompat, CausalAttentionMatchesReference) {
  at::manual_seed(8);
  at::Tensor q = at::randn({1, 2, 6, 4});
  at::Tensor k = at::randn({1, 2, 6, 4});
  at::Tensor v = at::randn({1, 2, 6, 4});
  at::Tensor got = attention(q, k, v, true);
  EXPECT_LT((got - reference_attention(q, k, v, true)).abs().max().item<double>(), 1e-5);
  // Row 0 attends only to key 0.
  EXPECT_LT((got.select(2, 0) - v.select(2, 0)).abs().max().item<double>(), 1e-6);
}

}  // namespace
}  // namespace netdist::runtime
