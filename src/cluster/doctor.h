// `netdist doctor`: the troubleshooting table of docs, automated. Each check yields a row (area, what,
// ok / warn / fail, what was seen, and for anything not ok the fix in words); the command prints the table and
// exits non-zero when a row failed.
//
// This file holds the checks that need no libtorch: a models folder's files (through a describe callback
// that the CLI binds to the engine's header-only probe), and a running server or cluster seen from outside
// (reachable, TLS verified, token accepted, clock skew, protocol version, every worker's health, the same
// model bytes under the same name on every member, and a one-step render on each worker that can be reached).
// The CLI (src/cli/doctor.cpp) adds the local device and vocabulary rows.
// Thread-safety: functions are reentrant; a DoctorReport belongs to one thread.
#pragma once

#include <chrono>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace netdist::cluster {

enum class CheckLevel { ok, warn, fail };
const char* check_level_name(CheckLevel level);  // "ok", "warn", "FAIL"

struct DoctorCheck {
  std::string area;    // "local", "coordinator", a worker's URL or id
  std::string what;    // "reachable", "token", "clock", "model checkpoints/x.safetensors", ...
  CheckLevel level = CheckLevel::ok;
  std::string detail;  // what was seen
  std::string fix;     // how to repair it (empty when ok)
};

class DoctorReport {
 public:
  void add(DoctorCheck check) { checks_.push_back(std::move(check)); }
  void ok(const std::string& area, const std::string& what, const std::string& detail);
  void warn(const std::string& area, const std::string& what, const std::string& detail, const std::string& fix);
  void fail(const std::string& area, const std::string& what, const std::string& detail, const std::string& fix);
  const std::vector<DoctorCheck>& checks() const { return checks_; }
  bool failed() const;
  // The table as plain text: one line per check, then each fix under "fix:" lines, then a summary line.
  std::string table() const;
  nlohmann::json to_json() const;  // {"ok": bool, "checks": [{area, what, level, detail, fix}]}

 private:
  std::vector<DoctorCheck> checks_;
};

// --- a models folder ---------------------------------------------------------------------------------
// What a checkpoint is ("SDXL (eps)") or why it would be refused (engine describe_checkpoint).
using DescribeCheckpoint = std::function<Result<std::string>(const std::string& path)>;

// Rows for `dir` (--models-dir): the folder exists; each file in checkpoints/ (and files directly in `dir`),
// loras/, vae/, upscale_models/ and embeddings/ is a readable safetensors file (checkpoints also through
// `describe`); pickles (.ckpt/.pt/.pth/.bin) warn that netdist never loads them; a folder with no checkpoint
// warns (the embedded model is used).
void check_models_dir(const std::string& dir, const DescribeCheckpoint& describe, DoctorReport& report);

// --- a running server or cluster ----------------------------------------------------------------------
struct RemoteOptions {
  std::string url;         // a coordinator, a worker or a plain `netdist serve`
  std::string auth_token;  // the cluster token (--auth-token); empty: none sent
  std::string tls_ca;      // PEM CA file for https:// (empty: the system's store)
  bool bench = true;       // a one-step render on every reachable netdist worker
  std::chrono::milliseconds timeout{10000};        // each probe
  std::chrono::milliseconds bench_timeout{180000};  // each one-step render
  double max_clock_skew_s = 30;                     // more is a failure (TLS and leases need the same time)
};
void check_remote(const RemoteOptions& options, DoctorReport& report);

// The clock row for a server whose reply carried `date_header` (HTTP IMF-fixdate), seen at local time `now`:
// ok within max_skew_s, fail beyond it (naming both times), warn when the header is missing or unreadable.
DoctorCheck clock_skew_check(const std::string& area, const std::string& date_header, std::time_t now,
                             double max_skew_s);

}  // namespace netdist::cluster
