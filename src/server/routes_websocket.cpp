// GET /ws?clientId=… and /api/ws: ComfyUI's websocket_handler on Beast.
#include <deque>
#include <random>

#include <boost/beast/websocket/ssl.hpp>

#include <cstdio>
#include <exception>

#include "core/log.h"
#include "server/beast_session.h"
#include "server/routes.h"

namespace netdist::server {

namespace {

namespace websocket = beast::websocket;

std::string uuid4_hex() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = (rng() & 0xffffffffffff0fffull) | 0x0000000000004000ull;
  uint64_t lo = (rng() & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi), static_cast<unsigned long long>(lo));
  return buf;
}

// Stream: beast::tcp_stream (ws://) or TlsStream (wss://).
template <class Stream>
class WsSession : public WsConnection, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  using std::enable_shared_from_this<WsSession<Stream>>::shared_from_this;

  WsSession(Stream stream, ServerState& state, std::string sid)
      : ws_(std::move(stream)), state_(state), sid_(std::move(sid)), bound_(state.options().ws_max_buffered_bytes) {}

  void run(BeastRequest request) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "netdist"); }));
    ws_.read_message_max(4 * 1024 * 1024);
    auto req = std::make_shared<BeastRequest>(std::move(request));
    ws_.async_accept(*req, [self = shared_from_this(), req](beast::error_code ec) { self->on_accept(ec); });
  }

  SendResult send(std::shared_ptr<const std::string> frame, bool binary) override {
    if (closed_.load()) return SendResult::kClosed;
    const uint64_t queued = queued_bytes_.fetch_add(frame->size()) + frame->size();
    if (queued > bound_) {
      close();
      return SendResult::kOverflow;
    }
    net::post(ws_.get_executor(), [self = shared_from_this(), frame = std::move(frame), binary] {
      if (self->shut_) return;
      self->outgoing_.push_back({frame, binary});
      if (!self->writing_) self->do_write();
    });
    return SendResult::kQueued;
  }

  void close() override {
    if (closed_.exchange(true)) return;
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->shutdown(); });
  }

 private:
  struct Outgoing {
    std::shared_ptr<const std::string> frame;
    bool binary;
  };

  void on_accept(beast::error_code ec) {
    if (ec) return shutdown();
    try {
      state_.connect_ws(sid_, shared_from_this());
      do_read();
    } catch (const std::exception& e) {
      fail("accept", e.what());
    } catch (...) {
      fail("accept", "unknown exception");
    }
  }

  void do_read() {
    ws_.async_read(read_buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return shutdown();
    // Barrier: whatever a message makes throw ends this one connection (logged), never the process.
    try {
      if (first_message_ && ws_.got_text()) {
        const auto reply = websocket_text_reply(state_, beast::buffers_to_string(read_buffer_.data()), true);
        if (reply) send(std::make_shared<const std::string>(*reply), false);
      }
      first_message_ = false;
      read_buffer_.consume(read_buffer_.size());
      do_read();
    } catch (const std::exception& e) {
      fail("message", e.what());
    } catch (...) {
      fail("message", "unknown exception");
    }
  }

  void fail(const char* where, const char* what) {
    log::warn("WebSocket {} of client {} failed: {}; closing it", where, sid_, what);
    shutdown();
  }

  void do_write() {
    writing_ = true;
    const Outgoing& next = outgoing_.front();
    ws_.binary(next.binary);
    ws_.async_write(net::buffer(*next.frame),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    queued_bytes_.fetch_sub(outgoing_.front().frame->size());
    outgoing_.pop_front();
    if (ec) return shutdown();
    if (outgoing_.empty()) {
      writing_ = false;
      return;
    }
    do_write();
  }

  // On the strand: unregister and drop the TCP connection; pending operations complete with errors.
  void shutdown() {
    closed_.store(true);
    if (shut_) return;
    shut_ = true;
    state_.hub().remove(sid_, this);
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    socket.shutdown(net::ip::tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  websocket::stream<Stream> ws_;
  ServerState& state_;
  const std::string sid_;
  const uint64_t bound_;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> queued_bytes_{0};
  // Strand-only state.
  beast::flat_buffer read_buffer_;
  std::deque<Outgoing> outgoing_;
  bool writing_ = false;
  bool shut_ = false;
  bool first_message_ = true;
};

template <class Stream>
void start_session(Stream stream, BeastRequest request, ServerState& state) {
  const std::string target(request.target());
  const size_t q = target.find('?');
  std::string sid;
  if (q != std::string::npos) {
    for (const auto& [k, v] : parse_query(target.substr(q + 1)))
      if (k == "clientId") {
        sid = v;
        break;
      }
  }
  if (sid.empty()) sid = uuid4_hex();
  std::make_shared<WsSession<Stream>>(std::move(stream), state, std::move(sid))->run(std::move(request));
}

}  // namespace

void start_websocket_session(beast::tcp_stream stream, BeastRequest request, ServerState& state) {
  start_session(std::move(stream), std::move(request), state);
}

void start_websocket_session(TlsStream stream, BeastRequest request, ServerState& state) {
  start_session(std::move(stream), std::move(request), state);
}

}  // namespace netdist::server
