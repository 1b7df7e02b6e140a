#include "server/queue_worker.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <mutex>

#include "core/log.h"
#include "server/ws_hub.h"

namespace netdist::server {

namespace {

using nlohmann::ordered_json;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_history_event(const std::string& type) {
  return type == "execution_start" || type == "execution_cached" || type == "execution_success" ||
         type == "execution_error" || type == "execution_interrupted";
}

// Without a client_id ComfyUI sends these nowhere; everything else then goes to every socket.
bool needs_client(const std::string& type) {
  return type == "execution_start" || type == "execution_cached" || type == "execution_success" ||
         type == "execution_error" || type == "executing" || type == "executed";
}

std::optional<std::string> client_id_of(const ordered_json& extra_data) {
  if (!extra_data.is_object() || !extra_data.contains("client_id")) return std::nullopt;
  const auto& id = extra_data["client_id"];
  if (id.is_null()) return std::nullopt;
  return id.is_string() ? id.get<std::string>() : id.dump();
}

// Collects one prompt's history messages and routes its events; emit may be called from any thread.
class EventRouter {
 public:
  EventRouter(ServerState& state, std::string prompt_id, std::optional<std::string> client_id)
      : state_(state), prompt_id_(std::move(prompt_id)), client_id_(std::move(client_id)) {}

  void emit(const std::string& type, const ordered_json& data) {
    std::lock_guard lock(mutex_);
    if (type == kPreviewEvent) {
      send_preview(data);
      return;
    }
    if (type == kPlanEvent) {  // history only (backend.h)
      plan_ = data;
      if (data.is_object() && data.contains("mode") && data["mode"].is_string())
        state_.metrics().observe_plan(data["mode"].get<std::string>());
      return;
    }
    if (type == kNodesEvent) {  // history only (backend.h)
      if (data.is_array())
        for (const auto& n : data) nodes_.push_back(n);
      return;
    }
    if (type == "progress") state_.metrics().observe_step();
    ordered_json payload = data;
    if (is_history_event(type)) {
      if (payload.is_object() && !payload.contains("timestamp")) payload["timestamp"] = now_ms();
      messages_.push_back(ordered_json::array({type, payload}));
      if (type == "execution_success") saw_success_ = true;
      if (type == "execution_error" || type == "execution_interrupted") saw_failure_ = true;
    }
    if (type == "executing" && payload.is_object() && payload.contains("node")) {
      const auto& node = payload.contains("display_node") ? payload["display_node"] : payload["node"];
      state_.set_last_node(prompt_id_, node.is_string() ? std::optional<std::string>(node.get<std::string>()) : std::nullopt);
    }
    if (!client_id_ && needs_client(type)) return;
    state_.send_json(type, payload, client_id_);
  }

  ordered_json messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  bool saw_success() const {
    std::lock_guard lock(mutex_);
    return saw_success_;
  }
  bool saw_failure() const {
    std::lock_guard lock(mutex_);
    return saw_failure_;
  }
  // The history entry's "netdist" member: {"plan": ..., "nodes": [...]} with what the backend reported, else
  // null.
  ordered_json netdist() const {
    std::lock_guard lock(mutex_);
    ordered_json out;
    if (!plan_.is_null()) out["plan"] = plan_;
    if (!nodes_.empty()) out["nodes"] = nodes_;
    return out;
  }

 private:
  void send_preview(const ordered_json& data) {
    if (!data.is_object() || !data.contains("image") || !data["image"].is_binary()) return;
    const auto& bytes = data["image"].get_binary();
    const uint32_t format = data.value("format", std::string("JPEG")) == "PNG" ? 2 : 1;
    const std::string image(bytes.begin(), bytes.end());
    state_.hub().send(encode_preview_frame(format, image), true, client_id_);
  }

  ServerState& state_;
  const std::string prompt_id_;
  const std::optional<std::string> client_id_;
  mutable std::mutex mutex_;
  ordered_json messages_ = ordered_json::array();
  bool saw_success_ = false;
  bool saw_failure_ = false;
  ordered_json plan_;
  ordered_json nodes_ = ordered_json::array();
};

}  // namespace

QueueWorker::QueueWorker(ServerState& state) : state_(state) {}

QueueWorker::~QueueWorker() { stop(); }

void QueueWorker::start() {
  ND_ASSERT(!thread_.joinable(), "QueueWorker started twice");
  thread_ = std::thread([this] { run(); });
}

void QueueWorker::stop() {
  if (!thread_.joinable()) return;
  state_.queue().shutdown();
  state_.interrupt(std::nullopt);
  {
    std::lock_guard lock(concurrent_mutex_);
    concurrent_cv_.notify_all();
  }
  thread_.join();
}

void QueueWorker::reap(bool all) {
  std::unique_lock lock(concurrent_mutex_);
  if (all) concurrent_cv_.wait(lock, [&] { return concurrent_running_ == 0; });
  for (auto it = concurrent_.begin(); it != concurrent_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    std::thread t = std::move(it->thread);
    it = concurrent_.erase(it);
    lock.unlock();
    t.join();
    lock.lock();
  }
}

void QueueWorker::run() {
  while (!state_.queue().is_shutdown()) {
    {
      std::unique_lock lock(concurrent_mutex_);
      const int limit = std::max(1, state_.backend().max_concurrent_prompts());
      if (concurrent_running_ >= limit) {
        concurrent_cv_.wait_for(lock, std::chrono::milliseconds(1000));
        continue;
      }
    }
    auto running = state_.queue().get(std::chrono::milliseconds(1000));
    if (running && state_.backend().runs_concurrently(running->item)) {
      std::lock_guard lock(concurrent_mutex_);
      ++concurrent_running_;
      concurrent_.emplace_back();
      Concurrent* slot = &concurrent_.back();
      slot->thread = std::thread([this, slot, r = std::move(*running)]() mutable {
        run_one(std::move(r));
        std::lock_guard done_lock(concurrent_mutex_);
        slot->done = true;
        --concurrent_running_;
        concurrent_cv_.notify_all();
      });
    } else if (running) {
      run_one(std::move(*running));
    }
    reap(false);
    apply_flags();
  }
  state_.interrupt(std::nullopt);
  reap(true);
}

void QueueWorker::run_one(PromptQueue::Running running) {
  const QueueItem& item = running.item;
  log::Scope scope(item.prompt_id, "");  // tags every message while this prompt runs (core/log.h)
  const auto started = std::chrono::steady_clock::now();
  log::info("prompt started");
  const std::optional<std::string> client_id = client_id_of(item.extra_data);
  const std::shared_ptr<std::atomic<bool>> interrupt = state_.begin_prompt(item.prompt_id, client_id);
  EventRouter router(state_, item.prompt_id, client_id);
  const EmitFn emit = [&router](const std::string& type, const ordered_json& data) { router.emit(type, data); };

  ordered_json outputs = ordered_json::object();
  Status status;
  try {
    if (!item.restore_error.is_null()) {
      status = Status::invalid_argument("prompt " + item.prompt_id + " no longer validates: " + item.restore_error.dump());
    } else {
      status = state_.backend().execute(item, emit, *interrupt, outputs);
    }
  } catch (const std::exception& e) {
    status = Status::internal(std::string("backend threw: ") + e.what());
  } catch (...) {
    status = Status::internal("backend threw a non-standard exception");
  }
  if (!outputs.is_object()) outputs = ordered_json::object();

  if (!status.is_ok() && !router.saw_failure()) {
    if (status.code() == StatusCode::kCancelled) {
      emit("execution_interrupted", {{"prompt_id", item.prompt_id},
                                     {"node_id", nullptr},
                                     {"node_type", nullptr},
                                     {"executed", ordered_json::array()}});
    } else {
      emit("execution_error", {{"prompt_id", item.prompt_id},
                               {"node_id", nullptr},
                               {"node_type", nullptr},
                               {"executed", ordered_json::array()},
                               {"exception_message", status.message()},
                               {"exception_type", std::string(status_code_name(status.code()))},
                               {"traceback", ordered_json::array()},
                               {"current_inputs", ordered_json::object()},
                               {"current_outputs", ordered_json::array()}});
    }
  } else if (status.is_ok() && !router.saw_success() && !router.saw_failure()) {
    emit("execution_success", {{"prompt_id", item.prompt_id}});
  }

  const bool success = status.is_ok() && !router.saw_failure();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  state_.metrics().observe_prompt(success ? "success" : status.code() == StatusCode::kCancelled ? "interrupted" : "error",
                                  seconds);
  if (success) log::info("prompt executed in {:.2f} s", seconds);
  else if (status.is_ok()) log::warn("prompt failed after {:.2f} s (see its history)", seconds);
  else log::warn("prompt failed after {:.2f} s: {}", seconds, status.to_string());
  ordered_json meta = ordered_json::object();
  for (auto it = outputs.begin(); it != outputs.end(); ++it) {
    meta[it.key()] = {{"node_id", it.key()}, {"display_node", it.key()}, {"parent_node", nullptr},
                      {"real_node_id", it.key()}};
  }
  ExecutionStatus execution_status{success ? "success" : "error", success, router.messages(), router.netdist()};
  state_.end_prompt(item.prompt_id);
  state_.queue().task_done(running.task_id, std::move(outputs), std::move(meta), execution_status);
  if (client_id) state_.send_json("executing", {{"node", nullptr}, {"prompt_id", item.prompt_id}}, client_id);
}

void QueueWorker::apply_flags() {
  const ordered_json flags = state_.queue().take_flags();
  if (flags.empty()) return;
  const auto truthy = [&](const char* key) {
    if (!flags.contains(key)) return false;
    const auto& v = flags[key];
    return v.is_boolean() ? v.get<bool>() : (v.is_number() ? v.get<double>() != 0 : !v.is_null());
  };
  const bool free_memory = truthy("free_memory");
  const bool unload_models = flags.contains("unload_models") ? truthy("unload_models") : free_memory;
  if (unload_models || free_memory) state_.backend().free_memory(unload_models, free_memory);
}

}  // namespace netdist::server
