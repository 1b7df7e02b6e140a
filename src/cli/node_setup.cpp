#include "cli/node_setup.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <ATen/Parallel.h>

#include "cluster/http_client.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"
#include "nodes/netdist_nodes.h"

namespace netdist::cli {

namespace fs = std::filesystem;

std::string embedded_model_path() {
  if (const char* env = std::getenv("NETDIST_MODEL"); env && *env) return env;
  std::vector<fs::path> candidates = {fs::path("models") / "tiny-emoji.safetensors"};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / "models" / "tiny-emoji.safetensors");
    candidates.push_back(exe.parent_path() / ".." / ".." / "models" / "tiny-emoji.safetensors");
  }
  candidates.push_back(fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors");
  for (const fs::path& p : candidates) {
    if (fs::is_regular_file(p, ec)) return fs::weakly_canonical(p).string();
  }
  return "";
}

void add_node_setup_options(CLI::App& cmd, NodeSetupOptions& o) {
  cmd.add_option("--models-dir", o.env.models_dir, "model folder (checkpoints/, loras/, vae/ or files)");
  cmd.add_option("--output-directory", o.env.output_dir, "where SaveImage writes");
  cmd.add_option("--input-directory", o.env.input_dir, "where LoadImage reads");
  cmd.add_option("--temp-directory", o.env.temp_dir, "where PreviewImage writes");
  cmd.add_option("--device", o.device, "cpu, cuda or cuda:N");
  cmd.add_option_function<int>(
      "--cuda-device", [&o](int n) { o.device = "cuda:" + std::to_string(n); },
      "use CUDA device N (same as --device cuda:N)");
  cmd.add_option("--precision", o.precision, "fp32, fp16 or bf16 (default: fp32 on CPU, fp16 on CUDA)")
      ->check(CLI::IsMember({"", "fp32", "fp16", "bf16"}));
  cmd.add_flag("--lowvram", o.env.engine.lowvram, "keep each model on the GPU only while it runs");
  cmd.add_flag(
      "--highvram", o.env.engine.highvram,
      "never move models to RAM to make room; CUDA graphs on every stream (more memory, faster batches)");
  cmd.add_option("--vram-limit", o.env.engine.vram_limit_gb,
                 "use at most this many GB of the GPU (as on a card of that size; 0: all of it)");
  cmd.add_option("--reserve-vram", o.env.engine.reserve_vram_gb,
                 "GB of the GPU to leave to other programs (default 0.4, as ComfyUI)");
  cmd.add_option("--max-loaded-models", o.env.max_loaded_models,
                 "keep at most N checkpoints loaded (least recently used dropped first; 0: no limit)");
  cmd.add_flag_callback(
      "--no-cuda-graphs", [&o] { o.env.engine.cuda_graphs = false; },
      "run every UNet call eagerly instead of replaying CUDA graphs (same results, slower)");
  cmd.add_option("--noise", o.noise, "where per-step sampler noise is drawn: device (as ComfyUI) or cpu")
      ->check(CLI::IsMember({"device", "cpu"}));
  cmd.add_option("--clip-vocab", o.env.engine.clip_vocab_dir, "folder with vocab.json and merges.txt");
  cmd.add_option("--threads", o.threads, "CPU threads for tensor work (default: libtorch's)");
  cmd.add_flag("--disable-metadata", o.env.disable_metadata, "write PNGs without prompt/workflow text");
}

// The NetDist nodes' HTTP calls, over the cluster's client: "http://host:port/path?query" → origin + target.
static Result<nodes::HttpResponse> netdist_http(const nodes::HttpRequest& r) {
  const std::string scheme = "http://";
  if (r.url.rfind(scheme, 0) != 0)
    return Status::invalid_argument("URL '" + r.url +
                                    "': only http:// URLs are supported (netdist has no https client)");
  const size_t slash = r.url.find('/', scheme.size());
  cluster::HttpCall call;
  call.method = r.method;
  call.target = slash == std::string::npos ? "/" : r.url.substr(slash);
  call.body = r.body;
  call.content_type = r.content_type;
  call.timeout = r.timeout;
  ND_ASSIGN_OR_RETURN(cluster::HttpReply reply, cluster::http_call(r.url.substr(0, slash), call));
  return nodes::HttpResponse{reply.status, std::move(reply.body), std::move(reply.content_type)};
}

Result<NodeSetup> make_node_registry(NodeSetupOptions o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  o.env.engine.device = o.device;
  o.env.engine.noise_on_cpu = o.noise == "cpu";
  if (o.precision == "fp32") o.env.engine.precision = Precision::kFloat32;
  if (o.precision == "fp16") o.env.engine.precision = Precision::kFloat16;
  if (o.precision == "bf16") o.env.engine.precision = Precision::kBFloat16;
  if (o.env.default_checkpoint.empty()) o.env.default_checkpoint = embedded_model_path();
  // Also checks --device: its spelling (core/device_name.h) and that the CUDA device exists.
  ND_RETURN_IF_ERROR(configure_memory(o.env.engine));
  if (o.env.max_loaded_models < 0) return Status::invalid_argument("--max-loaded-models must be at least 0");
  NodeSetup setup;
  setup.env = std::make_shared<nodes::NodeEnv>(o.env);
  setup.registry = std::make_unique<graph::NodeRegistry>();
  nodes::register_core_nodes(*setup.registry, setup.env);
  nodes::register_netdist_nodes(*setup.registry, setup.env, netdist_http);
  return setup;
}

}  // namespace netdist::cli
