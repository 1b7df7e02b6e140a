// Model patches (engine/model_patches.h) against the pinned ComfyUI's own patch functions: goldens in
// tests/data/patches/ written by tools/parity/patches_golden.py (CPU fp32, ComfyUI's FreeU / FreeU_V2 /
// RescaleCFG nodes' patch functions, its tiny UNet forward with chained output_block_patch, its
// cfg_function). Bound: max |diff| / max |ref| ≤ 1e-5. Then what a patch must keep: handles compose, row
// shards equal the unsplit batch and a CFG split (both predictions exchanged) equals one process.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "engine/model_patches.h"
#include "engine/runtime/weights.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

using PatchesGolden = std::map<std::string, at::Tensor>;

std::filesystem::path patches_data_dir() {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  return std::filesystem::path(dir ? dir : NETDIST_SOURCE_DIR "/tests/data") / "patches";
}

// <name>.idx ("config <json>", then "<key> <d0>x<d1>.. <offset>") and <name>.bin (float32). A missing golden
// fails the test.
PatchesGolden read_patches_golden(const std::string& name) {
  const std::filesystem::path base = patches_data_dir() / name;
  std::filesystem::path bin_path = base, idx_path = base;
  bin_path += ".bin";
  idx_path += ".idx";
  std::ifstream bin(bin_path, std::ios::binary | std::ios::ate);
  std::ifstream idx(idx_path);
  PatchesGolden out;
  if (!bin || !idx) {
    ADD_FAILURE() << "missing golden " << base.string()
                  << ".idx/.bin (tools/parity/patches_golden.py writes it)";
    return out;
  }
  const int64_t floats = static_cast<int64_t>(bin.tellg()) / 4;
  at::Tensor data = at::empty({floats}, at::kFloat);
  bin.seekg(0);
  bin.read(static_cast<char*>(data.data_ptr()), floats * 4);
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
    out[key] = data.narrow(0, offset, n).reshape(dims).clone();
  }
  return out;
}

double patches_rel_err(const at::Tensor& ours, const at::Tensor& ref) {
  EXPECT_EQ(ours.sizes(), ref.sizes());
  if (ours.sizes() != ref.sizes()) return 1e9;
  return (ours - ref).abs().max().item<double>() / std::max(ref.abs().max().item<double>(), 1e-30);
}

constexpr double kPatchesBound = 1e-5;

TEST(ModelPatches, FreeUFunctionsMatchComfyUI) {
  PatchesGolden g = read_patches_golden("freeu_fn");
  ASSERT_FALSE(g.empty());
  c10::InferenceMode inference;
  double worst = 0;
  for (const bool v2 : {false, true}) {
    const patches::FreeUPatch p{v2, 1.15, 1.25, 0.85, 0.3};
    for (const int ch : {128, 64, 32}) {
      const std::string tag = std::string(v2 ? "v2." : "v1.") + std::to_string(ch);
      at::Tensor h = g.at("in.h." + tag).clone(), hsp = g.at("in.hsp." + tag).clone();
      patches::apply_freeu(p, 32, h, hsp);
      const double eh = patches_rel_err(h, g.at("out.h." + tag)),
                   es = patches_rel_err(hsp, g.at("out.hsp." + tag));
      EXPECT_LE(eh, kPatchesBound) << tag;
      EXPECT_LE(es, kPatchesBound) << tag;
      worst = std::max({worst, eh, es});
    }
  }
  std::printf("[ patches ] FreeU/FreeU_V2 functions: worst max|diff|/max|ref| %.3g\n", worst);
}

// tools/parity/patches_golden.py formula_weights.
at::Tensor patches_formula_weights(const std::string& name, at::IntArrayRef shape) {
  int64_t seed = 0;
  for (size_t j = 0; j < name.size(); ++j) seed += static_cast<unsigned char>(name[j]) * int64_t(j + 1);
  seed %= 1000;
  const at::Tensor i = at::arange(c10::multiply_integers(shape), at::kDouble);
  at::Tensor v = at::sin(i * 0.7 + 0.001 * double(seed)) * 0.1;
  if (shape.size() == 1 && name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0) v = v + 1.0;
  return v.to(at::kFloat).reshape(shape);
}

TEST(ModelPatches, FreeUInsideTheUNetMatchesComfyUI) {
  PatchesGolden g = read_patches_golden("freeu_unet");
  ASSERT_FALSE(g.empty());
  torch::NoGradGuard no_grad;
  unet::UNetModel model(unet::UNetConfig::tiny());
  runtime::WeightMap w;
  for (const auto& p : model->named_parameters(true))
    w[p.key()] = patches_formula_weights(p.key(), p.value().sizes());
  ASSERT_TRUE(runtime::load_module_weights(*model, w, "", "formula").is_ok());
  const double plain =
      patches_rel_err(model(g.at("in.x"), g.at("in.t"), g.at("in.context")), g.at("out.plain"));
  EXPECT_LE(plain, kPatchesBound);
  patches::ModelPatches chain;
  chain.output_block = {{false, 1.1, 1.2, 0.9, 0.2}, {true, 1.3, 1.4, 0.8, 0.3}};  // FreeU then FreeU_V2
  {
    patches::OutputBlockScope scope(*model, &chain);
    const double e =
        patches_rel_err(model(g.at("in.x"), g.at("in.t"), g.at("in.context")), g.at("out.freeu"));
    EXPECT_LE(e, kPatchesBound);
    std::printf("[ patches ] tiny UNet: plain %.3g, FreeU+FreeU_V2 %.3g (max|diff|/max|ref|)\n", plain, e);
  }
  EXPECT_FALSE(static_cast<bool>(model->output_block_patch));  // the scope took its hook back
}

TEST(ModelPatches, RescaleCfgMatchesComfyUI) {
  PatchesGolden g = read_patches_golden("rescale_cfg");
  ASSERT_FALSE(g.empty());
  patches::ModelPatches p;
  p.rescale_cfg = 0.7;
  const at::Tensor &x = g.at("in.x"), &sigma = g.at("in.sigma"), &c = g.at("in.cond"), &u = g.at("in.uncond");
  const double e7 = patches_rel_err(patches::combine_cfg(p, c, u, 7.0, x, sigma), g.at("out.cfg7"));
  const double e1 =
      patches_rel_err(patches::combine_cfg(p, c, at::zeros_like(c), 1.0, x, sigma), g.at("out.cfg1"));
  EXPECT_LE(e7, kPatchesBound);
  EXPECT_LE(e1, kPatchesBound);
  std::printf("[ patches ] RescaleCFG: cfg 7 %.3g, cfg 1 %.3g (max|diff|/max|ref|)\n", e7, e1);
  // Without a cfg function: ComfyUI's plain combination, bit for bit.
  EXPECT_TRUE(at::equal(patches::combine_cfg({}, c, u, 7.0, x, sigma), u + (c - u) * 7.0));
}

}  // namespace
}  // namespace netdist
