// The T5 encoder on tiny random weights: shapes, determinism, an independent re-implementation of
// comfy/text_encoders/t5.py, the relative-position buckets, masks, files (fp32/fp16/fp8) and bad weights.
#include "engine/text/t5_encoder.h"

#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include "engine/runtime/tensor_io.h"

namespace netdist::text {
namespace {

T5Config tiny_config() {
  T5Config c;
  c.vocab_size = 64;
  c.d_model = 32;
  c.num_layers = 3;
  c.num_heads = 4;
  c.d_kv = 8;
  c.d_ff = 48;
  return c;
}

// ComfyUI-named random weights for config c.
runtime::WeightMap tiny_weights(const T5Config& c, uint64_t seed = 3) {
  torch::manual_seed(seed);
  T5EncoderModel shape(c);
  runtime::WeightMap w;
  for (const auto& p : shape->named_parameters(true)) {
    const bool norm = p.key().find("layer_norm") != std::string::npos;
    w[p.key()] = norm ? 1.0 + 0.1 * torch::randn(p.value().sizes()) : 0.3 * torch::randn(p.value().sizes());
  }
  return w;
}

T5EncoderModel tiny_model(const runtime::WeightMap& w, const T5Config& c = tiny_config()) {
  T5EncoderModel model(c);
  Status s = load_t5_encoder_weights(*model, w, "", "tiny");
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return model;
}

int64_t reference_bucket(int64_t rp) {  // bidirectional, 32 buckets, max distance 128, in double precision
  int64_t bucket = rp > 0 ? 16 : 0;
  const int64_t n = std::abs(rp);
  if (n < 8) return bucket + n;
  const auto large = static_cast<int64_t>(8 + std::log(static_cast<double>(n) / 8) / std::log(16.0) * 8);
  return bucket + std::min<int64_t>(large, 15);
}

// Straightforward comfy/text_encoders/t5.py for L < 16 (no bucket boundary is near a rounding edge there).
at::Tensor reference_forward(runtime::WeightMap& w, const T5Config& c, const at::Tensor& ids) {
  const int64_t b = ids.size(0), l = ids.size(1);
  auto rms = [&](const at::Tensor& x, const std::string& name) {
    return w[name] * x / torch::sqrt(x.pow(2).mean(-1, true) + 1e-6);
  };
  at::Tensor bias = torch::zeros({1, c.num_heads, l, l});
  for (int64_t i = 0; i < l; ++i) {
    for (int64_t j = 0; j < l; ++j) {
      bias.index_put_(
          {0, torch::indexing::Slice(), i, j},
          w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][reference_bucket(j - i)]);
    }
  }
  at::Tensor x = w["shared.weight"].index_select(0, ids.flatten()).view({b, l, c.d_model});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
    auto lin = [&](const at::Tensor& t, const std::string& n) {
      return torch::matmul(t, w[p + n + ".weight"].t());
    };
    at::Tensor h = rms(x, p + "0.layer_norm.weight");
    auto heads = [&](const at::Tensor& t) { return t.view({b, l, c.num_heads, c.d_kv}).transpose(1, 2); };
    at::Tensor q = heads(lin(h, "0.SelfAttention.q")), k = heads(lin(h, "0.SelfAttention.k")),
               v = heads(lin(h, "0.SelfAttention.v"));
    at::Tensor a = torch::softmax(torch::matmul(q, k.transpose(-1, -2)) + bias, -1);
    x = x +
        lin(torch::matmul(a, v).transpose(1, 2).reshape({b, l, c.num_heads * c.d_kv}), "0.SelfAttention.o");
    h = rms(x, p + "1.layer_norm.weight");
    at::Tensor g = lin(h, "1.DenseReluDense.wi_0");
    g = 0.5 * g * (1 + torch::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g.pow(3))));
    x = x + lin(g * lin(h, "1.DenseReluDense.wi_1"), "1.DenseReluDense.wo");
  }
  return rms(x, "encoder.final_layer_norm.weight");
}

TEST(T5Encoder, DetectsTheConfigFromShapes) {
  runtime::WeightMap w = tiny_weights(tiny_config());
  auto config = detect_t5_config(w, "", "tiny");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(*config, tiny_config());
  runtime::WeightMap prefixed;
  for (auto& [k, v] : w) prefixed["text_encoders.t5xxl.transformer." + k] = v;
  EXPECT_EQ(detect_t5_config(prefixed, "text_encoders.t5xxl.transformer.", "ckpt").value(), tiny_config());
}

TEST(T5Encoder, MatchesAReferenceImplementation) {
  torch::NoGradGuard no_grad;
  runtime::WeightMap w = tiny_weights(tiny_config());
  T5EncoderModel model = tiny_model(w);
  at::Tensor ids = torch::randint(0, 64, {2, 12}, at::kLong);
  at::Tensor out = model->forward(ids);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 12, 32}));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  at::Tensor expected = reference_forward(w, tiny_config(), ids);
  EXPECT_LT((out - expected).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::equal(out, model->forward(ids)));  // deterministic
  // Each row is independent of the others in the batch.
  EXPECT_LT((model->forward(ids.slice(0, 1, 2)) - out.slice(0, 1, 2)).abs().max().item<double>(), 1e-5);
}

TEST(T5Encoder, RelativePositionBuckets) {
  at::Tensor rp = torch::tensor({0, 3, -3, 8, -8, 12, 15, 16, -16, 32, 64, 127, 128, -200, 1000}, at::kLong);
  at::Tensor got = t5_relative_position_bucket(rp, true, 32, 128);
  std::vector<int64_t> expected = {0, 19, 3, 24, 8, 25, 25, 26, 10, 28, 30, 31, 31, 15, 31};
  for (int64_t i = 0; i < rp.size(0); ++i) {
    EXPECT_EQ(got[i].item<int64_t>(), expected[static_cast<size_t>(i)])
        << "relative position " << rp[i].item<int64_t>();
  }
}

TEST(T5Encoder, AttentionMaskHidesPaddingKeys) {
  torch::NoGradGuard no_grad;
  T5EncoderModel model = tiny_model(tiny_weights(tiny_config()));
  at::Tensor ids = torch::tensor({{5, 9, 1, 0, 0, 0}, {7, 1, 0, 0, 0, 0}}, at::kLong);
  at::Tensor mask = t5_attention_mask(ids, 1);
  EXPECT_TRUE(torch::equal(mask, torch::tensor({{1, 1, 1, 0, 0, 0}, {1, 1, 0, 0, 0, 0}}, at::kLong)));
  at::Tensor masked = model->forward(ids, mask);
  at::Tensor changed_pad = ids.clone();
  changed_pad.index_put_({torch::indexing::Slice(), torch::indexing::Slice(3, torch::indexing::None)}, 17);
  // Masked keys do not reach the unmasked positions; without a mask they do.
  EXPECT_LT((model->forward(changed_pad, mask) - masked).slice(1, 0, 2).abs().max().item<double>(), 1e-6);
  EXPECT_GT((model->forward(changed_pad) - model->forward(ids)).slice(1, 0, 2).abs().max().item<double>(),
            1e-4);
}

TEST(T5Encoder, LoadsFp32Fp16AndFp8Files) {
  torch::NoGradGuard no_grad;
  const auto dir = std::filesystem::temp_directory_path() / ("t5_encoder_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  runtime::WeightMap w = tiny_weights(tiny_config());
  at::Tensor ids = torch::randint(0, 64, {1, 10}, at::kLong);
  at::Tensor expected = tiny_model(w)->forward(ids);

  ASSERT_TRUE(runtime::save_safetensors((dir / "f32.safetensors").string(), w).is_ok());
  auto f32 = load_t5_encoder((dir / "f32.safetensors").string());
  ASSERT_TRUE(f32.is_ok()) << f32.status().to_string();
  EXPECT_TRUE(torch::equal((*f32)->forward(ids), expected));

  runtime::WeightMap half;
  for (auto& [k, v] : w) half[k] = v.to(at::kHalf);
  ASSERT_TRUE(runtime::save_safetensors((dir / "f16.safetensors").string(), half).is_ok());
  auto f16 = load_t5_encoder((dir / "f16.safetensors").string());
  ASSERT_TRUE(f16.is_ok()) << f16.status().to_string();
  EXPECT_EQ((*f16)->named_parameters()["shared.weight"].scalar_type(), at::kHalf);  // stored dtype kept
  at::Tensor out16 = (*f16)->forward(ids);
  EXPECT_EQ(out16.scalar_type(), at::kFloat);  // computed in fp32
  runtime::WeightMap rounded;
  for (auto& [k, v] : half) rounded[k] = v.to(at::kFloat);
  EXPECT_LT((out16 - tiny_model(rounded)->forward(ids)).abs().max().item<double>(), 1e-5);

  ASSERT_TRUE(
      runtime::save_safetensors_mixed((dir / "f8.safetensors").string(), w, {}, [](const std::string& name) {
        return name.ends_with(".weight");
      }).is_ok());
  auto f8 = load_t5_encoder((dir / "f8.safetensors").string());
  ASSERT_TRUE(f8.is_ok()) << f8.status().to_string();
  EXPECT_TRUE(torch::isfinite((*f8)->forward(ids)).all().item<bool>());
  std::filesystem::remove_all(dir);
}

TEST(T5Encoder, BadWeightsNameTheKeyAndFile) {
  const T5Config c = tiny_config();
  auto error = [&](runtime::WeightMap w) {
    auto config = detect_t5_config(w, "", "bad.safetensors");
    if (!config.is_ok()) return config.status().to_string();
    T5EncoderModel model(*config);
    return load_t5_encoder_weights(*model, w, "", "bad.safetensors").to_string();
  };
  auto without = [&](const std::string& key) {
    runtime::WeightMap w = tiny_weights(c);
    w.erase(key);
    return w;
  };
  for (const std::string key :
       {"shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "encoder.block.2.layer.1.DenseReluDense.wo.weight", "encoder.final_layer_norm.weight"}) {
    const std::string message = error(without(key));
    EXPECT_NE(message.find("bad.safetensors"), std::string::npos) << key << ": " << message;
    EXPECT_NE(message.find(key), std::string::npos) << key << ": " << message;
  }
  runtime::WeightMap misshapen = tiny_weights(c);
  misshapen["encoder.block.1.layer.0.SelfAttention.k.weight"] = torch::zeros({3, 3});
  EXPECT_NE(error(misshapen).find("encoder.block.1.layer.0.SelfAttention.k.weight"), std::string::npos);
  runtime::WeightMap unexpected = tiny_weights(c);
  unexpected["encoder.block.0.layer.0.SelfAttention.qq.weight"] = torch::zeros({3});
  EXPECT_NE(error(unexpected).find("SelfAttention.qq.weight"), std::string::npos);
  runtime::WeightMap full_t5 = tiny_weights(c);  // decoder and lm_head of a full T5 file are ignored
  full_t5["decoder.block.0.layer.0.SelfAttention.q.weight"] = torch::zeros({3});
  full_t5["lm_head.weight"] = torch::zeros({3});
  EXPECT_EQ(error(full_t5), "ok");
  runtime::WeightMap scaled = tiny_weights(c);
  scaled["scaled_fp8"] = torch::zeros({0});
  EXPECT_NE(error(scaled).find("scaled_fp8"), std::string::npos);
  runtime::WeightMap v10 = tiny_weights(c);
  v10["encoder.block.0.layer.1.DenseReluDense.wi.weight"] = torch::zeros({48, 32});
  EXPECT_NE(error(v10).find("DenseReluDense.wi.weight"), std::string::npos);
  auto missing_file = load_t5_encoder("/nonexistent/t5xxl_fp16.safetensors");
  ASSERT_FALSE(missing_file.is_ok());
  EXPECT_NE(missing_file.status().to_string().find("/nonexistent/t5xxl_fp16.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace netdist::text
