// Test-only HTTP and WebSocket clients (Beast) against a server on 127.0.0.1, plain or over TLS (https_call,
// TestWsClient::connect_tls: the server's certificate must chain to `ca_file` and name 127.0.0.1). Every call gives up after
// its deadline (a hung server fails the test instead of hanging it); deadlines are guards, not asserts.
// Thread-safety: http_call is reentrant; a TestWsClient belongs to one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace netdist::server {

struct HttpReply {
  int status = 0;  // 0 = no reply (connection failed or deadline)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  nlohmann::ordered_json json() const;         // discarded value when the body is not JSON
};

HttpReply http_call(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
                    const std::vector<std::pair<std::string, std::string>>& headers = {},
                    std::chrono::milliseconds deadline = std::chrono::seconds(10));

// http_call over TLS. status 0 when the connection, the TLS handshake (e.g. verification) or the exchange
// fails; `error`, if given, then says why.
HttpReply https_call(uint16_t port, const std::string& ca_file, const std::string& method, const std::string& target,
                     const std::string& body = "", const std::vector<std::pair<std::string, std::string>>& headers = {},
                     std::string* error = nullptr, std::chrono::milliseconds deadline = std::chrono::seconds(10));

// Sends raw bytes and returns everything read until the server closes or the deadline passes.
std::string raw_call(uint16_t port, const std::string& bytes, std::chrono::milliseconds deadline = std::chrono::seconds(5));

// Connects, sends `bytes` and closes at once without reading (a client that vanishes). False if it could not
// connect.
bool send_and_vanish(uint16_t port, const std::string& bytes);

// Connects, sends `bytes` and keeps the connection open (a stalled client): the socket's file descriptor, to be
// closed by the caller with ::close; -1 if it could not connect.
int open_stalled(uint16_t port, const std::string& bytes);

// multipart/form-data body with boundary kTestBoundary; parts are (name, filename or "", data).
inline constexpr const char* kTestBoundary = "----netdistTestBoundary7MA4YWxkTrZu0gW";
std::string multipart_body(const std::vector<std::tuple<std::string, std::string, std::string>>& parts);

class TestWsClient {
 public:
  struct Message {
    bool binary = false;
    std::string data;
    nlohmann::ordered_json json() const;
  };

  TestWsClient();
  ~TestWsClient();
  // `receive_buffer` > 0 sets SO_RCVBUF before connecting (small buffers make a non-reading client stall fast);
  // `headers` are added to the upgrade request. False when the connection or the handshake fails.
  bool connect(uint16_t port, const std::string& target, int receive_buffer = 0,
               const std::vector<std::pair<std::string, std::string>>& headers = {});
  // connect over TLS (wss://), verifying the server against `ca_file`.
  bool connect_tls(uint16_t port, const std::string& ca_file, const std::string& target,
                   const std::vector<std::pair<std::string, std::string>>& headers = {});
  // Next message, or nullopt when the socket closed or the deadline passed (the client is then unusable).
  std::optional<Message> read(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  // Reads until a text message of `type` whose data matches `prompt_id` (when non-empty); appends every
  // message read to `seen`. False when the socket closes or the deadline passes first.
  bool read_until(const std::string& type, const std::string& prompt_id, std::vector<Message>& seen,
                  std::chrono::milliseconds deadline = std::chrono::seconds(10));
  bool send_text(const std::string& text);
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace netdist::server
