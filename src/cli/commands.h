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

// `netdist worker`: serve plus the /netdist/v1 shard API (src/cli/serve.cpp).
void add_worker_command(CLI::App& app);

// `netdist demo`: coordinator + 1 and 2 local workers, speedup table, identical-images check (src/cli/demo.cpp).
void add_demo_command(CLI::App& app);

// `netdist doctor [URL]`: install, device, models and cluster checks with a fix per problem (src/cli/doctor.cpp).
void add_doctor_command(CLI::App& app);

// Exit code set by the subcommand that ran (0 when none failed).
int exit_code();
void set_exit_code(int code);

}  // namespace netdist::cli
