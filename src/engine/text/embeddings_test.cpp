// Textual-inversion embeddings against goldens made by the pinned ComfyUI's SDTokenizer / SDClipModel on
// the CPU (tools/parity/embeddings_golden.py): netdist's tokenizer with load_embedding over the same
// tests/data/embeddings/ti folder must put the same vectors at the same places, and encode_weighted on the
// same tiny CLIPs must give ComfyUI's hidden states and pooled output.
#include "engine/text/embeddings.h"

#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "engine/runtime/tensor_io.h"
#include "engine/text/clip_tokenizer.h"
#include "engine/text/test_data.h"
#include "engine/text/text_encoder.h"
#include "io/safetensors.h"

namespace netdist::text {
namespace {

std::filesystem::path embeddings_data_dir() {
  std::filesystem::path p(testing::test_data_dir());
  p /= "embeddings";
  return p;
}

struct EmbeddingsGolden {
  runtime::WeightMap t;
  nlohmann::json cases, encoders;
};

EmbeddingsGolden load_embeddings_golden() {
  std::filesystem::path path = embeddings_data_dir();
  path /= "golden_embeddings.safetensors";
  EmbeddingsGolden g;
  auto file = io::SafetensorsFile::open(path.string());
  EXPECT_TRUE(file.is_ok()) << "missing golden " << path << " (tools/parity/embeddings_golden.py)";
  if (!file.is_ok()) return g;
  auto w = runtime::weights_from_file(*file);
  EXPECT_TRUE(w.is_ok());
  if (w.is_ok()) g.t = std::move(*w);
  g.cases = nlohmann::json::parse((*file)->metadata().at("cases"));
  g.encoders = nlohmann::json::parse((*file)->metadata().at("encoders"));
  return g;
}

ClipTextModel embeddings_tiny_clip(const EmbeddingsGolden& g, const std::string& name) {
  const auto& e = g.encoders.at(name);
  ClipTextConfig c;
  c.hidden_size = e.at("width").get<int>();
  c.num_layers = e.at("layers").get<int>();
  c.num_heads = e.at("heads").get<int>();
  c.intermediate_size = 2 * c.hidden_size;
  c.activation =
      e.at("act").get<std::string>() == "gelu" ? ClipActivation::kGelu : ClipActivation::kQuickGelu;
  c.projection_dim = 0;
  ClipTextModel model(c);
  runtime::WeightMap w;
  const std::string prefix = name + ".";
  for (const auto& [k, v] : g.t) {
    if (k.starts_with(prefix) && k != prefix + "token_rows") w[k] = v;
  }
  at::Tensor table = at::zeros({c.vocab_size, c.hidden_size}, at::kFloat);
  table.index_copy_(0, g.t.at("used_ids"), g.t.at(prefix + "token_rows"));
  w[prefix + "text_model.embeddings.token_embedding.weight"] = table;
  const Status s = load_clip_text_weights(*model, w, prefix, "tiny CLIP " + name);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return model;
}

const ClipTokenizer& embeddings_tokenizer() {
  static const ClipTokenizer tokenizer = [] {
    auto loaded = ClipTokenizer::load(testing::clip_vocab_dir());
    if (!loaded.is_ok()) {
      ADD_FAILURE() << loaded.status().to_string();
      std::abort();
    }
    return std::move(loaded).value();
  }();
  return tokenizer;
}

TEST(Embeddings, PlacementAndEncodeMatchComfy) {
  const EmbeddingsGolden g = load_embeddings_golden();
  ASSERT_TRUE(g.cases.is_array());
  ASSERT_EQ(g.cases.size(), 10u);
  std::map<std::string, ClipTextModel> models;
  for (const char* name : {"l", "g"}) models.emplace(name, embeddings_tiny_clip(g, name));
  std::filesystem::path ti = embeddings_data_dir();
  ti /= "ti";
  double worst = 0;
  for (size_t i = 0; i < g.cases.size(); ++i) {
    const auto& c = g.cases[i];
    const std::string enc = c.at("encoder").get<std::string>(), prompt = c.at("prompt").get<std::string>();
    const auto& e = g.encoders.at(enc);
    SCOPED_TRACE("case " + std::to_string(i) + " (" + enc + "): " + prompt.substr(0, 60));
    TokenizeOptions options;
    if (!e.at("pad_with_end").get<bool>()) options.pad_id = 0;
    const std::string key = e.at("key").get<std::string>();
    options.embedding_lookup = [&](const std::string& name) {
      return load_embedding(ti.string(), name, key);
    };
    auto windows = tokenize_with_weights(embeddings_tokenizer(), prompt, options);
    ASSERT_TRUE(windows.is_ok()) << windows.status().to_string();
    ASSERT_EQ(static_cast<int64_t>(windows->size()), c.at("windows").get<int64_t>());
    const std::string p = "c" + std::to_string(i) + ".";
    const at::Tensor ids = g.t.at(p + "ids"), weights = g.t.at(p + "weights");
    std::vector<WeightedTokens> tokens;
    size_t k = 0;
    for (size_t w = 0; w < windows->size(); ++w) {
      const TokenWindow& win = (*windows)[w];
      ASSERT_EQ(win.ids.size(), 77u);
      for (size_t j = 0; j < 77; ++j) {
        const int64_t flat = static_cast<int64_t>(w * 77 + j);
        EXPECT_EQ(win.ids[j], ids[flat].item<int64_t>()) << "position " << flat;
        EXPECT_EQ(win.weights[j], weights[flat].item<float>()) << "position " << flat;
      }
      for (const auto& [pos, vec] : win.embeddings) {
        ASSERT_LT(k, c.at("embedding_positions").size());
        EXPECT_EQ(static_cast<int64_t>(w * 77 + pos), c.at("embedding_positions")[k].get<int64_t>());
        const at::Tensor want = g.t.at(p + "emb" + std::to_string(k));
        const at::Tensor got =
            at::from_blob(const_cast<float*>(vec.data()), {int64_t(vec.size())}, at::kFloat);
        EXPECT_TRUE(at::equal(got, want)) << "embedding vector " << k;
        ++k;
      }
      tokens.push_back({win.ids, win.weights, win.embeddings});
    }
    EXPECT_EQ(k, c.at("embedding_positions").size());
    EncodeOptions o;
    const bool last = e.at("layer").get<std::string>() == "last";
    o.layer_idx = last ? -1 : e.at("layer_idx").get<int>();
    o.final_ln = e.at("norm").get<bool>();
    o.pad_id = e.at("pad").get<int>();
    o.project_pooled = false;
    auto out = encode_weighted(*models.at(enc), tokens, o);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    const at::Tensor hidden = g.t.at(p + "hidden"), pooled = g.t.at(p + "pooled");
    ASSERT_EQ(out->hidden.sizes(), hidden.sizes());
    const double scale = hidden.abs().max().item<double>();
    const double diff = (out->hidden - hidden).abs().max().item<double>() / scale;
    EXPECT_LE(diff, 1e-5);
    EXPECT_LE((out->pooled - pooled).abs().max().item<double>() / scale, 1e-5);
    worst = std::max(worst, diff);
  }
  RecordProperty("worst_relative_difference", std::to_string(worst));
}

TEST(Embeddings, FilesAreFoundAsComfyFindsThem) {
  std::filesystem::path ti = embeddings_data_dir();
  ti /= "ti";
  const std::string dir = ti.string();
  EXPECT_TRUE(find_embedding_file(dir, "sd1emb").has_value());
  EXPECT_TRUE(find_embedding_file(dir, "sd1emb.safetensors").has_value());
  EXPECT_TRUE(find_embedding_file(dir, "nested").has_value());  // found in sub/
  EXPECT_TRUE(find_embedding_file(dir, "sub/nested").has_value());
  EXPECT_FALSE(find_embedding_file(dir, "../embeddings/ti/sd1emb").has_value());  // leaves the folder
  EXPECT_FALSE(find_embedding_file(dir, "nothing").has_value());
  EXPECT_FALSE(find_embedding_file("", "sd1emb").has_value());
  EXPECT_EQ(embedding_key_for("clip_h"), "clip_l");  // SD2's tokenizer keeps SDTokenizer's default key
  EXPECT_EQ(embedding_key_for("clip_g"), "clip_g");
}

TEST(Embeddings, PicklesAreRefusedNamingTheFile) {
  std::filesystem::path dir = std::filesystem::temp_directory_path();
  dir /= "netdist_embeddings_pickle_test";
  std::filesystem::create_directories(dir);
  std::filesystem::path pt = dir;
  pt /= "old.pt";
  { std::ofstream(pt) << "not a pickle"; }
  auto r = load_embedding(dir.string(), "old", "clip_l");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("old.pt"), std::string::npos) << r.status().message();
  std::filesystem::path bad = dir;
  bad /= "broken.safetensors";
  { std::ofstream(bad) << "garbage"; }
  auto b = load_embedding(dir.string(), "broken", "clip_l");  // ComfyUI warns and skips it
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_FALSE(b->has_value());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace netdist::text
