#include "engine/runtime/weights.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace netdist::runtime {
namespace {

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    proj = register_module("proj", torch::nn::Linear(3, 2));
    scale = register_buffer("scale", torch::ones({2}));
  }
  torch::nn::Linear proj{nullptr};
  at::Tensor scale;
};

TEST(Weights, RoundTripThroughMap) {
  TinyImpl a, b;
  WeightMap m = module_weights(a, "model.");
  EXPECT_EQ(m.size(), 3u);
  ASSERT_TRUE(m.count("model.proj.weight"));
  m["model.scale"] = torch::full({2}, 3.0);
  ASSERT_TRUE(load_module_weights(b, m, "model.", "test.safetensors").is_ok());
  EXPECT_TRUE(torch::equal(b.proj->weight, a.proj->weight));
  EXPECT_EQ(b.scale[1].item<float>(), 3.0f);
}

TEST(Weights, MissingShapeAndUnexpectedAreNamed) {
  TinyImpl a, b;
  WeightMap m = module_weights(a, "");
  m.erase("proj.bias");
  Status s = load_module_weights(b, m, "", "f.safetensors");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("f.safetensors: missing tensor 'proj.bias'"), std::string::npos) << s.message();

  m = module_weights(a, "");
  m["proj.weight"] = torch::zeros({2, 4});
  s = load_module_weights(b, m, "", "f.safetensors");
  EXPECT_NE(s.message().find("shape [2,4], the model expects [2,3]"), std::string::npos) << s.message();

  m = module_weights(a, "");
  m["extra.weight"] = torch::zeros({1});
  s = load_module_weights(b, m, "", "f.safetensors");
  EXPECT_NE(s.message().find("'extra.weight'"), std::string::npos) << s.message();
  LoadOptions lenient;
  lenient.ignore_unexpected = {"extra."};
  EXPECT_TRUE(load_module_weights(b, m, "", "f.safetensors", lenient).is_ok());
}

}  // namespace
}  // namespace netdist::runtime
