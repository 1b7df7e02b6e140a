#include "server/prompt_queue.h"

#include <algorithm>
#include <cstdio>

#include "graph/validate.h"
#include "core/log.h"
#include "server/prompt_cost.h"
#include "store/store.h"

namespace netdist::server {

namespace {

double number_value(const nlohmann::ordered_json& number) {
  return number.is_number() ? number.get<double>() : 0.0;
}

bool item_less(const QueueItem& a, const QueueItem& b) {
  const double na = number_value(a.number);
  const double nb = number_value(b.number);
  if (na != nb) return na < nb;
  return a.prompt_id < b.prompt_id;
}

std::string client_id_text(const nlohmann::ordered_json& extra_data) {
  if (!extra_data.is_object() || !extra_data.contains("client_id")) return "";
  const auto& id = extra_data["client_id"];
  if (id.is_null()) return "";
  return id.is_string() ? id.get<std::string>() : id.dump();
}

Result<nlohmann::ordered_json> parse_stored(const std::string& text, const std::string& db, const std::string& what) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status::corruption(db + ": " + what + " is not valid JSON");
  return j;
}

}  // namespace

PromptQueue::PromptQueue(size_t max_history) : max_history_(max_history) {
  policy_ = make_queue_policy("fifo").value();
}

Status PromptQueue::set_policy(const std::string& name) {
  ND_ASSIGN_OR_RETURN(std::unique_ptr<QueuePolicy> policy, make_queue_policy(name));
  std::lock_guard lock(mutex_);
  policy_ = std::move(policy);
  policy_name_ = name;
  return Status::ok();
}

std::string PromptQueue::policy_name() const {
  std::lock_guard lock(mutex_);
  return policy_name_;
}

void PromptQueue::set_on_change(std::function<void(int64_t)> on_change) {
  std::lock_guard lock(mutex_);
  on_change_ = std::move(on_change);
}

void PromptQueue::run_locked(const std::function<void(int64_t)>& fn) const {
  std::lock_guard lock(mutex_);
  fn(static_cast<int64_t>(pending_.size() + running_.size()));
}

void PromptQueue::notify_change_locked() {
  if (on_change_) on_change_(static_cast<int64_t>(pending_.size() + running_.size()));
}

int64_t PromptQueue::take_number(bool front) {
  std::lock_guard lock(mutex_);
  const int64_t number = front ? -number_counter_ : number_counter_;
  ++number_counter_;
  return number;
}

Status PromptQueue::attach_store(std::shared_ptr<store::Store> store, const RestoreValidator& validate) {
  ND_ASSERT(store != nullptr, "attach_store: no store");
  const std::string& db = store->path();
  ND_ASSIGN_OR_RETURN(std::vector<store::StoredHistory> history, store->history());
  ND_ASSIGN_OR_RETURN(std::vector<store::StoredPrompt> unfinished, store->unfinished_prompts());
  ND_ASSIGN_OR_RETURN(int64_t max_number, store->max_number());

  std::vector<std::pair<std::string, nlohmann::ordered_json>> entries;
  for (const store::StoredHistory& h : history) {
    const std::string what = "history of prompt " + h.prompt_id;
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    ND_ASSIGN_OR_RETURN(entry["prompt"], parse_stored(h.item_json, db, what + " (prompt)"));
    ND_ASSIGN_OR_RETURN(entry["outputs"], parse_stored(h.outputs_json, db, what + " (outputs)"));
    ND_ASSIGN_OR_RETURN(entry["status"], parse_stored(h.status_json, db, what + " (status)"));
    ND_ASSIGN_OR_RETURN(entry["meta"], parse_stored(h.meta_json, db, what + " (meta)"));
    ND_ASSIGN_OR_RETURN(nlohmann::ordered_json netdist, parse_stored(h.netdist_json, db, what + " (netdist)"));
    if (!netdist.is_null()) entry["netdist"] = std::move(netdist);
    entries.emplace_back(h.prompt_id, std::move(entry));
  }
  std::vector<QueueItem> requeued;
  for (const store::StoredPrompt& p : unfinished) {
    const std::string what = "prompt " + p.prompt_id;
    QueueItem item;
    item.prompt_id = p.prompt_id;
    ND_ASSIGN_OR_RETURN(item.number, parse_stored(p.number_json, db, what + " (number)"));
    ND_ASSIGN_OR_RETURN(item.prompt, parse_stored(p.prompt_json, db, what + " (prompt)"));
    ND_ASSIGN_OR_RETURN(item.extra_data, parse_stored(p.extra_data_json, db, what + " (extra_data)"));
    ND_ASSIGN_OR_RETURN(item.outputs_to_execute, parse_stored(p.outputs_to_execute_json, db, what + " (outputs_to_execute)"));
    item.sensitive = nlohmann::ordered_json::object();
    if (validate) {
      ValidationOutcome outcome = validate(item);
      if (outcome.ok) {
        item.validated = std::move(outcome.validated);
      } else {
        item.restore_error = outcome.error_body.is_null() ? nlohmann::ordered_json::object() : outcome.error_body;
      }
    }
    // Files a run that did not complete wrote: removed, so the re-run's files are the prompt's only ones.
    ND_RETURN_IF_ERROR(store->discard_uncommitted_outputs(p.prompt_id));
    requeued.push_back(std::move(item));
  }
  {
    std::lock_guard lock(mutex_);
    ND_ASSERT(store_ == nullptr, "attach_store called twice");
    store_ = std::move(store);
    number_counter_ = std::max(number_counter_, max_number + 1);
    for (auto& [id, entry] : entries) put_history_locked(id, std::move(entry));
  }
  for (QueueItem& item : requeued) put(std::move(item));
  return Status::ok();
}

bool PromptQueue::has_store() const {
  std::lock_guard lock(mutex_);
  return store_ != nullptr;
}

void PromptQueue::report_store_error(const Status& status) const {
  log::error("durable store: {}", status.to_string());
}

Status PromptQueue::accept(QueueItem item) {
  std::shared_ptr<store::Store> store;
  {
    std::lock_guard lock(mutex_);
    store = store_;
  }
  if (store) {
    store::StoredPrompt p;
    p.prompt_id = item.prompt_id;
    p.number_json = item.number.dump();
    p.prompt_json = item.prompt.dump();
    p.extra_data_json = item.extra_data.dump();
    p.client_id = client_id_text(item.extra_data);
    p.outputs_to_execute_json = item.outputs_to_execute.dump();
    ND_RETURN_IF_ERROR(store->put_prompt(p));
  }
  put(std::move(item));
  return Status::ok();
}

void PromptQueue::put(QueueItem item) {
  Pending pending;
  pending.info.enqueued = std::chrono::steady_clock::now();
  auto settings = parse_queue_settings(item.extra_data);
  if (settings.is_ok()) pending.info.settings = *settings;
  if (item.extra_data.is_object() && item.extra_data.contains("client_id") && item.extra_data["client_id"].is_string())
    pending.info.client_id = item.extra_data["client_id"].get<std::string>();
  pending.info.predicted_units =
      item.validated ? predict_prompt_units(item.validated->analysis) : predict_prompt_units(item.prompt);
  pending.item = std::move(item);
  {
    std::lock_guard lock(mutex_);
    pending.info.sequence = sequence_counter_++;
    auto pos = std::upper_bound(pending_.begin(), pending_.end(), pending,
                                [](const Pending& a, const Pending& b) { return item_less(a.item, b.item); });
    pending_.insert(pos, std::move(pending));
    notify_change_locked();
  }
  cv_.notify_all();
}

std::optional<PromptQueue::Running> PromptQueue::get(std::chrono::milliseconds timeout) {
  Running running;
  {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return shutdown_ || flags_set_ || !pending_.empty(); });
    if (shutdown_ || pending_.empty()) return std::nullopt;
    std::vector<const PendingPrompt*> view;
    view.reserve(pending_.size());
    for (Pending& p : pending_) {
      p.info.item = &p.item;
      view.push_back(&p.info);
    }
    const size_t picked = policy_->pick(view, std::chrono::steady_clock::now());
    ND_ASSERT(picked < pending_.size(), "queue policy " + policy_name_ + " picked index " + std::to_string(picked) +
                                            " of " + std::to_string(pending_.size()));
    auto it = pending_.begin() + static_cast<std::ptrdiff_t>(picked);
    running.item = std::move(it->item);
    const double units = it->info.predicted_units;
    pending_.erase(it);
    running.task_id = task_counter_++;
    run_info_[running.task_id] = RunInfo{std::chrono::steady_clock::now(), units};
    running_.emplace(running.task_id, running.item);
    notify_change_locked();
    if (store_) {
      // A failed mark leaves the prompt pending in the store, which a restart re-queues all the same.
      Status s = store_->mark_running(running.item.prompt_id);
      if (!s.is_ok()) report_store_error(s);
    }
  }
  return running;
}

void PromptQueue::shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

bool PromptQueue::is_shutdown() const {
  std::lock_guard lock(mutex_);
  return shutdown_;
}

void PromptQueue::task_done(int64_t task_id, nlohmann::ordered_json outputs, nlohmann::ordered_json meta,
                            const ExecutionStatus& status) {
  {
    std::lock_guard lock(mutex_);
    auto it = running_.find(task_id);
    ND_ASSERT(it != running_.end(), "task_done for a task that is not running: " + std::to_string(task_id));
    QueueItem item = std::move(it->second);
    running_.erase(it);
    auto info = run_info_.find(task_id);
    if (info != run_info_.end()) {
      policy_->finished(info->second.predicted_units,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - info->second.started).count());
      run_info_.erase(info);
    }
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["prompt"] = item.to_json();
    entry["outputs"] = std::move(outputs);
    entry["status"] = {{"status_str", status.status_str},
                       {"completed", status.completed},
                       {"messages", status.messages}};
    entry["meta"] = std::move(meta);
    if (!status.netdist.is_null()) entry["netdist"] = status.netdist;
    // A prompt that failed while the server shuts down was most likely stopped by the shutdown itself: it stays
    // running in the store, so the next start runs it again instead of keeping an interrupted entry.
    if (store_ && !(shutdown_ && !status.completed)) {
      // Committed before anyone can see the entry: a prompt shown as done is never re-run after a restart.
      Status s = store_->complete({item.prompt_id, entry["prompt"].dump(), entry["outputs"].dump(),
                                   entry["status"].dump(), entry["meta"].dump(), status.netdist.dump()});
      if (!s.is_ok()) report_store_error(s);
    }
    put_history_locked(item.prompt_id, std::move(entry));
    notify_change_locked();
  }
}

void PromptQueue::put_history_locked(const std::string& prompt_id, nlohmann::ordered_json entry) {
  auto existing = history_index_.find(prompt_id);
  if (existing != history_index_.end()) {
    existing->second->second = std::move(entry);
    return;
  }
  if (history_.size() > max_history_) {
    if (store_) {
      Status s = store_->delete_history(history_.front().first);
      if (!s.is_ok()) report_store_error(s);
    }
    history_index_.erase(history_.front().first);
    history_.pop_front();
  }
  history_.emplace_back(prompt_id, std::move(entry));
  history_index_[prompt_id] = std::prev(history_.end());
}

nlohmann::ordered_json PromptQueue::queue_json() const {
  std::lock_guard lock(mutex_);
  nlohmann::ordered_json running = nlohmann::ordered_json::array();
  for (const auto& [id, item] : running_) running.push_back(item.to_json());
  nlohmann::ordered_json pending = nlohmann::ordered_json::array();
  for (const auto& p : pending_) pending.push_back(p.item.to_json());
  return {{"queue_running", std::move(running)}, {"queue_pending", std::move(pending)}};
}

nlohmann::ordered_json PromptQueue::queue_info_json() const {
  return {{"exec_info", {{"queue_remaining", tasks_remaining()}}}};
}

int64_t PromptQueue::tasks_remaining() const {
  std::lock_guard lock(mutex_);
  return static_cast<int64_t>(pending_.size() + running_.size());
}

std::vector<std::string> PromptQueue::running_prompt_ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, item] : running_) ids.push_back(item.prompt_id);
  return ids;
}

void PromptQueue::wipe_queue() {
  {
    std::lock_guard lock(mutex_);
    if (store_) {
      for (const Pending& p : pending_) {
        Status s = store_->delete_prompt(p.item.prompt_id);
        if (!s.is_ok()) report_store_error(s);
      }
    }
    pending_.clear();
    notify_change_locked();
  }
}

bool PromptQueue::delete_queue_item(const std::string& prompt_id) {
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [&](const Pending& p) { return p.item.prompt_id == prompt_id; });
    if (it == pending_.end()) return false;
    if (store_) {
      Status s = store_->delete_prompt(prompt_id);
      if (!s.is_ok()) report_store_error(s);
    }
    pending_.erase(it);
    notify_change_locked();
  }
  return true;
}

nlohmann::ordered_json PromptQueue::get_history(std::optional<int64_t> max_items, int64_t offset) const {
  std::lock_guard lock(mutex_);
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  // ComfyUI's len(history) - max_items; a max_items <= 0 selects nothing (no overflow for any int64).
  const int64_t size = static_cast<int64_t>(history_.size());
  if (offset < 0 && max_items) offset = *max_items <= 0 ? size : size - *max_items;
  int64_t i = 0;
  for (const auto& [id, entry] : history_) {
    if (i >= offset) {
      out[id] = entry;
      if (max_items && static_cast<int64_t>(out.size()) >= *max_items) break;
    }
    ++i;
  }
  return out;
}

nlohmann::ordered_json PromptQueue::get_history_item(const std::string& prompt_id) const {
  std::lock_guard lock(mutex_);
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  auto it = history_index_.find(prompt_id);
  if (it != history_index_.end()) out[prompt_id] = it->second->second;
  return out;
}

size_t PromptQueue::history_size() const {
  std::lock_guard lock(mutex_);
  return history_.size();
}

void PromptQueue::wipe_history() {
  std::lock_guard lock(mutex_);
  if (store_) {
    Status s = store_->wipe_history();
    if (!s.is_ok()) report_store_error(s);
  }
  history_.clear();
  history_index_.clear();
}

void PromptQueue::delete_history_item(const std::string& prompt_id) {
  std::lock_guard lock(mutex_);
  auto it = history_index_.find(prompt_id);
  if (it == history_index_.end()) return;
  if (store_) {
    Status s = store_->delete_history(prompt_id);
    if (!s.is_ok()) report_store_error(s);
  }
  history_.erase(it->second);
  history_index_.erase(it);
}

void PromptQueue::set_flag(const std::string& name, nlohmann::ordered_json value) {
  {
    std::lock_guard lock(mutex_);
    flags_[name] = std::move(value);
    flags_set_ = true;
  }
  cv_.notify_all();
}

nlohmann::ordered_json PromptQueue::take_flags() {
  std::lock_guard lock(mutex_);
  nlohmann::ordered_json flags = std::move(flags_);
  flags_ = nlohmann::ordered_json::object();
  flags_set_ = false;
  return flags;
}

}  // namespace netdist::server
