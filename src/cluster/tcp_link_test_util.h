// A network link between two processes on loopback, for tests that cut it: a TCP relay that listens on
// 127.0.0.1:port() and forwards every connection to 127.0.0.1:target_port. cut() is a pulled cable: no byte
// moves in either direction and nothing is closed (no FIN, no RST); connections made during the cut complete
// their handshake in the listen backlog and then hang, as they do behind a dead switch port. heal() plugs the
// cable back: held bytes flow again, a close that happened during the cut reaches the other side, and
// connections waiting in the backlog are accepted and forwarded. A closed or refused target closes the
// client's connection (the coordinator being killed is an RST to the worker, as without the link).
// Thread-safety: one relay thread does all I/O; cut(), heal() and the destructor may be called from any
// thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace netdist::cluster::test {

class TcpLink {
 public:
  explicit TcpLink(uint16_t target_port) : target_port_(target_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(listen_fd_, 64) != 0 || getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      error_ = std::string("cannot listen on 127.0.0.1: ") + std::strerror(errno);
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TcpLink() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (auto& p : pipes_) {
      close(p->client);
      if (p->server >= 0) close(p->server);
    }
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  TcpLink(const TcpLink&) = delete;
  TcpLink& operator=(const TcpLink&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& error() const { return error_; }  // empty when the link listens
  void cut() { cut_ = true; }
  void heal() { cut_ = false; }
  // Connections forwarded so far (accepted and connected to the target).
  int connections() const { return connections_; }

 private:
  // One client connection and its connection to the target; bytes each way wait in a buffer.
  struct Pipe {
    int client = -1, server = -1;
    std::string to_server, to_client;
    bool client_eof = false, server_eof = false, dead = false;
  };

  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }

  void accept_waiting() {
    for (;;) {
      const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;
      auto p = std::make_unique<Pipe>();
      p->client = c;
      // A blocking connect on loopback answers at once: accepted, or refused (the target is down).
      const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a = loopback(target_port_);
      if (s >= 0 && connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
        p->server = s;
        ++connections_;
      } else {
        if (s >= 0) close(s);
        p->dead = true;  // refused: the client sees its connection closed
      }
      pipes_.push_back(std::move(p));
    }
  }

  // Reads what `from` has into `buf` (up to 1 MiB waiting); false at EOF or on an error.
  static bool pump_in(int from, std::string& buf, bool& eof) {
    char chunk[65536];
    while (buf.size() < (1u << 20)) {
      const ssize_t n = read(from, chunk, sizeof chunk);
      if (n > 0) {
        buf.append(chunk, size_t(n));
        continue;
      }
      if (n == 0) eof = true;
      return n == 0 ? true : (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
  }
  static bool pump_out(int to, std::string& buf) {
    while (!buf.empty()) {
      const ssize_t n = send(to, buf.data(), buf.size(), MSG_NOSIGNAL);
      if (n > 0) {
        buf.erase(0, size_t(n));
        continue;
      }
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    return true;
  }

  void run() {
    while (!stop_) {
      if (cut_) {  // nothing moves; the kernel keeps what the peers send in its buffers and backlog
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      accept_waiting();
      std::vector<pollfd> fds;
      for (auto& p : pipes_) {
        if (p->dead) continue;
        fds.push_back({p->client, short((p->client_eof ? 0 : POLLIN) | (p->to_client.empty() ? 0 : POLLOUT)), 0});
        fds.push_back({p->server, short((p->server_eof ? 0 : POLLIN) | (p->to_server.empty() ? 0 : POLLOUT)), 0});
      }
      fds.push_back({listen_fd_, POLLIN, 0});
      poll(fds.data(), fds.size(), 10);
      if (cut_) continue;  // cut while waiting: move nothing of what poll saw
      for (auto& p : pipes_) {
        if (p->dead) continue;
        bool ok = pump_in(p->client, p->to_server, p->client_eof) && pump_in(p->server, p->to_client, p->server_eof) &&
                  pump_out(p->server, p->to_server) && pump_out(p->client, p->to_client);
        if (p->client_eof && p->to_server.empty()) shutdown(p->server, SHUT_WR);
        if (p->server_eof && p->to_client.empty()) shutdown(p->client, SHUT_WR);
        if (!ok || (p->client_eof && p->server_eof && p->to_client.empty() && p->to_server.empty())) p->dead = true;
      }
      for (auto it = pipes_.begin(); it != pipes_.end();) {
        if ((*it)->dead) {
          close((*it)->client);
          if ((*it)->server >= 0) close((*it)->server);
          it = pipes_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  uint16_t target_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::string error_;
  std::atomic<bool> stop_{false}, cut_{false};
  std::atomic<int> connections_{0};
  std::vector<std::unique_ptr<Pipe>> pipes_;  // relay thread only
  std::thread thread_;
};

}  // namespace netdist::cluster::test
