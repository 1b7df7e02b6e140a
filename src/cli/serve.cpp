// `netdist serve` and `netdist worker`: the ComfyUI-compatible HTTP + WebSocket server on this machine's
// device, optionally as a cluster worker (/netdist/v1 shard API) or as the coordinator of a cluster.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/startup_summary.h"
#include "cli/graph_backend.h"
#include "cli/log_flags.h"
#include "cluster/cluster_metrics.h"
#include "cluster/coordinator.h"
#include "cluster/dial_in.h"
#include "cluster/local_workers.h"
#include "cluster/model_share.h"
#include "cluster/shard_runner.h"
#include "core/log.h"
#include "engine/runtime/torch_compat.h"
#include "nodes/core_nodes.h"
#include "nodes/image_nodes.h"
#include "nodes/node_env.h"
#include "nodes/usdu_tiles.h"
#include "server/http_server.h"
#include "store/store.h"

namespace netdist::cli {

namespace {

volatile std::sig_atomic_t g_signals = 0;  // SIGINT and SIGTERM received
void on_signal(int) { g_signals = g_signals + 1; }

bool is_loopback_address(std::string host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  int dots = 0;
  for (char c : host) {
    if (c == '.')
      ++dots;
    else if (c < '0' || c > '9')
      return false;
  }
  return dots == 3 && host.rfind("127.", 0) == 0;
}

// Every comma-separated address of --listen is loopback.
bool listens_on_loopback_only(const std::string& listen) {
  size_t start = 0;
  while (start <= listen.size()) {
    size_t end = listen.find(',', start);
    if (end == std::string::npos) end = listen.size();
    const std::string host = listen.substr(start, end - start);
    if (!host.empty() && !is_loopback_address(host)) return false;
    start = end + 1;
  }
  return true;
}

struct ClusterFlags {
  bool worker_mode = false;
  bool distributed = false;
  std::string workers;  // comma-separated URLs
  bool no_local = false;
  int local_workers = -1;
  std::string join;
  std::string advertise;
  int test_step_delay_ms = 0;
  bool test_log_netdist_routes = false;
  int test_heartbeat_ms = 0;
  double shard_timeout_s = 600;
  int max_concurrent_prompts = 0;
  std::string parallel = "off";  // --parallel: step groups for whole prompts (cluster/group_plan.h)
  double shutdown_grace_s = 5;  // --shutdown-grace: SIGTERM/SIGINT to exit, stuck prompts or not
  std::string queue_policy = "fifo";
  std::string data_dir;  // --data-dir: durable queue and history (store/store.h); empty = in memory
  std::string tls_ca;    // --tls-ca: CAs trusted for https:// workers and --join; empty = system store
  bool share_models = false;  // --share-models: serve GET /netdist/v1/models[/<sha256>] (model_share.h)
  std::string models_from;    // --models-from: where a worker fetches missing models; empty = --join
  std::string tiles = "exact";  // --tiles: Ultimate SD Upscale tile mode (nodes/usdu_tiles.h)
  LogFlags log;          // --log-level, --log-format (also given to the local workers)
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// SIGTERM/SIGINT came: stops the queue first (a prompt that fails from here on, interrupted or its shards
// dropped, stays unfinished in the store and runs again at the next start with the same --data-dir), then
// the dial-in loop, the local workers, the cluster and the HTTP server, on a thread of its own. Returns 0
// once that is done; after `grace_s` seconds, or at a second signal, it SIGKILLs the local workers and ends
// the process with status 1 without waiting for stuck threads (a node that never returns cannot be cancelled
// from outside; every accepted prompt that did not finish is still pending or running in the store).
int stop_within_grace(const char* role, double grace_s, server::HttpServer& http, cluster::DialIn* dial_in,
                      cluster::LocalWorkers* children, cluster::Cluster* cluster, bool durable) {
  log::info("{}: stopping (waiting up to {:g} s for running work; a second signal exits at once)", role, grace_s);
  std::atomic<const char*> step{"the prompt queue"};
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    http.state().queue().shutdown();
    http.state().interrupt(std::nullopt);
    step = "the dial-in loop (its running task)";
    if (dial_in) dial_in->stop();
    step = "the local workers";
    if (children) children->stop();
    step = "the cluster (tasks running on workers)";
    if (cluster) cluster->stop();
    step = "the HTTP server and the running prompts";
    http.stop();
    stopped = true;
  });
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000));
  while (!stopped && g_signals < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (stopped) {
    stopper.join();
    return 0;
  }
  std::string running;
  for (const std::string& id : http.state().queue().running_prompt_ids())
    running += (running.empty() ? "" : ", ") + id;
  char took[96];
  std::snprintf(took, sizeof took, "stopping took longer than %g s (--shutdown-grace)", grace_s);
  // The log writes to stderr (unbuffered); stdout is not flushed (a thread stuck writing to a full stdout pipe
  // holds its lock).
  log::error("{}: {} while stopping {}{}; exiting without waiting{}", role,
             g_signals < 2 ? took : "a second signal came", step.load(),
             running.empty() ? "" : "; unfinished prompts: " + running,
             durable && !running.empty() ? " (they run again at the next start with this --data-dir)" : "");
  if (children) children->kill_now();
  _exit(1);
}

// The checks that stop serve before anything loads: no token off loopback without --insecure, TLS files,
// the queue policy. 0 when it may start (client_tls set from --tls-ca), else the exit code.
int check_startup(const char* role, const server::ServerOptions& options, bool insecure, const ClusterFlags& flags,
                  std::shared_ptr<const cluster::TlsClientContext>& client_tls) {
  if (!listens_on_loopback_only(options.listen) && options.auth_token.empty()) {
    if (!insecure) {
      log::error(
          "{}: refusing to listen on {} without authentication; set --auth-token (or NETDIST_AUTH_TOKEN), or "
          "pass --insecure to allow it (anyone who can reach the port can run prompts and read every output)",
          role, options.listen);
      return 2;
    }
    log::warn("{}: --insecure: listening on {} with no authentication; anyone who can reach the port can run "
              "prompts and read every output",
              role, options.listen);
  }
  // TLS problems (a missing, unreadable or mismatched cert/key, an unreadable CA file) stop startup here.
  Status tls_check = server::check_tls_files(options.tls_cert_file, options.tls_key_file);
  if (tls_check.is_ok() && !flags.tls_ca.empty()) {
    auto made = cluster::TlsClientContext::create(flags.tls_ca);
    if (made.is_ok()) client_tls = *made;
    tls_check = made.status();
  }
  if (!tls_check.is_ok()) {
    log::error("{}: {}", role, tls_check.message());
    return 2;
  }
  auto policy_check = server::make_queue_policy(flags.queue_policy);
  if (!policy_check.is_ok()) {
    log::error("{}: --queue-policy: {}", role, policy_check.status().message());
    return 2;
  }
  return 0;
}

// --data-dir: opens the durable store (a corrupt, newer or unwritable database stops serve here, naming the
// file) and records outputs in it. false after logging why.
bool open_store(const char* role, server::ServerOptions& options, const ClusterFlags& flags) {
  if (flags.data_dir.empty()) return true;
  auto opened = store::Store::open(flags.data_dir);
  if (!opened.is_ok()) {
    log::error("{}: --data-dir: {}", role, opened.status().to_string());
    return false;
  }
  options.store = std::shared_ptr<store::Store>(std::move(*opened));
  nodes::set_output_recorder([store = options.store](const std::string& prompt_id, const std::string& path) {
    return store->record_output(prompt_id, path);
  });
  return true;
}

// The local worker processes a coordinator without --workers starts: one per GPU (or --local-workers N on
// the CPU), each joining `self_url` and rendering what this process would (same vocabulary, precision,
// noise and memory policy).
std::vector<cluster::LocalWorkerSpec> local_worker_specs(const server::ServerOptions& options,
                                                         const NodeSetupOptions& setup_options,
                                                         const ClusterFlags& flags, const std::string& self_url) {
  std::vector<cluster::LocalWorkerSpec> specs;
  const std::string scratch = (std::filesystem::path(options.temp_dir) / "netdist-worker").string();
  std::vector<std::string> common = {"--port",
                                     "0",
                                     "--join",
                                     self_url,
                                     "--models-dir",
                                     setup_options.env.models_dir,
                                     "--output-directory",
                                     scratch,
                                     "--temp-directory",
                                     scratch,
                                     "--input-directory",
                                     options.input_dir};
  if (!options.auth_token.empty()) common.insert(common.end(), {"--auth-token", options.auth_token});
  if (!flags.tls_ca.empty()) common.insert(common.end(), {"--tls-ca", flags.tls_ca});
  for (const std::string& arg : log_flag_args(flags.log)) common.push_back(arg);
  // The workers render what this process would: same vocabulary, precision, noise and memory policy.
  const NodeSetupOptions& so = setup_options;
  if (!so.env.engine.clip_vocab_dir.empty())
    common.insert(common.end(), {"--clip-vocab", so.env.engine.clip_vocab_dir});
  if (!so.precision.empty()) common.insert(common.end(), {"--precision", so.precision});
  common.insert(common.end(), {"--noise", so.noise});
  if (so.env.engine.lowvram) common.push_back("--lowvram");
  if (so.env.engine.highvram) common.push_back("--highvram");
  common.insert(common.end(), {"--vram-limit", std::to_string(so.env.engine.vram_limit_gb),
                               "--reserve-vram", std::to_string(so.env.engine.reserve_vram_gb),
                               "--max-loaded-models", std::to_string(so.env.max_loaded_models)});
  if (!so.env.engine.cuda_graphs) common.push_back("--no-cuda-graphs");
  if (so.env.disable_metadata) common.push_back("--disable-metadata");
  char grace[32];
  std::snprintf(grace, sizeof grace, "%g", flags.shutdown_grace_s);
  common.insert(common.end(), {"--shutdown-grace", grace});
  const int gpus = runtime::cuda_device_count();
  const int n = flags.local_workers >= 0 ? flags.local_workers : gpus;
  for (int i = 0; i < n; ++i) {
    cluster::LocalWorkerSpec spec;
    spec.args = common;
    if (flags.local_workers < 0) {
      const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      const std::vector<std::string> ids = split_commas(visible ? visible : "");
      spec.cuda_visible_devices = i < int(ids.size()) ? ids[i] : std::to_string(i);
      spec.args.insert(spec.args.end(), {"--cuda-device", "0"});
    } else {
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency() / unsigned(std::max(1, n)));
      spec.args.insert(spec.args.end(), {"--threads", std::to_string(cores)});
    }
    specs.push_back(spec);
  }
  return specs;
}

// What a cluster role adds to a server: the model index (hashed in the background, model_index.h), this
// process's shard runner, the cluster of a coordinator, and their /netdist/v1 routes in
// options.extra_routes.
struct ClusterRole {
  std::shared_ptr<cluster::ModelIndex> model_index;
  std::unique_ptr<cluster::ShardRunner> runner;
  std::shared_ptr<cluster::Cluster> cluster;
};

ClusterRole make_cluster_role(server::ServerOptions& options, const NodeSetupOptions& setup_options,
                              const ClusterFlags& flags, NodeSetup& setup,
                              const std::shared_ptr<const cluster::TlsClientContext>& client_tls) {
  const bool coordinator = flags.distributed && !flags.worker_mode;
  ClusterRole role;
  if (flags.worker_mode || coordinator || flags.share_models) {
    role.model_index = std::make_shared<cluster::ModelIndex>(setup_options.env.models_dir);
    role.model_index->start();
  }
  if (flags.worker_mode || coordinator) {
    nodes::register_shard_nodes(*setup.registry);
    cluster::ShardRunnerOptions ro;
    ro.device_name = setup_options.device;
    ro.test_step_delay_ms = flags.test_step_delay_ms;
    ro.models = std::make_shared<cluster::ModelFetcher>(
        role.model_index, setup.env,
        cluster::ModelFetchOptions{flags.models_from.empty() ? flags.join : flags.models_from, options.auth_token,
                                   client_tls});
    // Step groups (cluster/group_store.h): meet through the coordinator with this worker's token; Gloo binds
    // the first --listen address unless that is a wildcard.
    ro.group.coordinator_url = flags.join;
    ro.group.auth_token = options.auth_token;
    ro.group.tls = client_tls;
    const std::string first_listen = options.listen.substr(0, options.listen.find(','));
    if (first_listen != "0.0.0.0" && first_listen != "::") ro.group.host = first_listen;
    if (flags.worker_mode || !flags.no_local)
      role.runner = std::make_unique<cluster::ShardRunner>(*setup.registry, setup.env, ro);
  }
  if (coordinator) {
    cluster::ClusterOptions co;
    co.worker_urls = split_commas(flags.workers);
    co.auth_token = options.auth_token;
    co.tls = client_tls;
    co.shard_timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.shard_timeout_s * 1000));
    co.input_dir = options.input_dir;
    if (flags.test_heartbeat_ms > 0) co.heartbeat = std::chrono::milliseconds(flags.test_heartbeat_ms);
    role.cluster = std::make_shared<cluster::Cluster>(co, role.runner.get());
    cluster::register_cluster_samplers(*setup.registry, role.cluster);
    // Checkpoints that only workers have are listed (and validate) here too.
    setup.env->set_remote_checkpoints([weak = std::weak_ptr<cluster::Cluster>(role.cluster)] {
      auto c = weak.lock();
      return c ? c->worker_checkpoints() : std::vector<std::string>();
    });
    options.extra_routes =
        cluster::coordinator_routes(role.cluster, role.runner ? role.runner->routes() : server::ExtraRoutes());
    options.extra_metrics = [weak = std::weak_ptr<cluster::Cluster>(role.cluster)] {
      auto c = weak.lock();
      return c ? cluster::cluster_metrics_text(c->status(false)) : std::string();
    };
  } else if (role.runner) {
    options.extra_routes = role.runner->routes();
  } else if (flags.test_log_netdist_routes) {  // a stock-ComfyUI stand-in that reports any /netdist call
    options.extra_routes = [](const server::Request& req,
                              const std::string& path) -> std::optional<server::Response> {
      if (path.rfind("/netdist/", 0) != 0) return std::nullopt;
      log::warn("netdist serve: test: refused {} {}", req.method, path);
      return server::error_response(404, "not_found", "no /netdist routes here (--test-log-netdist-routes)");
    };
  }
  if (role.model_index)
    options.extra_routes = cluster::model_share_routes(
        role.model_index, {flags.share_models, !options.auth_token.empty()}, std::move(options.extra_routes));
  return role;
}

// This server's URL as its first --listen address and the port it got.
std::string self_url_of(const server::ServerOptions& options, int port) {
  const std::string first_address = options.listen.substr(0, options.listen.find(','));
  const std::string host =
      first_address.find(':') != std::string::npos ? "[" + first_address + "]" : first_address;
  return (options.tls_cert_file.empty() ? "http://" : "https://") + host + ":" + std::to_string(port);
}

// A worker's --join loop (dial_in.h), started.
std::unique_ptr<cluster::DialIn> start_dial_in(cluster::ShardRunner& runner, const server::ServerOptions& options,
                                               const ClusterFlags& flags, const std::string& self_url,
                                               const std::shared_ptr<const cluster::TlsClientContext>& client_tls) {
  cluster::DialInOptions dio;
  dio.coordinator = flags.join;
  dio.label = flags.advertise.empty() ? self_url : flags.advertise;
  dio.auth_token = options.auth_token;
  dio.tls = client_tls;
  auto dial_in = std::make_unique<cluster::DialIn>(runner, dio);
  dial_in->start();
  return dial_in;
}

// Prints (stdout: the process tests and local workers read it) and logs where the server listens; its URL.
std::string announce_listening(const char* role, const server::ServerOptions& options, int port) {
  const std::string self_url = self_url_of(options, port);
  const char* auth = options.auth_token.empty() ? "no authentication" : "bearer token required";
  std::printf("%s: listening on %s (%s)\n", role, self_url.c_str(), auth);
  std::fflush(stdout);
  log::info("{}: listening on {} ({})", role, self_url, auth);
  return self_url;
}

// The cluster line of the startup summary.
std::string cluster_summary(const ClusterFlags& flags, bool coordinator, size_t local_workers) {
  if (flags.worker_mode)
    return flags.join.empty() ? "worker: waits for a coordinator to call it (its --workers lists this URL)"
                              : "worker: dials in to " + flags.join;
  if (!coordinator) return "";
  if (!flags.workers.empty()) return "coordinator of --workers " + flags.workers + ", parallel " + flags.parallel;
  return "coordinator with " + std::to_string(local_workers) + " local worker(s) (dial-in workers: --join this URL)" +
         ", parallel " + flags.parallel;
}

int serve(server::ServerOptions options, const NodeSetupOptions& setup_options, bool insecure,
          const ClusterFlags& flags) {
  const char* role = flags.worker_mode ? "netdist worker" : "netdist serve";
  std::shared_ptr<const cluster::TlsClientContext> client_tls;
  if (int code = check_startup(role, options, insecure, flags, client_tls); code != 0) return code;
  if (!open_store(role, options, flags)) return 1;
  auto setup = make_node_registry(setup_options);
  if (!setup.is_ok()) {
    log::error("{}: {}", role, setup.status().to_string());
    return 2;
  }
  for (const std::string& dir : {options.output_dir, options.input_dir, options.temp_dir}) {
    std::filesystem::create_directories(dir);
  }
  options.models_dir = setup_options.env.models_dir;
  options.pytorch_version = runtime::torch_version();

  const bool coordinator = flags.distributed && !flags.worker_mode;
  nodes::set_usdu_default_tile_mode(flags.tiles == "independent" ? nodes::UsduTileMode::kIndependent
                                                                  : nodes::UsduTileMode::kExact);
  ClusterRole parts = make_cluster_role(options, setup_options, flags, *setup, client_tls);
  std::unique_ptr<cluster::ShardRunner>& runner = parts.runner;
  std::shared_ptr<cluster::Cluster>& cluster = parts.cluster;
  std::shared_ptr<nodes::NodeEnv> env = setup->env;
  GraphBackend graph_backend(std::move(*setup));
  if (!coordinator) graph_backend.set_test_step_delay_ms(flags.test_step_delay_ms);
  std::unique_ptr<cluster::CoordinatorBackend> coordinator_backend;
  if (cluster) {
    cluster::CoordinatorOptions co;
    co.output_dir = options.output_dir;
    co.temp_dir = options.temp_dir;
    co.max_concurrent_prompts = flags.max_concurrent_prompts;
    co.parallel = flags.parallel;
    co.local_checkpoints = [env] { return env->local_checkpoint_names(); };
    coordinator_backend = std::make_unique<cluster::CoordinatorBackend>(graph_backend, cluster, co);
  }
  server::Backend& backend =
      coordinator_backend ? static_cast<server::Backend&>(*coordinator_backend) : graph_backend;
  server::HttpServer http(options, backend);
  Status s = http.state().queue().set_policy(flags.queue_policy);
  // Before the listener opens: a client may send SIGTERM as soon as it has seen the address and a prompt
  // running, which can be before this thread runs again (seen on a loaded 2-core machine: the signal's
  // default action killed the process). Received early, it is handled when the wait below begins.
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (s.is_ok()) s = http.start();
  if (!s.is_ok()) {
    log::error("{}: {}", role, s.to_string());
    return 1;
  }
  const std::string self_url = announce_listening(role, options, http.port());

  std::unique_ptr<cluster::LocalWorkers> children;
  size_t local_count = 0;
  if (cluster) {
    cluster->set_self_url(self_url);  // where step-group members meet (group/kv)
    cluster->start();
    if (flags.workers.empty()) {
      const std::vector<cluster::LocalWorkerSpec> specs =
          local_worker_specs(options, setup_options, flags, self_url);
      if (!specs.empty()) {
        // Their stop fits in this process's grace period: SIGKILL after 60 % of it.
        children = std::make_unique<cluster::LocalWorkers>(
            specs, std::chrono::milliseconds(static_cast<int64_t>(flags.shutdown_grace_s * 600)));
        children->start();
        local_count = specs.size();
        std::printf("%s: started %zu local worker(s)\n", role, specs.size());
        std::fflush(stdout);
      }
    }
  }
  print_startup_summary({role, self_url, !options.auth_token.empty(), !options.tls_cert_file.empty(), flags.data_dir,
                         cluster_summary(flags, coordinator, local_count), flags.queue_policy}, *env);
  std::unique_ptr<cluster::DialIn> dial_in;
  if (flags.worker_mode && !flags.join.empty()) dial_in = start_dial_in(*runner, options, flags, self_url, client_tls);
  while (g_signals == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return stop_within_grace(role, flags.shutdown_grace_s, http, dial_in.get(), children.get(), cluster.get(),
                           options.store != nullptr);
}

// The flags only `serve` has: the coordinator's (and --worker-mode, --data-dir).
void add_coordinator_flags(CLI::App* cmd, ClusterFlags* flags) {
  cmd->add_flag("--worker-mode", flags->worker_mode, "run as a cluster worker (same as `netdist worker`)");
  cmd->add_flag("--enable-distributed", flags->distributed, "coordinate workers: split batches over them");
  cmd->add_option(
      "--workers", flags->workers,
      "comma-separated worker URLs: http[s]://host:port (netdist workers), comfy+http://host:port "
      "(stock ComfyUI servers: whole batch-1 prompts only)");
  cmd->add_flag("--test-log-netdist-routes", flags->test_log_netdist_routes,
                "plain serve: answer and log every /netdist/ request (tests only)")
      ->group("");
  cmd->add_flag("--no-local", flags->no_local, "the coordinator renders no shards itself");
  cmd->add_option("--local-workers", flags->local_workers,
                  "start N CPU worker processes (default: one per GPU)");
  cmd->add_option("--shard-timeout", flags->shard_timeout_s,
                  "seconds before a worker's shard is given to another");
  cmd->add_option("--max-concurrent-prompts", flags->max_concurrent_prompts,
                  "whole batch-1 prompts sent to workers at once (default 0: one per live worker)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--parallel", flags->parallel,
                  "auto: a batch-1 prompt may run on a step group of idle workers (CFG split, tiles) when the "
                  "cost model predicts a gain; off (default): only when the prompt asks. A prompt's "
                  "extra_data.netdist.parallel (auto, off, cfg, tiles) overrides it (docs/api.md)")
      ->check(CLI::IsMember({"auto", "off"}));
  cmd->add_option("--data-dir", flags->data_dir,
                  "keep the queue, history and output-file records in DIR/netdist.db (SQLite): accepted "
                  "prompts survive a crash or restart (default: in memory)");
  cmd->add_option("--tiles", flags->tiles,
                  "Ultimate SD Upscale tiles: exact (the sequential picture at any worker count, default) or "
                  "independent (every tile from the source image, all at once); per prompt: "
                  "extra_data.netdist.tiles")
      ->check(CLI::IsMember({"exact", "independent"}));
  cmd->add_option("--test-heartbeat-ms", flags->test_heartbeat_ms,
                  "coordinator: worker heartbeat period; a dial-in lease is 3 of them (tests only)")
      ->group("");
}

CLI::App* add_server_command(CLI::App& app, const std::string& name, const std::string& help, bool worker) {
  auto options = std::make_shared<server::ServerOptions>();
  auto setup = std::make_shared<NodeSetupOptions>();
  auto insecure = std::make_shared<bool>(false);
  auto max_upload_mb = std::make_shared<double>(100.0);
  auto flags = std::make_shared<ClusterFlags>();
  flags->worker_mode = worker;
  if (worker) options->port = 8288;
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->add_option("--listen", options->listen, "address to listen on");
  cmd->add_option("--port", options->port, "port (0 picks a free one)");
  cmd->add_option("--max-upload-size", *max_upload_mb, "largest request body in MB (413 above)");
  cmd->add_option("--auth-token", options->auth_token,
                  "require 'Authorization: Bearer TOKEN' (or ?token=TOKEN) on every route and the WebSocket; "
                  "a coordinator also sends it to its workers")
      ->envname("NETDIST_AUTH_TOKEN");
  cmd->add_flag("--insecure", *insecure, "allow a non-loopback address without --auth-token");
  cmd->add_option(
      "--tls-cert", options->tls_cert_file,
      "PEM certificate chain: with --tls-key the port speaks HTTPS and WSS only (docs/security.md)");
  cmd->add_option("--tls-key", options->tls_key_file, "PEM private key of --tls-cert (unencrypted)");
  cmd->add_option(
      "--tls-ca", flags->tls_ca,
      "PEM CA file trusted for https:// --workers and --join URLs (default: the system CA store)");
  if (!worker) add_coordinator_flags(cmd, flags.get());
  cmd->add_option("--shutdown-grace", flags->shutdown_grace_s,
                  "seconds SIGTERM/SIGINT waits for running work to stop before the process exits anyway (a "
                  "stuck prompt is not waited for; with --data-dir it runs again at the next start)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option(
      "--queue-policy", flags->queue_policy,
      "which pending prompt runs next: fifo (default, ComfyUI's order), lifo, priority, sjf, fair "
      "(docs/scheduling.md)");
  cmd->add_flag("--share-models", flags->share_models,
                "serve this server's model files by SHA-256 to cluster members holding --auth-token (GET "
                "models; docs/api.md, model sharing)");
  cmd->add_option("--models-from", flags->models_from,
                  "worker: fetch checkpoints, LoRAs and VAEs that a task names and this worker lacks from this "
                  "--share-models server (default: the --join coordinator)");
  cmd->add_option("--join", flags->join,
                  "worker: dial in to this coordinator URL (the worker long-polls it for shards; the "
                  "coordinator never connects back, so NAT and firewalls are fine)");
  cmd->add_option("--advertise", flags->advertise,
                  "worker: the URL shown for this worker in the coordinator's cluster status (a label only: "
                  "a --join worker is never connected to; default: the listen address)");
  cmd->add_option("--test-step-delay-ms", flags->test_step_delay_ms,
                  "worker: sleep after each step (tests only)")
      ->group("");
  add_node_setup_options(*cmd, *setup);
  add_log_flags(*cmd, flags->log);
  cmd->callback([cmd, options, setup, insecure, max_upload_mb, flags] {
    if (!apply_log_flags(flags->log, "netdist " + cmd->get_name())) return set_exit_code(2);
    options->output_dir = setup->env.output_dir;
    options->input_dir = setup->env.input_dir;
    options->temp_dir = setup->env.temp_dir;
    options->max_body_bytes = static_cast<uint64_t>(*max_upload_mb * 1024 * 1024);
    set_exit_code(serve(*options, *setup, *insecure, *flags));
  });
  return cmd;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  add_server_command(app, "serve", "Serve the ComfyUI HTTP/WebSocket API (and coordinate a cluster)", false);
}

void add_worker_command(CLI::App& app) {
  add_server_command(app, "worker",
                     "Serve the ComfyUI API plus the cluster protocol (docs/api.md) as a cluster worker", true);
}

}  // namespace netdist::cli
