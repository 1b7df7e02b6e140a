// parity_check: compares netdist with ComfyUI component by component on one checkpoint.
//
//   parity_check --ckpt CKPT --ref ref.safetensors [--device cuda] [--precision fp16|fp32] [--clip-vocab DIR]
//                [--tiled]   (ref from tools/parity/tiled_reference.py: TiledDiffusion rows, tiled_check.h)
//
// ref.safetensors comes from tools/parity/comfy_reference.py (ComfyUI's own code, same checkpoint, same
// inputs). Prints one markdown table row per component: relative error ‖a−b‖/‖b‖ for text-encoder output,
// one UNet call and VAE decode, and mean absolute pixel difference (in /255) for whole sampled images.
// Exits 1 if a component misses its bound (fp32: 1e-4 relative; fp16: 1e-2; images: 2/255).
#include <cstdio>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/model.h"
#include "engine/runtime/tensor_io.h"
#include "io/safetensors.h"
#include "netdist/engine.h"
#include "tools/parity/tiled_check.h"

namespace {

struct Row {
  std::string component;
  double error;
  double bound;
  std::string unit;
};

double rel_error(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kDouble).cpu(), y = b.to(at::kDouble).cpu();
  return (x - y).norm().item<double>() / std::max(1e-30, y.norm().item<double>());
}

double pixel_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble).cpu() - b.to(at::kDouble).cpu()).abs().mean() * 255.0).item<double>();
}

}  // namespace

int main(int argc, char** argv) {
  std::string ckpt, ref_path, device = "cuda", precision = "fp16", vocab;
  CLI::App app{"netdist vs ComfyUI, component by component"};
  app.add_option("--ckpt", ckpt)->required();
  app.add_option("--ref", ref_path)->required();
  app.add_option("--device", device);
  app.add_option("--precision", precision)->check(CLI::IsMember({"fp16", "fp32"}));
  app.add_option("--clip-vocab", vocab);
  bool tiled = false;
  app.add_flag("--tiled", tiled, "compare TiledDiffusion with tools/parity/tiled_reference.py's file");
  CLI11_PARSE(app, argc, argv);

  auto file = netdist::io::SafetensorsFile::open(ref_path);
  if (!file.is_ok()) {
    std::fprintf(stderr, "parity_check: %s\n", file.status().to_string().c_str());
    return 2;
  }
  std::map<std::string, std::string> meta((*file)->metadata().begin(), (*file)->metadata().end());
  auto ref = netdist::runtime::weights_from_file(*file, netdist::runtime::LoadDtype::kFloat32).value();

  netdist::EngineOptions options;
  options.device = device;
  options.clip_vocab_dir = vocab;
  const bool fp32 = precision == "fp32";
  options.precision = fp32 ? netdist::Precision::kFloat32 : netdist::Precision::kFloat16;
  options.vae_precision = fp32 ? netdist::Precision::kFloat32 : netdist::Precision::kBFloat16;
  if (device != "cpu") {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  auto loaded = netdist::load_model(ckpt, options);
  if (!loaded.is_ok()) {
    std::fprintf(stderr, "parity_check: %s\n", loaded.status().to_string().c_str());
    return 2;
  }
  if (tiled) return netdist::parity::tiled_check(*loaded, ref, meta, precision);
  netdist::Model& model = **loaded;
  const double bound = fp32 ? 1e-4 : 1e-2;
  std::vector<Row> rows;

  auto cond = netdist::encode_prompt(model, meta["prompt"]).value();
  auto uncond = netdist::encode_prompt(model, meta["negative"]).value();
  rows.push_back({"text encoder: hidden states (prompt)", rel_error(cond[0].context, ref["te.cond"]), bound, "rel"});
  rows.push_back({"text encoder: hidden states (negative)", rel_error(uncond[0].context, ref["te.uncond"]), bound, "rel"});
  if (ref.count("te.pooled")) {
    rows.push_back({"text encoder: pooled", rel_error(cond[0].pooled, ref["te.pooled"]), bound, "rel"});
  }
  {
    // One UNet call on ComfyUI's own conditioning, so this row measures the UNet alone.
    at::Tensor y = ref.count("unet.y") ? ref["unet.y"] : at::Tensor();
    at::Tensor den = netdist::apply_model_once(model, ref["in.x"], ref["in.sigma"], ref["te.cond"], y).value();
    rows.push_back({"UNet: one denoiser call (x0)", rel_error(den, ref["unet.denoised"]), bound, "rel"});
  }
  {
    at::Tensor img = netdist::decode(model, ref["in.latent"]).value();
    rows.push_back({"VAE decode", rel_error(img, ref["vae.image"]), bound, "rel"});
  }
  auto samplers = nlohmann::json::parse(meta["samplers"]);
  for (const auto& pair : samplers) {
    netdist::SampleRequest req;
    req.seed = std::stoull(meta["seed"]);
    req.steps = std::stoi(meta["steps"]);
    req.cfg = std::stod(meta["cfg"]);
    req.sampler = pair[0];
    req.scheduler = pair[1];
    const int size = std::stoi(meta["size"]);
    req.latent = netdist::empty_latent(model, 1, size, size);
    at::Tensor lat = netdist::sample(model, cond, uncond, req, nullptr).value();
    at::Tensor img = netdist::decode(model, lat).value();
    const std::string key = "img." + req.sampler + "_" + req.scheduler;
    rows.push_back({"image " + req.sampler + "/" + req.scheduler + " " + meta["steps"] + " steps",
                    pixel_error(img, ref[key]), 2.0, "/255"});
  }

  int failed = 0;
  std::printf("| component | %s error | bound | ok |\n|---|---|---|---|\n", precision.c_str());
  for (const Row& r : rows) {
    const bool ok = r.error <= r.bound;
    failed += ok ? 0 : 1;
    std::printf("| %s | %.3g %s | %.3g | %s |\n", r.component.c_str(), r.error, r.unit.c_str(), r.bound,
                ok ? "yes" : "NO");
  }
  std::printf("\nreference: ComfyUI, torch %s, %s; unet %s, vae %s\n", meta["torch"].c_str(), meta["device"].c_str(),
              meta["unet_dtype"].c_str(), meta["vae_dtype"].c_str());
  return failed ? 1 : 0;
}
