// --log-level and --log-format: the flags of every command that runs a process (serve, worker, run, demo),
// applied through core/log.h before the command does anything else.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

namespace netdist::cli {

struct LogFlags {
  std::string level = "info";   // trace|debug|info|warn|error|off
  std::string format = "text";  // text|json
};

// Adds --log-level (env NETDIST_LOG_LEVEL) and --log-format (env NETDIST_LOG_FORMAT) to cmd.
void add_log_flags(CLI::App& cmd, LogFlags& flags);

// Configures logging from the flags. A bad value is logged as an error naming the command and the flag
// ("netdist serve: --log-level: 'loud' is not one of …"); returns false then, and the command exits with 2.
bool apply_log_flags(const LogFlags& flags, std::string_view command);

// The same flags as arguments for a netdist child process (local workers, the demo's coordinator).
std::vector<std::string> log_flag_args(const LogFlags& flags);

}  // namespace netdist::cli
