// TcpLink, the cuttable link of the fault-injection and process tests: bytes flow both ways, a cut stops
// them without closing anything, a heal delivers what was held (also for a connection made during the cut),
// and a dead target closes the client's connection. A link that did not really cut would make the link-cut
// faults of FaultInjection.* test nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "cluster/tcp_link_test_util.h"

namespace netdist::cluster::test {
namespace {

sockaddr_in loopback_addr(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// An echo server on an ephemeral loopback port, one thread per connection, until destroyed.
class EchoServer {
 public:
  EchoServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback_addr(0);
    socklen_t len = sizeof a;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) {
          if (c >= 0) close(c);
          return;
        }
        std::thread([c] {
          char buf[4096];
          for (ssize_t n; (n = read(c, buf, sizeof buf)) > 0;) send(c, buf, size_t(n), MSG_NOSIGNAL);
          close(c);
        }).detach();
      }
    });
  }
  ~EchoServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int connect_to(uint16_t port) {
  const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback_addr(port);
  EXPECT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return s;
}

// What arrives on `s` within `ms` milliseconds, up to `want` bytes; "<closed>" when the peer closed first.
std::string receive(int s, size_t want, int ms) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (got.size() < want) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, int(left.count())) <= 0) break;
    char buf[256];
    const ssize_t n = read(s, buf, sizeof buf);
    if (n <= 0) return got + "<closed>";
    got.append(buf, size_t(n));
  }
  return got;
}

TEST(TcpLink, ForwardsCutsAndHeals) {
  EchoServer echo;
  TcpLink link(echo.port());
  ASSERT_EQ(link.error(), "");
  const int a = connect_to(link.port());
  ASSERT_EQ(send(a, "ping", 4, 0), 4);
  EXPECT_EQ(receive(a, 4, 5000), "ping");

  link.cut();
  ASSERT_EQ(send(a, "held", 4, 0), 4);
  EXPECT_EQ(receive(a, 4, 300), "") << "a byte crossed a cut link";
  const int b = connect_to(link.port());  // completes in the backlog, as behind a dead switch port
  ASSERT_EQ(send(b, "late", 4, 0), 4);
  EXPECT_EQ(receive(b, 4, 300), "") << "a connection made during the cut was forwarded";

  link.heal();
  EXPECT_EQ(receive(a, 4, 5000), "held") << "the bytes held by the cut were not delivered after the heal";
  EXPECT_EQ(receive(b, 4, 5000), "late");
  EXPECT_EQ(link.connections(), 2);
  close(a);
  close(b);
}

TEST(TcpLink, DeadTargetClosesTheClientsConnection) {
  uint16_t dead_port = 0;
  {
    EchoServer gone;  // a port that was just free; nothing listens there after this scope
    dead_port = gone.port();
  }
  TcpLink link(dead_port);
  const int a = connect_to(link.port());
  EXPECT_EQ(receive(a, 1, 5000), "<closed>");
  EXPECT_EQ(link.connections(), 0);
  close(a);
}

}  // namespace
}  // namespace netdist::cluster::test
