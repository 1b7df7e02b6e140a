// The `netdist` command. Each subcommand lives in its own file and registers itself here.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "core/log.h"

namespace {

// A local worker (cluster/local_workers.h) gets NETDIST_EXIT_WITH_PARENT=<coordinator pid>: it is sent
// SIGTERM when the thread that started it ends, and ends at once if that process is already gone. (Set here
// and not before exec: posix_spawn runs no code in the child.)
void exit_with_parent() {
  const char* parent = std::getenv("NETDIST_EXIT_WITH_PARENT");
  if (!parent || !*parent) return;
  const long pid = std::strtol(parent, nullptr, 10);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != pid) {
    netdist::log::error("netdist: the coordinator that started this worker (pid {}) is gone", pid);
    std::exit(1);
  }
}

// libtorch's CUDA caching allocator reads PYTORCH_CUDA_ALLOC_CONF once, at its first allocation, so the
// setting is made before any command runs. Without it the allocator keeps a segment per size class it ever
// needed: SDXL's VAE decode at 1024² walks up through ever larger activations and leaves each level's blocks
// cached, which put netdist's peak 1.38× above ComfyUI's (docs/benchmarks.md, "Peak GPU memory"). Expandable
// segments grow one mapping instead, so the peak is close to what is allocated at once. A value the user set
// (even an empty one) is left alone.
void default_cuda_allocator_settings() {
  ::setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True", /*overwrite=*/0);
}

}  // namespace

int main(int argc, char** argv) {
  default_cuda_allocator_settings();
  exit_with_parent();
  CLI::App app{"netdist: Stable Diffusion workflows on every GPU you have, behind the ComfyUI API"};
  app.set_version_flag("--version", std::string("netdist ") + NETDIST_VERSION);
  app.require_subcommand(0, 1);
  netdist::cli::add_info_command(app);
  netdist::cli::add_run_command(app);
  netdist::cli::add_serve_command(app);
  netdist::cli::add_worker_command(app);
  netdist::cli::add_demo_command(app);
  netdist::cli::add_doctor_command(app);
  CLI11_PARSE(app, argc, argv);
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
  }
  return netdist::cli::exit_code();
}
