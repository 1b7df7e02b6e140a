#include <cstdio>

#include "cli/commands.h"
#include "engine/runtime/torch_compat.h"

namespace netdist::cli {

namespace {
int g_exit_code = 0;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

void add_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("info", "Print the netdist build, libtorch version and visible devices");
  cmd->callback([] {
    std::printf("netdist %s\n", NETDIST_VERSION);
    std::printf("libtorch %s\n", runtime::torch_version().c_str());
    const int n = runtime::cuda_device_count();
    std::printf("cuda devices %d\n", n);
  });
}

}  // namespace netdist::cli
