#include "cli/startup_summary.h"

#include <cstdio>

#include <netdist/engine.h>

namespace netdist::cli {

namespace {

std::string count(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

const char* precision_label(Precision p) {
  switch (p) {
    case Precision::kFloat32:
      return "fp32";
    case Precision::kFloat16:
      return "fp16";
    case Precision::kBFloat16:
      return "bf16";
  }
  return "?";
}

std::string device_line(const nodes::NodeEnv& env) {
  const EngineOptions& e = env.options().engine;
  std::string line = e.device;
  auto m = device_memory_info(e.device);
  if (m.is_ok() && m->type == "cuda") {
    char buf[160];
    std::snprintf(buf, sizeof buf, " (%s, %.1f GiB free of %.1f)", m->name.c_str(), m->vram_free / 1073741824.0,
                  m->vram_total / 1073741824.0);
    line += buf;
  }
  line += std::string(", ") + (e.precision ? precision_label(*e.precision) : (m.is_ok() && m->type == "cuda" ? "fp16" : "fp32"));
  if (e.vram_limit_gb > 0) {
    char buf[48];
    std::snprintf(buf, sizeof buf, ", --vram-limit %g GB", e.vram_limit_gb);
    line += buf;
  }
  if (e.lowvram) line += ", --lowvram";
  if (e.highvram) line += ", --highvram";
  return line;
}

}  // namespace

void print_startup_summary(const StartupSummary& s, const nodes::NodeEnv& env) {
  const char* r = s.role.c_str();
  std::printf("%s: security: %s, %s\n", r, s.auth ? "bearer token required" : "NO authentication",
              s.tls ? "TLS (https/wss)" : "plain http");
  std::printf("%s: device %s\n", r, device_line(env).c_str());
  const size_t ckpts = env.local_checkpoint_names().size();
  std::printf("%s: models in '%s': %s, %s, %s, %s\n", r, env.options().models_dir.c_str(),
              count(ckpts, "checkpoint", "checkpoints").c_str(), count(env.lora_names().size(), "LoRA", "LoRAs").c_str(),
              count(env.vae_names().size(), "VAE", "VAEs").c_str(),
              count(env.upscale_model_names().size(), "upscale model", "upscale models").c_str());
  std::printf("%s: queue %s, %s\n", r, s.queue_policy.c_str(),
              s.data_dir.empty() ? "in memory (lost on exit; --data-dir keeps it)"
                                 : ("durable in '" + s.data_dir + "'").c_str());
  if (!s.cluster.empty()) std::printf("%s: %s\n", r, s.cluster.c_str());
  std::printf("%s: API and WebSocket at %s (ComfyUI clients connect here)\n", r, s.url.c_str());
  std::fflush(stdout);
}

}  // namespace netdist::cli
