#include "server/ws_hub.h"

namespace netdist::server {

WsConnection::~WsConnection() = default;

std::string encode_binary_frame(uint32_t event, const std::string& payload) {
  std::string out;
  out.reserve(4 + payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((event >> shift) & 0xff);
  out += payload;
  return out;
}

std::string encode_preview_frame(uint32_t format, const std::string& image_bytes) {
  std::string payload;
  payload.reserve(4 + image_bytes.size());
  for (int shift = 24; shift >= 0; shift -= 8) payload += static_cast<char>((format >> shift) & 0xff);
  payload += image_bytes;
  return encode_binary_frame(1, payload);
}

void WsHub::add(const std::string& sid, std::shared_ptr<WsConnection> conn, const std::vector<std::string>& first_frames) {
  std::lock_guard lock(mutex_);
  sockets_[sid] = conn;
  for (const auto& frame : first_frames) {
    const auto result = conn->send(std::make_shared<const std::string>(frame), false);
    if (result != WsConnection::SendResult::kQueued) {
      if (result == WsConnection::SendResult::kOverflow) dropped_.fetch_add(1);
      sockets_.erase(sid);
      return;
    }
  }
}

void WsHub::remove(const std::string& sid, const WsConnection* conn) {
  std::lock_guard lock(mutex_);
  auto it = sockets_.find(sid);
  if (it != sockets_.end() && it->second.get() == conn) sockets_.erase(it);
}

void WsHub::send(const std::string& frame, bool binary, const std::optional<std::string>& sid) {
  auto shared = std::make_shared<const std::string>(frame);
  std::lock_guard lock(mutex_);
  if (sid) {
    auto it = sockets_.find(*sid);
    if (it == sockets_.end()) return;
    const auto result = it->second->send(shared, binary);
    if (result == WsConnection::SendResult::kOverflow) dropped_.fetch_add(1);
    if (result != WsConnection::SendResult::kQueued) sockets_.erase(it);
    return;
  }
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    const auto result = it->second->send(shared, binary);
    if (result == WsConnection::SendResult::kOverflow) dropped_.fetch_add(1);
    if (result != WsConnection::SendResult::kQueued) {
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
}

void WsHub::close_all() {
  std::unordered_map<std::string, std::shared_ptr<WsConnection>> sockets;
  {
    std::lock_guard lock(mutex_);
    sockets.swap(sockets_);
  }
  for (auto& [sid, conn] : sockets) conn->close();
}

size_t WsHub::size() const {
  std::lock_guard lock(mutex_);
  return sockets_.size();
}

}  // namespace netdist::server
