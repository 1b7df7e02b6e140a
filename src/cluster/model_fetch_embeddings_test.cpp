// The model files a prompt names for the workers' model fetch (model_fetch.h models_named_by): the
// "embedding:name" words of the text encoders' prompts as kind "embedding", besides the loaders' files.
#include <gtest/gtest.h>

#include "cluster/model_fetch.h"

namespace netdist::cluster {
namespace {

TEST(ModelFetchEmbeddings, PromptTextsNameTheirEmbeddings) {
  const auto prompt = nlohmann::ordered_json::parse(R"({
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (embedding:style:1.2) cat, embedding:sub/neg,", "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"text_g": "embedding:gee", "text_l": "x embedding:ell.safetensors"}},
    "4": {"class_type": "SaveImage", "inputs": {"filename_prefix": "embedding:notatext"}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"text": ["9", 0]}}
  })");
  std::vector<std::pair<std::string, std::string>> got;
  for (const ModelRef& r : models_named_by(prompt)) got.emplace_back(r.kind, r.name);
  const std::vector<std::pair<std::string, std::string>> want = {{"checkpoint", "sd15.safetensors"},
                                                                 {"embedding", "ell.safetensors"},
                                                                 {"embedding", "gee"},
                                                                 {"embedding", "style"},
                                                                 {"embedding", "sub/neg"},
                                                                 {"embedding", "sub/neg,"}};
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace netdist::cluster
