// The model memory manager (residency.h) on a GPU: when room is asked for, the least recently used idle
// model's modules move to RAM while the recently used one stays; the moved model renders the same images
// when it is used again (its modules come back), and the memory figures /system_stats reports are real.
// On the CPU: device_memory_info reports the machine's RAM, configure_memory refuses bad settings.
#include <gtest/gtest.h>

#include <filesystem>

#include <torch/torch.h>
#include <unistd.h>

#include "core/skip_test_util.h"
#include "engine/residency.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;

std::string residency_tiny_copy(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("netdist_residency_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path to = dir / name;
  if (!fs::exists(to)) fs::copy_file(fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors", to);
  return to.string();
}

at::Tensor render_two_images(Model& m) {
  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning neg = encode_prompt(m, "").value();
  SampleRequest req;
  req.seed = 11;
  req.steps = 3;
  req.cfg = 5.0;
  req.latent = empty_latent(m, 2, 64, 64);
  return decode(m, sample(m, pos, neg, req, nullptr).value()).value();
}

// Registered modules whose name contains `part`, and how many of them are on the device.
std::pair<int, int> modules_on_device(const std::string& part) {
  int all = 0, on = 0;
  for (const residency::Entry& e : residency::entries()) {
    if (e.name.find(part) == std::string::npos) continue;
    ++all;
    on += e.on_device ? 1 : 0;
  }
  return {all, on};
}

TEST(Residency, CpuReportsRamAndRefusesBadSettings) {
  auto info = device_memory_info("cpu");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->type, "cpu");
  EXPECT_GT(info->vram_total, 0);
  EXPECT_GT(info->vram_free, 0);
  EngineOptions o;
  o.reserve_vram_gb = -1;
  EXPECT_FALSE(configure_memory(o).is_ok());
  o = EngineOptions{};
  o.lowvram = o.highvram = true;
  EXPECT_FALSE(configure_memory(o).is_ok());
  o = EngineOptions{};
  o.device = "cuda:abc";
  const Status bad = configure_memory(o);
  EXPECT_FALSE(bad.is_ok());
  EXPECT_NE(bad.to_string().find("cuda:abc"), std::string::npos) << bad.to_string();
  EXPECT_TRUE(configure_memory(EngineOptions{}).is_ok());
}

TEST(Residency, LeastRecentlyUsedModelMovesToRamAndComesBack) {
  if (!torch::cuda::is_available()) ND_SKIP_NEEDS_GPU("no CUDA device");
  EngineOptions o;
  o.device = "cuda";
  ASSERT_TRUE(configure_memory(o).is_ok());
  auto a = load_model(residency_tiny_copy("a.safetensors"), o);
  auto b = load_model(residency_tiny_copy("b.safetensors"), o);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  const at::Tensor before = render_two_images(**a);
  render_two_images(**b);  // b is now the most recently used
  EXPECT_EQ(modules_on_device("a.safetensors"), std::make_pair(3, 3));
  // Ask for a little more than is free: only the least recently used idle modules (a's) go.
  const at::Device cuda(at::kCUDA, 0);
  residency::make_room(cuda, residency::available(cuda) + 1);
  EXPECT_LT(modules_on_device("a.safetensors").second, 3);
  EXPECT_EQ(modules_on_device("b.safetensors"), std::make_pair(3, 3));
  // Used again, a's modules come back and give the same images.
  EXPECT_TRUE(torch::equal(render_two_images(**a), before));
  EXPECT_EQ(modules_on_device("a.safetensors"), std::make_pair(3, 3));
  // POST /free with unload_models: everything idle goes to RAM, and the figures say the GPU is freer.
  const auto busy = device_memory_info("cuda").value();
  free_device_memory("cuda", true);
  EXPECT_EQ(modules_on_device("a.safetensors").second, 0);
  EXPECT_EQ(modules_on_device("b.safetensors").second, 0);
  const auto idle = device_memory_info("cuda").value();
  EXPECT_GT(idle.vram_total, 0);
  EXPECT_LT(idle.torch_vram_total, busy.torch_vram_total);
  EXPECT_NE(idle.name.find("cuda:0 "), std::string::npos) << idle.name;
  a->reset();
  EXPECT_EQ(modules_on_device("a.safetensors").first, 0)
      << "a model's modules leave the registry with its last handle";
}

}  // namespace
}  // namespace netdist
