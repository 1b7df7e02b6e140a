// WebSocket sessions by sid and ComfyUI's routing: a message addressed to a sid goes only to that sid's
// socket, an unaddressed one to every socket. Sending never blocks: each connection queues its outgoing
// frames and is disconnected when its queue would exceed its byte bound (see WsConnection).
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace netdist::server {

// One accepted WebSocket. Implemented by the Beast session (routes_websocket.cpp) and by test doubles.
class WsConnection {
 public:
  virtual ~WsConnection();
  enum class SendResult { kQueued, kOverflow, kClosed };
  // Queues one frame and returns at once, from any thread. Slow-reader policy: when the bytes queued and
  // not yet written would exceed the connection's bound, the frame is dropped, the connection is closed
  // (TCP shutdown, no close handshake) and kOverflow is returned; later calls return kClosed.
  virtual SendResult send(std::shared_ptr<const std::string> frame, bool binary) = 0;
  virtual void close() = 0;
};

// ComfyUI binary frame: uint32be event, then payload (server.py encode_bytes).
std::string encode_binary_frame(uint32_t event, const std::string& payload);
// PREVIEW_IMAGE frame: uint32be 1, uint32be format (1 = JPEG, 2 = PNG), image bytes.
std::string encode_preview_frame(uint32_t format, const std::string& image_bytes);

class WsHub {
 public:
  // Registers `conn` as `sid`, replacing (not closing) a previous socket of that sid, then queues
  // `first_frames` to it before any later message can reach it.
  void add(const std::string& sid, std::shared_ptr<WsConnection> conn, const std::vector<std::string>& first_frames);
  // Unregisters `sid` only if it still maps to `conn` (a reconnect with the same sid keeps the new socket).
  void remove(const std::string& sid, const WsConnection* conn);

  // Text or binary frame to `sid` (dropped when no such socket) or, with no sid, to every socket.
  void send(const std::string& frame, bool binary, const std::optional<std::string>& sid);

  void close_all();
  size_t size() const;
  // Connections closed because their outgoing queue overflowed.
  uint64_t dropped() const { return dropped_.load(); }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<WsConnection>> sockets_;
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace netdist::server
