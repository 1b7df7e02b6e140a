#include "server/server_state.h"

#include <algorithm>

#include "core/py_json.h"

namespace netdist::server {

namespace {

std::string json_frame(const std::string& type, const nlohmann::ordered_json& data) {
  nlohmann::ordered_json message = {{"type", type}, {"data", data}};
  return python_json_dumps(message);
}

}  // namespace

ServerState::ServerState(ServerOptions options, Backend& backend)
    : options_(std::move(options)), backend_(backend) {
  queue_.set_on_change([this](int64_t remaining) { send_status(remaining); });
}

ServerState::~ServerState() { queue_.set_on_change(nullptr); }

void ServerState::send_status(int64_t queue_remaining) {
  const nlohmann::ordered_json data = {{"status", {{"exec_info", {{"queue_remaining", queue_remaining}}}}}};
  hub_.send(json_frame("status", data), false, std::nullopt);
}

void ServerState::broadcast_status() {
  queue_.run_locked([this](int64_t remaining) { send_status(remaining); });
}

void ServerState::connect_ws(const std::string& sid, std::shared_ptr<WsConnection> conn) {
  queue_.run_locked([&](int64_t remaining) {
    std::vector<std::string> first;
    first.push_back(json_frame("status", {{"status", {{"exec_info", {{"queue_remaining", remaining}}}}}, {"sid", sid}}));
    {
      std::lock_guard routing(routing_mutex_);
      for (const auto& [id, p] : running_) {
        if (p.client_id && *p.client_id == sid && p.last_node) first.push_back(json_frame("executing", {{"node", *p.last_node}}));
      }
    }
    hub_.add(sid, std::move(conn), first);
  });
}

void ServerState::send_json(const std::string& type, const nlohmann::ordered_json& data,
                            const std::optional<std::string>& sid) {
  hub_.send(json_frame(type, data), false, sid);
}

std::shared_ptr<std::atomic<bool>> ServerState::begin_prompt(const std::string& prompt_id,
                                                              std::optional<std::string> client_id) {
  std::lock_guard lock(routing_mutex_);
  RunningPrompt& p = running_[prompt_id];
  p.client_id = std::move(client_id);
  p.last_node.reset();
  p.interrupt = std::make_shared<std::atomic<bool>>(false);
  return p.interrupt;
}

void ServerState::set_last_node(const std::string& prompt_id, std::optional<std::string> node) {
  std::lock_guard lock(routing_mutex_);
  auto it = running_.find(prompt_id);
  if (it != running_.end()) it->second.last_node = std::move(node);
}

void ServerState::end_prompt(const std::string& prompt_id) {
  std::lock_guard lock(routing_mutex_);
  running_.erase(prompt_id);
}

std::optional<std::string> ServerState::client_id(const std::string& prompt_id) const {
  std::lock_guard lock(routing_mutex_);
  auto it = running_.find(prompt_id);
  return it == running_.end() ? std::nullopt : it->second.client_id;
}

void ServerState::interrupt(const std::optional<std::string>& prompt_id) {
  std::lock_guard lock(routing_mutex_);
  for (auto& [id, p] : running_) {
    if (!prompt_id || *prompt_id == id) p.interrupt->store(true);
  }
}

nlohmann::ordered_json ServerState::feature_flags() const {
  return {{"supports_preview_metadata", false},
          {"max_upload_size", static_cast<double>(options_.max_body_bytes)}};
}

}  // namespace netdist::server
