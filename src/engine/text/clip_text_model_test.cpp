#include "engine/text/clip_text_model.h"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace netdist::text {
namespace {

ClipTextModel make_tiny(uint64_t seed = 1) {
  torch::manual_seed(seed);
  ClipTextModel model(ClipTextConfig::tiny());
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.normal_(0.0, 0.3);
  return model;
}

at::Tensor ids_with_eos(std::vector<int64_t> eos_positions, int64_t length = 77) {
  at::Tensor ids = torch::randint(1, 60, {static_cast<int64_t>(eos_positions.size()), length}, at::kLong);
  for (size_t b = 0; b < eos_positions.size(); ++b) {
    ids[b][0] = 0;
    ids.index_put_({static_cast<int64_t>(b), torch::indexing::Slice(eos_positions[b], torch::indexing::None)}, 63);
  }
  return ids;
}

at::Tensor reference_layer_norm(const at::Tensor& x, const torch::nn::LayerNorm& n) {
  at::Tensor mean = x.mean(-1, true);
  at::Tensor var = (x - mean).pow(2).mean(-1, true);
  return (x - mean) / (var + 1e-5).sqrt() * n->weight + n->bias;
}

// Straightforward re-implementation of comfy/clip_model.py with an explicit additive causal mask.
std::vector<at::Tensor> reference_layers(ClipTextModelImpl& m, const at::Tensor& ids) {
  const ClipTextConfig& c = m.config();
  auto params = m.named_parameters();
  auto w = [&](const std::string& n) { return params[n]; };
  at::Tensor x = w("text_model.embeddings.token_embedding.weight").index_select(0, ids.flatten()).view(
                     {ids.size(0), ids.size(1), c.hidden_size}) +
                 w("text_model.embeddings.position_embedding.weight").slice(0, 0, ids.size(1));
  const int64_t l = ids.size(1), dh = c.hidden_size / c.num_heads;
  at::Tensor mask = torch::full({l, l}, -INFINITY).triu(1);
  std::vector<at::Tensor> outs;
  for (int i = 0; i < c.num_layers; ++i) {
    std::string p = "text_model.encoder.layers." + std::to_string(i) + ".";
    auto lin = [&](const at::Tensor& t, const std::string& n) {
      return at::matmul(t, w(p + n + ".weight").t()) + w(p + n + ".bias");
    };
    auto ln = [&](const at::Tensor& t, const std::string& n) {
      at::Tensor mean = t.mean(-1, true);
      at::Tensor var = (t - mean).pow(2).mean(-1, true);
      return (t - mean) / (var + 1e-5).sqrt() * w(p + n + ".weight") + w(p + n + ".bias");
    };
    at::Tensor h = ln(x, "layer_norm1");
    auto split = [&](const at::Tensor& t) { return t.view({ids.size(0), l, c.num_heads, dh}).transpose(1, 2); };
    at::Tensor q = split(lin(h, "self_attn.q_proj")), k = split(lin(h, "self_attn.k_proj")),
               v = split(lin(h, "self_attn.v_proj"));
    at::Tensor a = at::softmax(at::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(dh)) + mask, -1);
    at::Tensor o = at::matmul(a, v).transpose(1, 2).reshape({ids.size(0), l, c.hidden_size});
    x = x + lin(o, "self_attn.out_proj");
    at::Tensor f = lin(ln(x, "layer_norm2"), "mlp.fc1");
    f = f * torch::sigmoid(1.702 * f);
    x = x + lin(f, "mlp.fc2");
    outs.push_back(x);
  }
  return outs;
}

TEST(ClipTextModel, ShapesAndDtypes) {
  ClipTextModel m = make_tiny();
  ClipTextOutput out = m->forward(ids_with_eos({5, 9}), -1, true);
  EXPECT_EQ(out.hidden.sizes(), (at::IntArrayRef{2, 77, 16}));
  EXPECT_EQ(out.pooled.sizes(), (at::IntArrayRef{2, 8}));
  EXPECT_EQ(out.hidden.scalar_type(), at::kFloat);
  EXPECT_EQ(m->forward(ids_with_eos({5}), -1, true, /*project_pooled=*/false).pooled.sizes(),
            (at::IntArrayRef{1, 16}));
}

TEST(ClipTextModel, MatchesReferenceImplementation) {
  ClipTextModel m = make_tiny(3);
  at::Tensor ids = ids_with_eos({4, 20});
  std::vector<at::Tensor> ref = reference_layers(*m, ids);
  auto& final_ln = m->named_modules()["text_model.final_layer_norm"];
  torch::nn::LayerNorm ln = std::dynamic_pointer_cast<torch::nn::LayerNormImpl>(final_ln);
  ASSERT_TRUE(ln);
  for (int layer = -3; layer < 3; ++layer) {
    const int index = layer < 0 ? 3 + layer : layer;
    ClipTextOutput raw = m->forward(ids, layer, false);
    ClipTextOutput normed = m->forward(ids, layer, true);
    EXPECT_TRUE(torch::allclose(raw.hidden, ref[index], 1e-4, 1e-5)) << "layer " << layer;
    EXPECT_TRUE(torch::allclose(normed.hidden, reference_layer_norm(ref[index], ln), 1e-4, 1e-5)) << layer;
  }
}

TEST(ClipTextModel, AttentionIsCausal) {
  ClipTextModel m = make_tiny();
  at::Tensor a = ids_with_eos({30});
  at::Tensor b = a.clone();
  b[0][10] = (a[0][10].item<int64_t>() % 50) + 2;
  at::Tensor ha = m->forward(a, -1, true).hidden, hb = m->forward(b, -1, true).hidden;
  EXPECT_TRUE(torch::equal(ha.slice(1, 0, 10), hb.slice(1, 0, 10)));
  EXPECT_FALSE(torch::allclose(ha.slice(1, 10, 11), hb.slice(1, 10, 11)));
  EXPECT_FALSE(torch::allclose(ha.slice(1, 40, 41), hb.slice(1, 40, 41)));
}

TEST(ClipTextModel, PooledIsFinalNormAtFirstEos) {
  ClipTextModel m = make_tiny();
  at::Tensor ids = ids_with_eos({7, 12, 76});
  ClipTextOutput last = m->forward(ids, -1, true);
  ClipTextOutput unprojected = m->forward(ids, -2, false, false);
  const int64_t eos[] = {7, 12, 76};
  for (int b = 0; b < 3; ++b) {
    EXPECT_TRUE(torch::allclose(unprojected.pooled[b], last.hidden[b][eos[b]])) << b;
    at::Tensor projected = at::matmul(last.hidden[b][eos[b]], m->named_parameters()["text_projection.weight"].t());
    EXPECT_TRUE(torch::allclose(last.pooled[b], projected, 1e-5, 1e-6)) << b;
  }
  at::Tensor no_eos = torch::randint(1, 60, {1, 77}, at::kLong);
  EXPECT_TRUE(torch::allclose(m->forward(no_eos, -1, true, false).pooled[0], m->forward(no_eos, -1, true).hidden[0][0]));
}

TEST(ClipTextModel, HalfWeightsComputeInFloat) {
  ClipTextModel m = make_tiny();
  ClipTextModel rounded = make_tiny();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : rounded->parameters()) p.copy_(p.to(at::kHalf).to(at::kFloat));
  }
  m->to(at::kHalf);
  at::Tensor ids = ids_with_eos({9});
  ClipTextOutput half = m->forward(ids, -2, true);
  EXPECT_EQ(half.hidden.scalar_type(), at::kFloat);
  EXPECT_TRUE(torch::allclose(half.hidden, rounded->forward(ids, -2, true).hidden, 1e-5, 1e-6));
}

TEST(ClipTextModel, LoadsHfNamesAndDetectsConfig) {
  ClipTextModel a = make_tiny(5);
  runtime::WeightMap weights = runtime::module_weights(*a, "clip_l.transformer.");
  ASSERT_TRUE(weights.count("clip_l.transformer.text_model.encoder.layers.2.self_attn.q_proj.weight"));
  ASSERT_TRUE(weights.count("clip_l.transformer.text_projection.weight"));
  weights["clip_l.transformer.text_model.embeddings.position_ids"] = torch::arange(77).unsqueeze(0);
  ClipTextModel b(ClipTextConfig::tiny());
  ASSERT_TRUE(load_clip_text_weights(*b, weights, "clip_l.transformer.", "tiny.safetensors").is_ok());
  at::Tensor ids = ids_with_eos({3});
  EXPECT_TRUE(torch::equal(a->forward(ids, -1, true).pooled, b->forward(ids, -1, true).pooled));

  Status odd_heads = detect_clip_text_config(weights, "clip_l.transformer.").status();
  EXPECT_NE(odd_heads.message().find("hidden size 16 is not a multiple of the head size 64"), std::string::npos)
      << odd_heads.message();

  weights.erase("clip_l.transformer.text_model.encoder.layers.1.mlp.fc2.bias");
  Status missing = load_clip_text_weights(*b, weights, "clip_l.transformer.", "tiny.safetensors");
  EXPECT_NE(missing.message().find("layers.1.mlp.fc2.bias"), std::string::npos) << missing.message();
  EXPECT_FALSE(detect_clip_text_config(weights, "clip_g.transformer.").is_ok());
}

runtime::WeightMap meta_clip(const ClipTextConfig& c, const std::string& prefix) {
  auto meta = [](std::vector<int64_t> shape) { return at::empty(shape, at::TensorOptions().device(at::kMeta)); };
  runtime::WeightMap w;
  const int64_t d = c.hidden_size;
  w[prefix + "text_model.embeddings.token_embedding.weight"] = meta({c.vocab_size, d});
  w[prefix + "text_model.embeddings.position_embedding.weight"] = meta({77, d});
  for (int i = 0; i < c.num_layers; ++i) {
    std::string p = prefix + "text_model.encoder.layers." + std::to_string(i) + ".";
    w[p + "mlp.fc1.weight"] = meta({c.intermediate_size, d});
    w[p + "self_attn.q_proj.weight"] = meta({d, d});
  }
  if (c.projection_dim) w[prefix + "text_projection.weight"] = meta({c.projection_dim, d});
  return w;
}

TEST(ClipTextModel, DetectsPresetsFromShapes) {
  for (const ClipTextConfig& preset :
       {ClipTextConfig::clip_l(), ClipTextConfig::open_clip_h(), ClipTextConfig::open_clip_bigg()}) {
    Result<ClipTextConfig> c = detect_clip_text_config(meta_clip(preset, "x."), "x.");
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_EQ(*c, preset) << preset.hidden_size;
  }
}

}  // namespace
}  // namespace netdist::text
