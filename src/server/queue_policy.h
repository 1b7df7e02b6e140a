// Queue policies: which pending prompt the queue worker runs next (docs/scheduling.md).
//
// A policy sees every pending prompt, in ComfyUI's (number, prompt_id) order, with what the queue knows
// about it (arrival order and time, the per-prompt settings of extra_data["netdist"], the client_id, the
// predicted work from prompt_cost.h) and returns the index of the one to run. Built-ins:
//   fifo      ComfyUI's order: index 0 (the default; behaviour unchanged)
//   lifo      the most recently submitted prompt first (largest arrival sequence)
//   priority  the highest extra_data.netdist.priority first (default 0), ties in fifo order
//   sjf       the smallest  predicted_seconds − kSjfAging × wait_seconds  first, ties in fifo order, where
//             predicted_seconds = predicted_units × seconds_per_unit, fitted from finished prompts (EWMA,
//             seeded with kSjfSeedSecondsPerUnit). Because every waiting prompt's score falls at the same rate,
//             the order is that of arrival_time + predicted_seconds / kSjfAging: a prompt runs before every
//             prompt that arrives more than its own predicted run time after it, so nothing starves.
//   fair      round robin between client_ids (the client served least recently goes next; never-served
//             clients by their oldest pending prompt); within one client, the order of the policy named by
//             that client's oldest pending prompt's extra_data.netdist.policy (fifo when none).
// Per-prompt settings, extra_data = {"netdist": {"priority": int, "policy": name}}: "priority" is used by
// `priority`; "policy" orders the prompt among its own client's prompts under `fair`, and must otherwise be
// absent or equal to the server's policy (check_queue_settings).
//
// Add a policy: subclass QueuePolicy and register_queue_policy("name", factory) before the server starts.
// Thread-safety: the registry functions may be called from any thread. A QueuePolicy instance is called
// only under its PromptQueue's lock, never concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "server/backend.h"

namespace netdist::server {

inline constexpr double kSjfAging = 1.0;                // seconds of score removed per second waited
inline constexpr double kSjfSeedSecondsPerUnit = 0.01;  // before any prompt finished
inline constexpr double kSjfEwmaWeight = 0.3;           // weight of the newest measurement

// Per-prompt settings: extra_data["netdist"].
struct QueueSettings {
  int64_t priority = 0;
  std::string policy;  // empty = none
};

// Parses extra_data["netdist"] (absent = defaults). invalid_argument naming the field when it is not an
// object, "priority" is not an integer, or "policy" is not a registered policy name (the message lists them).
Result<QueueSettings> parse_queue_settings(const nlohmann::ordered_json& extra_data);
// invalid_argument when `settings.policy` is set, differs from `server_policy` and the server does not run
// `fair` (the only policy that honours a per-prompt policy).
Status check_queue_settings(const QueueSettings& settings, const std::string& server_policy);

// What a policy knows about one pending prompt.
struct PendingPrompt {
  const QueueItem* item = nullptr;  // valid during pick only
  uint64_t sequence = 0;            // arrival order: 0 for the first prompt put into the queue
  std::chrono::steady_clock::time_point enqueued;
  QueueSettings settings;
  std::string client_id;         // extra_data.client_id, "" when absent
  double predicted_units = 0.0;  // prompt_cost.h predict_prompt_units of item->validated's graph analysis
};

class QueuePolicy {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~QueuePolicy();
  // Index into `pending` (non-empty, in (number, prompt_id) order) of the prompt to run next.
  virtual size_t pick(const std::vector<const PendingPrompt*>& pending, Clock::time_point now) = 0;
  // A prompt this policy picked ran for `seconds` (from get to task_done) and was predicted at `units`.
  virtual void finished(double predicted_units, double seconds);
};

using QueuePolicyFactory = std::function<std::unique_ptr<QueuePolicy>()>;

// Adds a policy under `name` (letters, digits, '_', '-'); invalid_argument when the name is taken or bad.
Status register_queue_policy(const std::string& name, QueuePolicyFactory factory);
// A new instance of the named policy; invalid_argument "unknown queue policy 'x' (valid: fifo, ...)".
Result<std::unique_ptr<QueuePolicy>> make_queue_policy(const std::string& name);
// Registered names, sorted.
std::vector<std::string> queue_policy_names();

}  // namespace netdist::server
