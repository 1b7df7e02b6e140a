#include "engine/text/text_encoder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace netdist::text {
namespace {

ClipTextModel make_tiny_encoder(uint64_t seed) {
  torch::manual_seed(seed);
  ClipTextModel model(ClipTextConfig::tiny());
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0.0, 0.3);
  return model;
}

EncodeOptions tiny_options() {
  EncodeOptions o;
  o.start_id = 62;
  o.end_id = 63;
  o.pad_id = 63;
  o.layer_idx = -2;
  o.final_ln = false;
  return o;
}

WeightedTokens window(std::vector<int> words, float weight = 1.0f, int length = 77) {
  WeightedTokens t;
  t.ids.push_back(62);
  for (int w : words) t.ids.push_back(w);
  t.ids.push_back(63);
  t.ids.resize(length, 63);
  t.weights.assign(length, 1.0f);
  for (size_t i = 1; i <= words.size(); ++i) t.weights[i] = weight;
  return t;
}

at::Tensor ids_tensor(const WeightedTokens& t) {
  std::vector<int64_t> ids(t.ids.begin(), t.ids.end());
  return torch::tensor(ids, at::kLong).unsqueeze(0);
}

TEST(TextEncoder, UnitWeightsEqualPlainEncode) {
  ClipTextModel m = make_tiny_encoder(1);
  WeightedTokens w = window({5, 6, 7});
  Result<Conditioning> c = encode_weighted(*m, {w}, tiny_options());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  ClipTextOutput plain = m->forward(ids_tensor(w), -2, false);
  EXPECT_EQ(c->hidden.sizes(), (at::IntArrayRef{1, 77, 16}));
  EXPECT_TRUE(torch::equal(c->hidden, plain.hidden));
  EXPECT_TRUE(torch::equal(c->pooled, plain.pooled));
}

TEST(TextEncoder, WeightInterpolatesTowardEmptyPrompt) {
  ClipTextModel m = make_tiny_encoder(2);
  WeightedTokens w = window({5, 6, 7});
  w.weights[2] = 1.5f;
  w.weights[3] = 0.25f;
  EncodeOptions o = tiny_options();
  Result<Conditioning> c = encode_weighted(*m, {w}, o);
  ASSERT_TRUE(c.is_ok());
  at::Tensor z = m->forward(ids_tensor(w), -2, false).hidden[0];
  WeightedTokens empty = window({});
  at::Tensor z_empty = m->forward(ids_tensor(empty), -2, false).hidden[0];
  for (int j = 0; j < 77; ++j) {
    at::Tensor expected = w.weights[j] == 1.0f ? z[j] : (z[j] - z_empty[j]) * w.weights[j] + z_empty[j];
    EXPECT_TRUE(torch::allclose(c->hidden[0][j], expected, 1e-5, 1e-6)) << "position " << j;
  }
  EXPECT_FALSE(torch::allclose(c->hidden[0][2], z[2]));
  EXPECT_TRUE(torch::allclose(c->pooled, m->forward(ids_tensor(w), -2, false).pooled, 1e-5, 1e-6));
}

TEST(TextEncoder, EmptyPromptUsesPadIdAfterEnd) {
  ClipTextModel m = make_tiny_encoder(3);
  EncodeOptions o = tiny_options();
  o.pad_id = 0;
  WeightedTokens w = window({5});
  w.weights[1] = 2.0f;
  Result<Conditioning> c = encode_weighted(*m, {w}, o);
  ASSERT_TRUE(c.is_ok());
  WeightedTokens empty;
  empty.ids.assign(77, 0);
  empty.ids[0] = 62;
  empty.ids[1] = 63;
  at::Tensor z = m->forward(ids_tensor(w), -2, false).hidden[0][1];
  at::Tensor ze = m->forward(ids_tensor(empty), -2, false).hidden[0][1];
  EXPECT_TRUE(torch::allclose(c->hidden[0][1], (z - ze) * 2.0f + ze, 1e-5, 1e-6));

  Result<Conditioning> none = encode_weighted(*m, {}, o);
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->hidden.sizes(), (at::IntArrayRef{1, 2, 16}));
}

TEST(TextEncoder, WindowsConcatenateAndPoolFromFirst) {
  ClipTextModel m = make_tiny_encoder(4);
  WeightedTokens a = window({5, 6}), b = window({9, 10, 11, 12});
  Result<Conditioning> c = encode_weighted(*m, {a, b}, tiny_options());
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->hidden.sizes(), (at::IntArrayRef{1, 154, 16}));
  ClipTextOutput oa = m->forward(ids_tensor(a), -2, false), ob = m->forward(ids_tensor(b), -2, false);
  EXPECT_TRUE(torch::allclose(c->hidden.slice(1, 0, 77), oa.hidden, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(c->hidden.slice(1, 77, 154), ob.hidden, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(c->pooled, oa.pooled, 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(c->pooled, ob.pooled));
}

TEST(TextEncoder, SdxlConcatenatesChannelsAndPoolsFromG) {
  ClipTextModel l = make_tiny_encoder(5);
  ClipTextConfig g_config = ClipTextConfig::tiny();
  g_config.hidden_size = 24;
  g_config.num_heads = 3;
  g_config.projection_dim = 24;
  torch::manual_seed(6);
  ClipTextModel g(g_config);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : g->parameters()) p.normal_(0.0, 0.3);
  }
  EncodeOptions ol = tiny_options(), og = tiny_options();
  og.pad_id = 0;
  WeightedTokens wl = window({5, 6}), wg = window({5, 6});
  std::fill(wg.ids.begin() + 4, wg.ids.end(), 0);
  Result<Conditioning> c = encode_sdxl(*l, {wl, wl}, ol, *g, {wg}, og);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->hidden.sizes(), (at::IntArrayRef{1, 77, 40}));
  EXPECT_TRUE(torch::allclose(c->hidden.slice(2, 0, 16), l->forward(ids_tensor(wl), -2, false).hidden, 1e-5, 1e-6));
  ClipTextOutput og_out = g->forward(ids_tensor(wg), -2, false);
  EXPECT_TRUE(torch::allclose(c->hidden.slice(2, 16, 40), og_out.hidden, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(c->pooled, og_out.pooled, 1e-5, 1e-6));
}

TEST(TextEncoder, BadInputIsNamed) {
  ClipTextModel m = make_tiny_encoder(7);
  WeightedTokens w = window({5});
  w.ids[3] = 64;
  Status s = encode_weighted(*m, {window({1}), w}, tiny_options()).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token window 1 position 3: token id 64"), std::string::npos) << s.message();
  w = window({5});
  w.weights.pop_back();
  s = encode_weighted(*m, {w}, tiny_options()).status();
  EXPECT_NE(s.message().find("77 ids but 76 weights"), std::string::npos) << s.message();
  EncodeOptions o = tiny_options();
  o.layer_idx = -4;
  s = encode_weighted(*m, {window({5})}, o).status();
  EXPECT_NE(s.message().find("CLIP layer -4"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace netdist::text
