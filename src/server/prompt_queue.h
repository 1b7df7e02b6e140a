// ComfyUI's PromptQueue (execution.py): pending prompts ordered by (number, prompt_id), the prompts being
// run, a bounded insertion-ordered history and the /free flags. Which pending prompt get() takes is the
// queue policy's choice (queue_policy.h; fifo = ComfyUI's first pending prompt, the default).
// Durability: with a store attached (attach_store, `serve --data-dir`), every accepted prompt, its state and
// its history entry are written to it (store/store.h): accept() returns only once the prompt is committed,
// get() marks it running, task_done() commits its history entry and state done in one transaction, and
// deleting queued prompts or history deletes them there too. attach_store() restores the stored history and
// re-queues every prompt that was pending or running, with its id and number. Without a store everything
// lives in memory, as in ComfyUI.
// Thread-safety: every method may be called from any thread. The change callback runs on the calling
// thread with the queue's lock held, so callbacks see changes in order; it must not call the queue.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/backend.h"
#include "server/queue_policy.h"

namespace netdist::store {
class Store;
}

namespace netdist::server {

inline constexpr size_t kMaximumHistorySize = 10000;

struct ExecutionStatus {
  std::string status_str;                                            // "success" or "error"
  bool completed = false;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [[event, data], ...]
  // netdist's own record of the run ({"plan": ...}, backend.h kPlanEvent), the entry's "netdist" member;
  // null = none. Stored with the entry (store.h StoredHistory::netdist_json).
  nlohmann::ordered_json netdist = nullptr;
};

class PromptQueue {
 public:
  explicit PromptQueue(size_t max_history = kMaximumHistorySize);

  // Called after put, get, task_done, wipe_queue and a successful delete_queue_item (ComfyUI queue_updated)
  // with the new pending + running count.
  void set_on_change(std::function<void(int64_t queue_remaining)> on_change);
  // Runs `fn(queue_remaining)` under the queue's lock: no change and no change callback can interleave.
  void run_locked(const std::function<void(int64_t queue_remaining)>& fn) const;

  // The queue number for a request without "number": the counter (negated when front), then counter+1.
  int64_t take_number(bool front);

  // Attaches the durable store before the queue is used: loads its history (oldest first, evicting beyond
  // max_history as task_done does), re-queues its pending and running prompts (after removing the files an
  // interrupted run wrote: Store::discard_uncommitted_outputs) and continues the queue numbers after the
  // largest stored one. Each re-queued prompt is validated by `validate` (Backend::validate_stored), as the
  // node set may have changed since it was accepted: the validated form travels with it (QueueItem::
  // validated), a prompt that no longer validates gets QueueItem::restore_error and fails when its turn
  // comes. Without `validate` restored prompts carry neither. Errors name the database file; the queue is
  // then left empty.
  using RestoreValidator = std::function<ValidationOutcome(const QueueItem&)>;
  Status attach_store(std::shared_ptr<store::Store> store, const RestoreValidator& validate = nullptr);
  bool has_store() const;

  // POST /prompt: records the prompt in the store (when attached) and only then puts it. An error (a full
  // disk: SQLITE_FULL) means the prompt was not accepted and is not queued.
  Status accept(QueueItem item);

  // Adds a pending prompt, in memory only (accept() is the durable path). Its per-prompt settings come from parse_queue_settings(item.extra_data) (invalid
  // settings count as the defaults: POST /prompt rejects them before this), its predicted work from
  // predict_prompt_units of item.validated's graph analysis (of item.prompt when there is no validated form).
  void put(QueueItem item);

  // Replaces the policy that get() consults (fifo until then); invalid_argument naming the valid policies
  // when `name` is unknown, and the current policy stays.
  Status set_policy(const std::string& name);
  std::string policy_name() const;

  struct Running {
    QueueItem item;
    int64_t task_id = 0;
  };
  // Waits up to `timeout` for a pending prompt and moves the one the policy picks to running. Returns nullopt on
  // timeout, when a flag was set (set_flag), or after shutdown().
  std::optional<Running> get(std::chrono::milliseconds timeout);
  void shutdown();
  bool is_shutdown() const;

  // Moves a running prompt into history: {prompt, outputs, status, meta}. Evicts the oldest entry first
  // when history holds more than max_history entries. With a store, the entry is committed first, except
  // for a prompt that did not complete after shutdown(): that one stays unfinished in the store and runs
  // again after a restart.
  void task_done(int64_t task_id, nlohmann::ordered_json outputs, nlohmann::ordered_json meta,
                 const ExecutionStatus& status);

  // {"queue_running": [item...], "queue_pending": [item... sorted by (number, prompt_id)]}
  nlohmann::ordered_json queue_json() const;
  // {"exec_info": {"queue_remaining": pending + running}}
  nlohmann::ordered_json queue_info_json() const;
  int64_t tasks_remaining() const;
  std::vector<std::string> running_prompt_ids() const;

  void wipe_queue();
  bool delete_queue_item(const std::string& prompt_id);

  // ComfyUI get_history: all entries, oldest first; with max_items and offset < 0, the last max_items.
  nlohmann::ordered_json get_history(std::optional<int64_t> max_items, int64_t offset) const;
  // {prompt_id: entry} or {} when absent.
  nlohmann::ordered_json get_history_item(const std::string& prompt_id) const;
  size_t history_size() const;
  void wipe_history();
  void delete_history_item(const std::string& prompt_id);

  void set_flag(const std::string& name, nlohmann::ordered_json value);
  nlohmann::ordered_json take_flags();

 private:
  void notify_change_locked();
  void put_history_locked(const std::string& prompt_id, nlohmann::ordered_json entry);
  // Logs a store error that cannot be answered to a client (the prompt already ran); the prompt is then
  // re-run after a restart, never lost.
  void report_store_error(const Status& status) const;

  const size_t max_history_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::function<void(int64_t)> on_change_;
  int64_t number_counter_ = 0;
  int64_t task_counter_ = 0;
  bool shutdown_ = false;
  bool flags_set_ = false;
  struct Pending {
    QueueItem item;
    PendingPrompt info;  // info.item is set only while the policy picks
  };
  struct RunInfo {
    std::chrono::steady_clock::time_point started;
    double predicted_units = 0.0;
  };
  std::vector<Pending> pending_;  // sorted by (number, prompt_id)
  std::map<int64_t, QueueItem> running_;
  std::map<int64_t, RunInfo> run_info_;  // by task id, for QueuePolicy::finished
  std::shared_ptr<store::Store> store_;  // set once by attach_store, before the queue is shared
  std::unique_ptr<QueuePolicy> policy_;
  std::string policy_name_ = "fifo";
  uint64_t sequence_counter_ = 0;
  std::list<std::pair<std::string, nlohmann::ordered_json>> history_;
  std::unordered_map<std::string, std::list<std::pair<std::string, nlohmann::ordered_json>>::iterator> history_index_;
  nlohmann::ordered_json flags_ = nlohmann::ordered_json::object();
};

}  // namespace netdist::server
