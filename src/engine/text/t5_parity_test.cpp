// Differential check of the T5 tokenizer and encoder against ComfyUI: reads what tools/parity/t5_reference.py
// wrote into $NETDIST_T5_PARITY_DATA on the GPU machine and compares
//   * tokenize_with_weights (shipped models/t5_tokenizer/tokenizer.json, transformers pipeline) with
//   ComfyUI's
//     SD3 and Flux T5XXLTokenizer on every prompt: ids and weights exactly;
//   * the T5 encoder (random weights of reduced size, ComfyUI's keys, fp32 and fp16 files) on
//     NETDIST_PARITY_DEVICE (default cuda) with ComfyUI's outputs, with and without the attention mask:
//     max |diff| / max |ref| <= 1e-4 (fp32 weights) and 1e-3 (fp16 weights; both compute in float32).
// Without NETDIST_T5_PARITY_DATA every test fails, naming it. Built into netdist_parity_tests;
// tests/parity/run_gpu_parity.sh (step "t5") runs it.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "engine/runtime/tensor_io.h"
#include "engine/text/t5_encoder.h"
#include "engine/text/tokenize_prompt.h"
#include "netdist/source_dir.h"

namespace netdist::text {
namespace {

std::string t5_parity_dir() {
  const char* dir = std::getenv("NETDIST_T5_PARITY_DATA");
  return dir != nullptr ? std::string(dir) : std::string();
}

#define T5_PARITY_REQUIRE_DATA()                                                                        \
  if (t5_parity_dir().empty()) {                                                                        \
    GTEST_FAIL() << "NETDIST_T5_PARITY_DATA is not set (tools/parity/t5_reference.py writes the data; " \
                    "tests/parity/run_gpu_parity.sh makes it and runs this suite)";                     \
  }

void t5_parity_tokens(const char* family, const TokenizeOptions& options) {
  T5_PARITY_REQUIRE_DATA();
  const std::string path = t5_parity_dir() + "/tokens.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path << " is missing";
  const nlohmann::json golden = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(golden.is_discarded()) << path;
  std::printf("[ t5 ] ComfyUI tokenizer: %s\n", golden.at("meta").dump().c_str());
  auto tokenizer = T5Tokenizer::load(
      (std::filesystem::path(NETDIST_SOURCE_DIR) / "models" / "t5_tokenizer" / "tokenizer.json").string());
  ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  const nlohmann::json& prompts = golden.at("prompts");
  const nlohmann::json& expected = golden.at(family);
  ASSERT_EQ(prompts.size(), expected.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < prompts.size() && mismatches < 10; ++i) {
    const std::string prompt = prompts[i].get<std::string>();
    auto windows = tokenize_with_weights(*tokenizer, prompt, options);
    ASSERT_TRUE(windows.is_ok()) << windows.status().to_string();
    nlohmann::json got = nlohmann::json::array();
    for (const TokenWindow& w : *windows) {
      nlohmann::json window = nlohmann::json::array();
      for (size_t t = 0; t < w.ids.size(); ++t)
        window.push_back({w.ids[t], static_cast<double>(w.weights[t])});
      got.push_back(window);
    }
    bool same = got.size() == expected[i].size();
    for (size_t w = 0; same && w < got.size(); ++w) {
      same = got[w].size() == expected[i][w].size();
      for (size_t t = 0; same && t < got[w].size(); ++t) {
        same = got[w][t][0] == expected[i][w][t][0] &&
               static_cast<float>(got[w][t][1].get<double>()) ==
                   static_cast<float>(expected[i][w][t][1].get<double>());
      }
    }
    if (!same) {
      ++mismatches;
      ADD_FAILURE() << family << " prompt " << i << " " << nlohmann::json(prompt).dump()
                    << "\n  netdist: " << got.dump() << "\n  ComfyUI: " << expected[i].dump();
    }
  }
  std::printf("[ parity ] t5 tokenizer %s: max |diff| / max |ref| = %d (bound 0)\n", family,
              mismatches == 0 ? 0 : 1);
}

TEST(ParityT5, TokenizerSD3) { t5_parity_tokens("sd3", TokenizeOptions::t5xxl_sd3()); }
TEST(ParityT5, TokenizerFlux) { t5_parity_tokens("flux", TokenizeOptions::t5xxl_flux()); }

void t5_parity_encoder(const std::string& precision, double bound) {
  T5_PARITY_REQUIRE_DATA();
  const std::string dir = t5_parity_dir();
  const char* device_env = std::getenv("NETDIST_PARITY_DEVICE");
  const at::Device device(device_env != nullptr && *device_env != '\0' ? device_env : "cuda");
  auto model = load_t5_encoder(dir + "/t5_tiny_" + precision + ".safetensors", "", device);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto cases = runtime::load_safetensors(dir + "/cases.safetensors");
  ASSERT_TRUE(cases.is_ok()) << cases.status().to_string();
  torch::NoGradGuard no_grad;
  int compared = 0;
  for (int n = 0; cases->count("ids_" + std::to_string(n)) > 0; ++n) {
    const std::string id = std::to_string(n);
    const at::Tensor ids = cases->at("ids_" + id).to(device, at::kLong);
    const at::Tensor mask = cases->at("mask_" + id).to(device, at::kLong);
    EXPECT_TRUE(torch::equal(t5_attention_mask(ids, 1).cpu(), mask.cpu())) << "mask " << id;
    for (const bool masked : {false, true}) {
      const std::string key = (masked ? "outm_" : "out_") + id + "_" + precision;
      const at::Tensor ref = cases->at(key).to(at::kFloat);
      const at::Tensor out = (masked ? (*model)->forward(ids, mask) : (*model)->forward(ids)).cpu();
      ASSERT_EQ(out.sizes(), ref.sizes()) << key;
      const double rel =
          (out - ref).abs().max().item<double>() / std::max(ref.abs().max().item<double>(), 1e-30);
      std::printf("[ parity ] t5 encoder %s (L=%lld): max |diff| / max |ref| = %.3g (bound %.3g)\n",
                  key.c_str(), static_cast<long long>(ids.size(1)), rel, bound);
      EXPECT_LE(rel, bound) << key;
      ++compared;
    }
  }
  EXPECT_GE(compared, 2);
}

TEST(ParityT5, EncoderFp32) { t5_parity_encoder("fp32", 1e-4); }
TEST(ParityT5, EncoderFp16Weights) { t5_parity_encoder("fp16", 1e-3); }

}  // namespace
}  // namespace netdist::text
