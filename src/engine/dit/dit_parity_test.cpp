// Differential check of the MMDiT (SD3 / SD3.5 Medium / SD3.5 Large widths) and Flux (dev, schnell widths)
// against the pinned ComfyUI on a GPU: reads what tools/parity/dit_reference.py wrote into
// $NETDIST_DIT_PARITY_DATA (weights in the dtype ComfyUI runs them in: MMDiT fp16, Flux bf16; one forward at
// 1024²) and runs the same forward on NETDIST_PARITY_DEVICE (default cuda) in that dtype:
// max |diff| / max |ref| <= 2e-2 (fp16/bf16: both sides round every layer). Without NETDIST_DIT_PARITY_DATA
// every test fails, naming it. Built into netdist_parity_tests; tests/parity/run_gpu_parity.sh (step "dit")
// runs it.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <initializer_list>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/dit/flux.h"
#include "engine/dit/mmdit.h"
#include "engine/runtime/tensor_io.h"

namespace netdist::dit {
namespace {

// Concatenation through append (GCC 12 -O3 reports false -Wrestrict/-Warray-bounds on string + literal).
inline std::string dit_parity_cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

constexpr double kDitParityBound = 2e-2;

std::string dit_parity_dir() {
  const char* dir = std::getenv("NETDIST_DIT_PARITY_DATA");
  return dir != nullptr ? std::string(dir) : std::string();
}

void dit_parity_case(const std::string& name) {
  const std::string dir = dit_parity_dir();
  ASSERT_FALSE(dir.empty())
      << "NETDIST_DIT_PARITY_DATA is not set (tools/parity/dit_reference.py writes the data; "
         "tests/parity/run_gpu_parity.sh step dit makes it and runs this suite)";
  const char* device_env = std::getenv("NETDIST_PARITY_DEVICE");
  const at::Device device(device_env != nullptr && *device_env != '\0' ? device_env : "cuda");
  auto weights = runtime::load_safetensors(
      (std::filesystem::path(dir) / dit_parity_cat({name, ".safetensors"})).string());
  ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
  auto io = runtime::load_safetensors(
      (std::filesystem::path(dir) / dit_parity_cat({name, "_io.safetensors"})).string());
  ASSERT_TRUE(io.is_ok()) << io.status().to_string();
  const at::ScalarType dtype = weights->begin()->second.scalar_type();
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  auto in = [&](const std::string& key) { return io->at(key).to(device); };
  torch::NoGradGuard no_grad;
  at::Tensor out;
  const at::Tensor x = in("x_0").to(dtype);
  const at::Tensor ctx = in("context_0").to(dtype);
  const at::Tensor y = in("y_0").to(dtype);
  if (name.rfind("flux", 0) == 0) {
    auto config = detect_flux_config(weights.value(), "");
    ASSERT_TRUE(config.is_ok()) << config.status().to_string();
    Flux model(config.value(), options);
    ASSERT_TRUE(runtime::load_module_weights(*model, weights.value(), "", name).is_ok());
    const at::Tensor guidance = io->count("guidance_0") ? in("guidance_0") : at::Tensor();
    out = model->forward(x, in("timesteps_0"), ctx, y, guidance);
  } else {
    auto config = detect_mmdit_config(weights.value(), "");
    ASSERT_TRUE(config.is_ok()) << config.status().to_string();
    MMDiT model(config.value(), options);
    ASSERT_TRUE(runtime::load_module_weights(*model, weights.value(), "", name).is_ok());
    out = model->forward(x, in("timesteps_0"), ctx, y);
  }
  const at::Tensor ref = io->at("out_0");
  const at::Tensor ours = out.to(at::kFloat).cpu();
  ASSERT_EQ(ours.sizes(), ref.sizes());
  const double rel = (ours - ref).abs().max().item<double>() / ref.abs().max().item<double>();
  std::printf("[ parity ] dit %s (%s): max |diff| / max |ref| = %.3g (bound %g)\n", name.c_str(),
              c10::toString(dtype), rel, kDitParityBound);
  EXPECT_LE(rel, kDitParityBound) << name;
}

TEST(ParityDiT, Sd3Medium) { dit_parity_case("sd3"); }
TEST(ParityDiT, Sd35Medium) { dit_parity_case("sd35m"); }
TEST(ParityDiT, Sd35Large) { dit_parity_case("sd35l"); }
TEST(ParityDiT, FluxDev) { dit_parity_case("flux_dev"); }
TEST(ParityDiT, FluxSchnell) { dit_parity_case("flux_schnell"); }

}  // namespace
}  // namespace netdist::dit
