// The lines `netdist serve` and `netdist worker` print on stdout once they listen: where they listen and how it
// is protected, the device with its memory, the models found, and the role in a cluster. One glance tells a user
// whether the process is the one they meant to start (the wrong device, an empty models folder and a missing
// token are the usual surprises).
#pragma once

#include <string>

#include "nodes/node_env.h"

namespace netdist::cli {

struct StartupSummary {
  std::string role;         // "netdist serve", "netdist worker"
  std::string url;          // this server's own URL
  bool auth = false;        // --auth-token given
  bool tls = false;         // --tls-cert given
  std::string data_dir;     // --data-dir, empty: in memory
  std::string cluster;      // "coordinator: 2 local workers", "worker: joins http://…", "" for none
  std::string queue_policy;
};

// Prints the summary (stdout, flushed). `env` gives the device, precision and model folders.
void print_startup_summary(const StartupSummary& summary, const nodes::NodeEnv& env);

}  // namespace netdist::cli
