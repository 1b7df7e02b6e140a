// The `netdist` command. Each subcommand lives in its own file and registers itself here.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"netdist: Stable Diffusion workflows on every GPU you have, behind the ComfyUI API"};
  app.set_version_flag("--version", std::string("netdist ") + NETDIST_VERSION);
  app.require_subcommand(0, 1);
  netdist::cli::add_info_command(app);
  netdist::cli::add_run_command(app);
  netdist::cli::add_serve_command(app);
  netdist::cli::add_worker_command(app);
  netdist::cli::add_demo_command(app);
  CLI11_PARSE(app, argc, argv);
  if (app.get_subcommands().empty()) {
    std::fputs(app.help().c_str(), stdout);
  }
  return netdist::cli::exit_code();
}
