#include "cli/log_flags.h"

#include "core/log.h"

namespace netdist::cli {

void add_log_flags(CLI::App& cmd, LogFlags& flags) {
  cmd.add_option("--log-level", flags.level,
                 "least severe message logged to stderr: trace, debug, info (default), warn, error or off")
      ->envname("NETDIST_LOG_LEVEL");
  cmd.add_option("--log-format", flags.format,
                 "stderr log lines: text (default) or json (one object per line: time, level, msg, prompt_id, "
                 "worker)")
      ->envname("NETDIST_LOG_FORMAT");
}

bool apply_log_flags(const LogFlags& flags, std::string_view command) {
  Status s = log::configure(flags.level, flags.format);
  if (s.is_ok()) return true;
  log::error("{}: {}", command, s.message());
  return false;
}

std::vector<std::string> log_flag_args(const LogFlags& flags) {
  return {"--log-level", flags.level, "--log-format", flags.format};
}

}  // namespace netdist::cli
