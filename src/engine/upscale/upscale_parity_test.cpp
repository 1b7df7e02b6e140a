// Differential check of UpscaleModelLoader + ImageUpscaleWithModel against ComfyUI with spandrel: loads the
// models and the image written by tools/parity/upscale_reference.py (real-size random weights: RRDBNet 23
// blocks x4 in the old and the new key layout, Real-ESRGAN x2 with pixel-unshuffle, SRVGGNetCompact x4), runs
// them through the public API on NETDIST_PARITY_DEVICE (default cuda) and compares with ComfyUI's node
// output: max |diff| ≤ 2/255 over the whole 4-tile image (both sides run float32 with libtorch's default
// TF32 convolutions). NETDIST_UPSCALE_PARITY_DATA names the directory; without it every test fails, naming
// what is missing. Built into netdist_parity_tests; tests/parity/run_gpu_parity.sh (step "upscale") runs it.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "engine/runtime/tensor_io.h"
#include "netdist/engine.h"
#include "netdist/upscale_model.h"

namespace netdist {
namespace {

Result<at::Tensor> upscale_parity_read(const std::string& path) {
  ND_ASSIGN_OR_RETURN(runtime::WeightMap w, runtime::load_safetensors(path));
  if (!w.count("image")) return Status::not_found(path + " has no tensor 'image'");
  return w.at("image").to(at::kFloat).contiguous();
}

void check_upscale_case(const std::string& name, const std::string& architecture, int scale) {
  const char* dir = std::getenv("NETDIST_UPSCALE_PARITY_DATA");
  if (dir == nullptr || *dir == '\0') {
    GTEST_FAIL() << "NETDIST_UPSCALE_PARITY_DATA is not set (tools/parity/upscale_reference.py writes the data; "
                    "tests/parity/run_gpu_parity.sh makes it and runs this suite)";
  }
  const std::filesystem::path base(dir);
  auto input = upscale_parity_read((base / "input.safetensors").string());
  auto ref = upscale_parity_read((base / ("ref_" + name + ".safetensors")).string());
  ASSERT_TRUE(input.is_ok()) << input.status().to_string();
  ASSERT_TRUE(ref.is_ok()) << ref.status().to_string();
  EngineOptions options;
  const char* device = std::getenv("NETDIST_PARITY_DEVICE");
  options.device = device && *device ? device : "cuda";
  auto model = load_upscale_model((base / (name + ".safetensors")).string(), options);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const UpscaleModelInfo info = upscale_model_info(**model);
  EXPECT_EQ(info.architecture, architecture);
  EXPECT_EQ(info.scale, scale);
  int tiles = 0;
  auto out = upscale_image(**model, *input, [&](int, int total) {
    tiles = total;
    return true;
  });
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(tiles, 4);
  ASSERT_EQ(out->sizes(), ref->sizes()) << name;
  const at::Tensor diff = (*out - *ref).abs();
  const double err = diff.max().item<double>();
  const double scale_ref = ref->abs().max().item<double>();
  const double bound = 2.0 / 255.0;
  std::printf("[ parity ] upscale %s: max |diff| / max |ref| = %.3g (bound %.3g)\n", name.c_str(),
              err / std::max(scale_ref, 1e-30), bound / std::max(scale_ref, 1e-30));
  std::printf("[ upscale ] %s: mean |diff| %.3g, max |diff| %.3g, identical values %.4f\n", name.c_str(),
              diff.mean().item<double>(), err, (diff == 0).to(at::kFloat).mean().item<double>());
  EXPECT_LE(err, bound) << name;
}

TEST(ParityUpscale, EsrganOldLayoutX4) { check_upscale_case("esrgan_old_x4", "ESRGAN", 4); }
TEST(ParityUpscale, EsrganNewLayoutX4) { check_upscale_case("esrgan_new_x4", "ESRGAN", 4); }
TEST(ParityUpscale, RealEsrganX2) { check_upscale_case("realesrgan_x2", "RealESRGAN", 2); }
TEST(ParityUpscale, CompactX4) { check_upscale_case("compact_x4", "SRVGGNetCompact", 4); }

}  // namespace
}  // namespace netdist
