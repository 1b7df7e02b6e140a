// `netdist serve`: the ComfyUI-compatible HTTP + WebSocket server on this machine's device.
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/graph_backend.h"
#include "engine/runtime/torch_compat.h"
#include "server/http_server.h"

namespace netdist::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

bool is_loopback_address(std::string host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  int dots = 0;
  for (char c : host) {
    if (c == '.') ++dots;
    else if (c < '0' || c > '9') return false;
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

int serve(server::ServerOptions options, const NodeSetupOptions& setup_options, bool insecure) {
  const bool loopback = listens_on_loopback_only(options.listen);
  if (!loopback && options.auth_token.empty()) {
    if (!insecure) {
      std::fprintf(stderr,
                   "netdist serve: refusing to listen on %s without authentication; set --auth-token (or "
                   "NETDIST_AUTH_TOKEN), or pass --insecure to allow it (anyone who can reach the port can run "
                   "prompts and read every output)\n",
                   options.listen.c_str());
      return 2;
    }
    std::fprintf(stderr,
                 "netdist serve: WARNING: --insecure: listening on %s with no authentication; anyone who can reach "
                 "the port can run prompts and read every output\n",
                 options.listen.c_str());
  }
  auto setup = make_node_registry(setup_options);
  if (!setup.is_ok()) {
    std::fprintf(stderr, "netdist serve: %s\n", setup.status().to_string().c_str());
    return 2;
  }
  for (const std::string& dir : {options.output_dir, options.input_dir, options.temp_dir}) {
    std::filesystem::create_directories(dir);
  }
  options.models_dir = setup_options.env.models_dir;
  options.pytorch_version = runtime::torch_version();
  GraphBackend backend(std::move(*setup));
  server::HttpServer http(options, backend);
  Status s = http.start();
  if (!s.is_ok()) {
    std::fprintf(stderr, "netdist serve: %s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("netdist serve: listening on http://%s:%u (%s)\n", options.listen.c_str(), unsigned(http.port()),
              options.auth_token.empty() ? "no authentication" : "bearer token required");
  std::fflush(stdout);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop) pause();
  http.stop();
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto options = std::make_shared<server::ServerOptions>();
  auto setup = std::make_shared<NodeSetupOptions>();
  auto insecure = std::make_shared<bool>(false);
  auto max_upload_mb = std::make_shared<double>(100.0);
  CLI::App* cmd = app.add_subcommand("serve", "Serve the ComfyUI HTTP/WebSocket API");
  cmd->add_option("--listen", options->listen, "address to listen on");
  cmd->add_option("--port", options->port, "port (0 picks a free one)");
  cmd->add_option("--max-upload-size", *max_upload_mb, "largest request body in MB (413 above)");
  cmd->add_option("--auth-token", options->auth_token,
                  "require 'Authorization: Bearer TOKEN' (or ?token=TOKEN) on every route and the WebSocket")
      ->envname("NETDIST_AUTH_TOKEN");
  cmd->add_flag("--insecure", *insecure, "allow a non-loopback address without --auth-token");
  add_node_setup_options(*cmd, *setup);
  cmd->callback([options, setup, insecure, max_upload_mb] {
    options->output_dir = setup->env.output_dir;
    options->input_dir = setup->env.input_dir;
    options->temp_dir = setup->env.temp_dir;
    options->max_body_bytes = static_cast<uint64_t>(*max_upload_mb * 1024 * 1024);
    set_exit_code(serve(*options, *setup, *insecure));
  });
}

}  // namespace netdist::cli
