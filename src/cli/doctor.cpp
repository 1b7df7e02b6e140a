// `netdist doctor [URL]`: checks this machine's install (libtorch, CUDA devices, driver and free memory, the
// models folder and its files, the CLIP and T5 vocabularies) and, given a server or coordinator URL, that
// server and every worker behind it (cluster/doctor.h). Prints one table with a fix under every row that is not
// ok; exit 1 when a row failed, 0 otherwise (warnings included), 2 for bad options.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <netdist/engine.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/node_setup.h"
#include "cluster/doctor.h"
#include "engine/checkpoint_probe.h"
#include "engine/runtime/torch_compat.h"
#include "engine/text/clip_tokenizer.h"
#include "engine/text/t5_tokenizer.h"

namespace netdist::cli {

namespace {

struct DoctorOptions {
  std::string url;
  cluster::RemoteOptions remote;
  std::string models_dir = "models";
  std::string clip_vocab;
  bool json = false;
  bool no_bench = false;
};

// The NVIDIA kernel driver's version line, when the driver is loaded.
std::string nvidia_driver_line() {
  std::ifstream f("/proc/driver/nvidia/version");
  std::string line;
  if (!f || !std::getline(f, line)) return "";
  return line;
}

void check_devices(cluster::DoctorReport& report) {
  report.ok("local", "libtorch", runtime::torch_version());
  const int n = runtime::cuda_device_count();
  const std::string driver = nvidia_driver_line();
  if (n == 0) {
    report.warn("local", "cuda",
                driver.empty() ? "no CUDA device visible and no NVIDIA driver loaded: netdist renders on the CPU (slow)"
                               : "the NVIDIA driver is loaded but this build sees no CUDA device: " + driver,
                driver.empty() ? "install the NVIDIA driver, and a netdist built against CUDA libtorch (README: GPUs)"
                               : "use a netdist built against CUDA libtorch; check CUDA_VISIBLE_DEVICES");
    return;
  }
  report.ok("local", "driver", driver.empty() ? "(no /proc/driver/nvidia/version)" : driver);
  for (int i = 0; i < n; ++i) {
    const std::string name = "cuda:" + std::to_string(i);
    auto m = device_memory_info(name);
    if (!m.is_ok()) {
      report.fail("local", name, m.status().message(), "check the device with nvidia-smi");
      continue;
    }
    const double total = m->vram_total / 1073741824.0, free = m->vram_free / 1073741824.0;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: %.1f GiB, %.1f GiB free", m->name.c_str(), total, free);
    if (free < 2.0)
      report.warn("local", name, buf, "another program holds the card's memory (nvidia-smi lists it); stop it or "
                                      "run netdist with --lowvram / --reserve-vram");
    else
      report.ok("local", name, buf);
  }
}

void check_vocabularies(const DoctorOptions& o, cluster::DoctorReport& report) {
  const std::string model = embedded_model_path();
  if (model.empty())
    report.warn("local", "embedded model", "models/tiny-emoji.safetensors not found beside the binary or here",
                "run netdist from its checkout or install folder, or set NETDIST_MODEL");
  else
    report.ok("local", "embedded model", model);
  auto clip_dir = text::ClipTokenizer::find_vocab_dir(model.empty() ? o.models_dir : model, o.clip_vocab);
  auto clip = clip_dir.is_ok() ? text::ClipTokenizer::load(*clip_dir) : Result<text::ClipTokenizer>(clip_dir.status());
  if (clip.is_ok())
    report.ok("local", "CLIP vocabulary", *clip_dir);
  else if (model.empty() || !o.clip_vocab.empty())
    report.fail("local", "CLIP vocabulary", clip.status().message(),
                "pass --clip-vocab with the folder holding vocab.json and merges.txt (openai/clip-vit-large-patch14)");
  else
    report.ok("local", "CLIP vocabulary", "the embedded model carries its own (checkpoints of other families need "
                                          "vocab.json and merges.txt: --clip-vocab)");
  auto t5_path = text::T5Tokenizer::find_tokenizer_json("");
  auto t5 = t5_path.is_ok() ? text::T5Tokenizer::load(*t5_path) : Result<text::T5Tokenizer>(t5_path.status());
  if (t5.is_ok())
    report.ok("local", "T5 vocabulary", *t5_path);
  else
    report.warn("local", "T5 vocabulary", t5.status().message(),
                "keep models/t5_tokenizer/tokenizer.json beside netdist (needed by SD3 and Flux text encoders)");
}

int run_doctor(DoctorOptions o) {
  cluster::DoctorReport report;
  check_devices(report);
  check_vocabularies(o, report);
  cluster::check_models_dir(o.models_dir, [](const std::string& path) { return describe_checkpoint(path); }, report);
  if (!o.url.empty()) {
    o.remote.url = o.url;
    o.remote.bench = !o.no_bench;
    cluster::check_remote(o.remote, report);
  }
  if (o.json) std::printf("%s\n", report.to_json().dump(2).c_str());
  else std::printf("%s", report.table().c_str());
  std::fflush(stdout);
  return report.failed() ? 1 : 0;
}

}  // namespace

void add_doctor_command(CLI::App& app) {
  auto o = std::make_shared<DoctorOptions>();
  CLI::App* cmd = app.add_subcommand(
      "doctor", "Check this install, and a server or cluster given its URL; prints a table with a fix for every problem");
  cmd->add_option("url", o->url, "a coordinator, worker or server to check (http[s]://host:port)");
  cmd->add_option("--auth-token", o->remote.auth_token, "the cluster's bearer token")->envname("NETDIST_AUTH_TOKEN");
  cmd->add_option("--tls-ca", o->remote.tls_ca, "PEM file of CAs trusted for https:// URLs (default: the system's)");
  cmd->add_option("--models-dir", o->models_dir, "the models folder to check (default: models)");
  cmd->add_option("--clip-vocab", o->clip_vocab, "folder with vocab.json and merges.txt, as serve takes it");
  cmd->add_option("--max-clock-skew", o->remote.max_clock_skew_s, "seconds of clock difference that fail (default 30)");
  cmd->add_flag("--no-bench", o->no_bench, "skip the one-step render on each worker");
  cmd->add_flag("--json", o->json, "print the checks as JSON instead of a table");
  cmd->callback([o] { set_exit_code(run_doctor(*o)); });
}

}  // namespace netdist::cli
