// Split = unsplit at the engine level: every row of a batch sampled alone (SampleRequest rows) is
// bit-identical to that row of the whole batch, for a deterministic and an ancestral sampler.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "netdist/engine.h"

namespace netdist {
namespace {

std::shared_ptr<Model> tiny_model() {
  static std::shared_ptr<Model> model = [] {
    auto m = load_model(std::string(NETDIST_SOURCE_DIR) + "/models/tiny-emoji.safetensors", {});
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
  for (int64_t r = 0; r < 5; r += 2) {
    SampleRequest part = req;
    part.row_begin = r;
    part.row_end = std::min<int64_t>(5, r + 2);
    at::Tensor rows = sample(m, pos, neg, part, nullptr).value();
    EXPECT_TRUE(torch::equal(rows, whole.slice(0, part.row_begin, part.row_end)))
        << sampler << " rows [" << part.row_begin << ", " << part.row_end
        << ") differ from the unsplit batch";
  }
}

TEST(SplitRows, EulerRowsEqualUnsplitBatch) { expect_rows_match("euler"); }
TEST(SplitRows, AncestralRowsEqualUnsplitBatch) { expect_rows_match("euler_ancestral"); }

}  // namespace
}  // namespace netdist
