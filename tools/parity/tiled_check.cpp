// parity_check --tiled: netdist's TiledDiffusion against tools/parity/tiled_reference.py (the real custom node
// in ComfyUI, same checkpoint, same inputs). Per method: one tiled denoiser call on ComfyUI's own conditioning
// (relative error, the precision's bound) and the whole euler/normal image (mean absolute pixel difference in
// /255, bound 2). Prints the same markdown table as parity_check.
#include "tools/parity/tiled_check.h"

#include <cstdio>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/model.h"
#include "engine/tiled_diffusion.h"
#include "netdist/tiled_diffusion.h"

namespace netdist::parity {

namespace {

double tiled_rel_error(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kDouble).cpu(), y = b.to(at::kDouble).cpu();
  return (x - y).norm().item<double>() / std::max(1e-30, y.norm().item<double>());
}

double tiled_pixel_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble).cpu() - b.to(at::kDouble).cpu()).abs().mean() * 255.0).item<double>();
}

}  // namespace

int tiled_check(const std::shared_ptr<Model>& model, runtime::WeightMap& ref,
                std::map<std::string, std::string>& meta, const std::string& precision) {
  const double bound = precision == "fp32" ? 1e-4 : 1e-2;
  struct Row {
    std::string what;
    double error, bound;
    const char* unit;
  };
  std::vector<Row> rows;
  const auto cond = encode_prompt(*model, meta["prompt"]).value();
  const auto uncond = encode_prompt(*model, meta["negative"]).value();
  rows.push_back({"text encoder (prompt)", tiled_rel_error(cond[0].context, ref["te.cond"]), bound, "rel"});
  for (const auto& pair : nlohmann::json::parse(meta["methods"])) {
    TiledDiffusionOptions o;
    o.method = parse_tile_method(pair[0].get<std::string>()).value();
    o.tile_width = o.tile_height = std::stoll(meta["tile"]);
    o.tile_overlap = std::stoll(meta["overlap"]);
    o.tile_batch_size = std::stoll(meta["batch"]);
    const std::string key = "tiled." + pair[1].get<std::string>();
    const std::string name = "TiledDiffusion " + pair[0].get<std::string>();
    std::shared_ptr<Model> tiled = apply_tiled_diffusion(model, o).value();
    {
      cond::ModelFn unet = [&](const at::Tensor& x, const at::Tensor& s, const at::Tensor& c, const at::Tensor& y) {
        return apply_model_once(*model, x, s, c, y).value();
      };
      Status failure;
      at::Tensor den = tiles::tiled_model_fn(unet, o, {}, &failure)(ref["in.x"], ref["in.sigma"], ref["te.cond"],
                                                                     at::Tensor());
      rows.push_back({name + ": one denoiser call (x0)", tiled_rel_error(den, ref[key + ".denoised"]), bound, "rel"});
    }
    SampleRequest req;
    req.seed = std::stoull(meta["seed"]);
    req.steps = std::stoi(meta["steps"]);
    req.cfg = std::stod(meta["cfg"]);
    req.sampler = "euler";
    req.scheduler = "normal";
    req.latent = empty_latent(*model, 1, std::stoll(meta["width"]), std::stoll(meta["height"]));
    at::Tensor lat = sample(*tiled, cond, uncond, req, nullptr).value();
    at::Tensor img = decode(*tiled, lat).value();
    rows.push_back({name + ": image euler/normal " + meta["steps"] + " steps", tiled_pixel_error(img, ref[key + ".image"]),
                    2.0, "/255"});
  }
  int failed = 0;
  std::printf("| component | %s error | bound | ok |\n|---|---|---|---|\n", precision.c_str());
  for (const Row& r : rows) {
    const bool ok = r.error <= r.bound;
    failed += ok ? 0 : 1;
    std::printf("| %s | %.3g %s | %.3g | %s |\n", r.what.c_str(), r.error, r.unit, r.bound, ok ? "yes" : "NO");
  }
  std::printf("\nreference: ComfyUI + ComfyUI-TiledDiffusion, torch %s, %s; unet %s, vae %s; %sx%s, tile %s, "
              "overlap %s, tile_batch_size %s\n",
              meta["torch"].c_str(), meta["device"].c_str(), meta["unet_dtype"].c_str(), meta["vae_dtype"].c_str(),
              meta["width"].c_str(), meta["height"].c_str(), meta["tile"].c_str(), meta["overlap"].c_str(),
              meta["batch"].c_str());
  return failed ? 1 : 0;
}

}  // namespace netdist::parity
