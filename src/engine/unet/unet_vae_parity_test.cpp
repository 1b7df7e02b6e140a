// Differential check against ComfyUI: loads the weights, inputs and reference outputs written by
// tools/parity/make_unet_vae_reference.py (ComfyUI's own modules, CPU fp32) into netdist's tiny UNets and
// VAE and compares outputs (max |diff| / max |ref| ≤ 1e-4). NETDIST_PARITY_DATA names the directory holding
// unet_tiny.*, unet_xl.*, vae_tiny.*; without it every test fails, naming what is missing. Built into
// netdist_parity_tests (every *_parity_test.cpp), not into `make test`: the data needs ComfyUI and torch,
// which tests/parity/run_gpu_parity.sh has on the GPU machine, and that script runs this suite.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/runtime/weights.h"
#include "engine/unet/sdxl_adm.h"
#include "engine/unet/unet.h"
#include "engine/vae/vae.h"

namespace netdist {
namespace {

struct Reference {
  std::map<std::string, at::Tensor> tensors;
  runtime::WeightMap params;  // "p." stripped
  const at::Tensor& operator[](const std::string& name) const { return tensors.at(name); }
};

// What is missing when read_reference(name) finds nothing, and what makes it.
std::string missing_reference(const std::string& name) {
  const char* dir = std::getenv("NETDIST_PARITY_DATA");
  const std::string what = dir == nullptr || *dir == '\0'
                               ? std::string("NETDIST_PARITY_DATA is not set")
                               : std::string(dir) + "/" + name + ".bin or .idx is missing or unreadable";
  return what + " (tools/parity/make_unet_vae_reference.py writes the reference data; " +
         "tests/parity/run_gpu_parity.sh makes it and runs this suite)";
}

std::optional<Reference> read_reference(const std::string& name) {
  const char* dir = std::getenv("NETDIST_PARITY_DATA");
  if (dir == nullptr || *dir == '\0') return std::nullopt;
  const std::string base = std::string(dir) + "/" + name;
  std::ifstream bin(base + ".bin", std::ios::binary | std::ios::ate);
  std::ifstream idx(base + ".idx");
  if (!bin || !idx) return std::nullopt;
  const int64_t floats = static_cast<int64_t>(bin.tellg()) / 4;
  at::Tensor data = at::empty({floats}, at::kFloat);
  bin.seekg(0);
  bin.read(static_cast<char*>(data.data_ptr()), floats * 4);
  Reference ref;
  std::string line;
  while (std::getline(idx, line)) {
    std::istringstream fields(line);
    std::string key, shape;
    int64_t offset = 0;
    fields >> key >> shape >> offset;
    if (key == "config") continue;
    std::vector<int64_t> dims;
    if (shape != "s") {
      std::istringstream parts(shape);
      std::string part;
      while (std::getline(parts, part, 'x')) dims.push_back(std::stoll(part));
    }
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    at::Tensor t = data.narrow(0, offset, n).reshape(dims);
    if (key.rfind("p.", 0) == 0) {
      ref.params[key.substr(2)] = t;
    } else {
      ref.tensors[key] = t;
    }
  }
  return ref;
}

void expect_parity_close(const std::string& what, const at::Tensor& ours, const at::Tensor& ref) {
  ASSERT_EQ(ours.sizes(), ref.sizes()) << what;
  const double err = (ours.to(at::kFloat) - ref).abs().max().item<double>();
  const double scale = ref.abs().max().item<double>();
  // One line per comparison for tests/parity/run_gpu_parity.sh's table.
  std::printf("[ parity ] %s: max |diff| / max |ref| = %.3g (bound 1e-4)\n", what.c_str(),
              err / std::max(scale, 1e-30));
  EXPECT_LE(err, 1e-4 * scale) << what << ": max |diff| " << err << ", max |ref| " << scale;
}

void check_unet(const std::string& name, const unet::UNetConfig& config) {
  auto ref = read_reference(name);
  if (!ref) GTEST_FAIL() << missing_reference(name);
  torch::NoGradGuard no_grad;
  unet::UNetModel model(config);
  ASSERT_TRUE(runtime::load_module_weights(*model, ref->params, "", name).is_ok());
  const at::Tensor y = ref->tensors.count("in.y") ? (*ref)["in.y"] : at::Tensor();
  expect_parity_close(name, model((*ref)["in.x"], (*ref)["in.t"], (*ref)["in.context"], y), (*ref)["out"]);
}

TEST(ParityComfyUI, UNetTiny) { check_unet("unet_tiny", unet::UNetConfig::tiny()); }

TEST(ParityComfyUI, UNetLinearAdm) {
  unet::UNetConfig c = unet::UNetConfig::tiny();
  c.transformer_depth = {0, 2};
  c.transformer_depth_output = {0, 0, 2, 2};
  c.num_heads = -1;
  c.num_head_channels = 16;
  c.context_dim = 48;
  c.use_linear_in_transformer = true;
  c.adm_in_channels = 40;
  check_unet("unet_xl", c);
}

TEST(ParityComfyUI, VaeAndSdxlAdm) {
  auto ref = read_reference("vae_tiny");
  if (!ref) GTEST_FAIL() << missing_reference("vae_tiny");
  torch::NoGradGuard no_grad;
  vae::AutoencoderKL model(vae::VaeConfig::tiny());
  ASSERT_TRUE(runtime::load_module_weights(*model, ref->params, "", "vae_tiny").is_ok());
  expect_parity_close("encode_moments", model->encode_moments((*ref)["in.image"]), (*ref)["out.moments"]);
  expect_parity_close("decode", model->decode((*ref)["in.z"]), (*ref)["out.decoded"]);
  expect_parity_close("decode_tiled", model->decode_tiled((*ref)["in.z"], 8, 2), (*ref)["out.tiled"]);
  expect_parity_close("sdxl_adm", unet::sdxl_adm((*ref)["in.pooled"], 1024, 768, 8, 16, 1152, 896),
                      (*ref)["out.sdxl_adm"]);
}

}  // namespace
}  // namespace netdist
