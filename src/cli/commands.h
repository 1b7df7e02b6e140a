// Subcommand registration for the `netdist` binary. Each add_*_command adds one subcommand whose
// callback runs the work and records the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace netdist::cli {

// `netdist info`: the libtorch version, devices and build options, as plain lines.
void add_info_command(CLI::App& app);

// `netdist run WORKFLOW.json`: executes a workflow in this process (src/cli/run.cpp).
void add_run_command(CLI::App& app);

// `netdist serve`: the ComfyUI HTTP/WebSocket API over this process's device (src/cli/serve.cpp).
void add_serve_command(CLI::App& app);

// Exit code set by the subcommand that ran (0 when none failed).
int exit_code();
void set_exit_code(int code);

}  // namespace netdist::cli
