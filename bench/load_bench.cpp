// load_bench: the HTTP/WebSocket server under load, with a fast fake backend (no model), on loopback.
//
//   load_bench [--clients 200] [--posts 10000] [--sockets 500] [--events 20]
//
// The server runs in a forked child process (so its RSS is its own); the parent is the load generator.
//   1. Baseline: `clients` keep-alive connections send GET /prompt (the cheapest route), `posts` requests in
//   all.
//   2. The same clients send `posts` POST /prompt (a 7-node txt2img graph, each with its own seed) while the
//      backend holds the queue closed: accepted prompts per second, p50/p99 latency, ratio to the baseline.
//   3. RSS of the server with `posts` prompts queued, then after the worker has run them all into history
//      (ComfyUI keeps 10,000 history entries), and the drain rate.
//   4. WebSocket fan-out: `sockets` connected clients; a prompt without client_id makes ComfyUI broadcast its
//      progress events to every socket. Paced events (one per 25 ms): time until the last socket has each
//      one. Burst (all events back to back): time until every socket has every event.
// Prints a table. The load generator shares the machine's cores with the server, as a real co-located client
// would; the numbers are for the machine it ran on (name it when quoting them).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "server/http_server.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::ordered_json;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- the server side (child process)
// -------------------------------------------------------------------------------

// Accepts any graph whose nodes have a class_type; SaveImage nodes are the outputs. execute waits while the
// gate is closed, then emits ComfyUI's event sequence; the sampler ("KSampler") emits inputs.steps progress
// events, paced by inputs.pace_ms, each carrying its send time (steady clock, ns) in "sent_ns".
class BenchBackend : public netdist::server::Backend {
 public:
  netdist::server::ValidationOutcome validate(const json& prompt) override {
    netdist::server::ValidationOutcome out;
    if (!prompt.is_object()) return out;
    for (auto it = prompt.begin(); it != prompt.end(); ++it) {
      if (!it.value().is_object() || !it.value().contains("class_type")) return out;
      if (it.value()["class_type"] == "SaveImage") out.outputs.push_back(it.key());
    }
    out.ok = !out.outputs.empty();
    out.prompt = prompt;
    return out;
  }

  netdist::Status execute(const netdist::server::QueueItem& item, const netdist::server::EmitFn& emit,
                          std::atomic<bool>& interrupt, json& outputs) override {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return open_; });
    }
    const std::string& pid = item.prompt_id;
    emit("execution_start", {{"prompt_id", pid}});
    emit("execution_cached", {{"nodes", json::array()}, {"prompt_id", pid}});
    for (auto it = item.prompt.begin(); it != item.prompt.end(); ++it) {
      const std::string& id = it.key();
      emit("executing", {{"node", id}, {"display_node", id}, {"prompt_id", pid}});
      const json& inputs = it.value()["inputs"];
      if (it.value()["class_type"] == "KSampler") {
        const int steps = inputs.value("steps", 1);
        const int pace_ms = inputs.value("pace_ms", 0);
        for (int s = 0; s < steps; ++s) {
          if (pace_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pace_ms));
          emit("progress",
               {{"value", s + 1}, {"max", steps}, {"prompt_id", pid}, {"node", id}, {"sent_ns", now_ns()}});
        }
      } else if (it.value()["class_type"] == "SaveImage") {
        const json ui = {
            {"images",
             json::array({{{"filename", "bench_00001_.png"}, {"subfolder", ""}, {"type", "output"}}})}};
        emit("executed", {{"node", id}, {"display_node", id}, {"output", ui}, {"prompt_id", pid}});
        outputs[id] = ui;
      }
    }
    emit("execution_success", {{"prompt_id", pid}});
    return netdist::Status::ok();
  }

  json object_info() override { return json::object(); }
  json system_stats_devices() override { return json::array(); }
  void free_memory(bool, bool) override {}

  void set_open(bool open) {
    {
      std::lock_guard lock(mutex_);
      open_ = open;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Runs the server; reports the port on `port_fd`; reads commands from `command_fd`: 'o' open the gate, 'q'
// quit.
int server_main(int port_fd, int command_fd) {
  const std::string root = "/tmp/netdist_load_bench_" + std::to_string(::getpid());
  netdist::server::ServerOptions options;
  options.port = 0;
  options.output_dir = root + "/output";
  options.input_dir = root + "/input";
  options.temp_dir = root + "/temp";
  for (const auto& d : {options.output_dir, options.input_dir, options.temp_dir})
    std::filesystem::create_directories(d);
  BenchBackend backend;
  netdist::server::HttpServer server(options, backend);
  const netdist::Status s = server.start();
  if (!s.is_ok()) {
    std::fprintf(stderr, "load_bench server: %s\n", s.to_string().c_str());
    return 1;
  }
  const uint16_t port = server.port();
  if (::write(port_fd, &port, sizeof(port)) != sizeof(port)) return 1;
  char c = 0;
  while (::read(command_fd, &c, 1) == 1 && c != 'q') {
    if (c == 'o') backend.set_open(true);
  }
  backend.set_open(true);
  server.stop();
  std::filesystem::remove_all(root);
  return 0;
}

// ---- the load generator (parent process)
// ---------------------------------------------------------------------------

uint16_t g_port = 0;
pid_t g_child = 0;

double rss_mib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

std::string txt2img(int seed, int steps = 20, int pace_ms = 0) {
  json p = {
      {"4",
       {{"class_type", "CheckpointLoaderSimple"},
        {"inputs", {{"ckpt_name", "v1-5-pruned-emaonly.safetensors"}}}}},
      {"5",
       {{"class_type", "EmptyLatentImage"},
        {"inputs", {{"width", 512}, {"height", 512}, {"batch_size", 1}}}}},
      {"6",
       {{"class_type", "CLIPTextEncode"},
        {"inputs", {{"text", "masterpiece best quality girl"}, {"clip", {"4", 1}}}}}},
      {"7", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", "bad hands"}, {"clip", {"4", 1}}}}}},
      {"3",
       {{"class_type", "KSampler"},
        {"inputs",
         {{"seed", seed},
          {"steps", steps},
          {"cfg", 8},
          {"sampler_name", "euler"},
          {"scheduler", "normal"},
          {"denoise", 1},
          {"model", {"4", 0}},
          {"positive", {"6", 0}},
          {"negative", {"7", 0}},
          {"latent_image", {"5", 0}},
          {"pace_ms", pace_ms}}}}},
      {"8", {{"class_type", "VAEDecode"}, {"inputs", {{"samples", {"3", 0}}, {"vae", {"4", 2}}}}}},
      {"9",
       {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "ComfyUI"}, {"images", {"8", 0}}}}}}};
  return p.dump();
}

struct LoadResult {
  double seconds = 0;
  size_t ok = 0, failed = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

// `clients` threads, each with one keep-alive connection, share `total` requests.
LoadResult http_load(int clients, int total, bool post) {
  std::atomic<int> next{0};
  std::atomic<size_t> ok{0}, failed{0};
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      net::io_context ioc;
      beast::tcp_stream stream(ioc);
      beast::error_code ec;
      stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), g_port), ec);
      ++ready;
      while (!go.load()) std::this_thread::yield();
      beast::flat_buffer buffer;
      for (int i; (i = next++) < total;) {
        if (ec) {
          ++failed;
          continue;
        }
        http::request<http::string_body> req{post ? http::verb::post : http::verb::get, "/prompt", 11};
        req.set(http::field::host, "127.0.0.1");
        req.keep_alive(true);
        if (post) {
          req.body() = "{\"client_id\": \"bench\", \"prompt\": " + txt2img(i) + "}";
          req.prepare_payload();
        }
        const int64_t t0 = now_ns();
        http::write(stream, req, ec);
        http::response<http::string_body> res;
        if (!ec) http::read(stream, buffer, res, ec);
        if (!ec && res.result_int() == 200) {
          ++ok;
          latencies[c].push_back((now_ns() - t0) / 1e6);
        } else {
          ++failed;
        }
      }
      stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    });
  }
  while (ready.load() < clients) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int64_t start = now_ns();
  go = true;
  for (auto& t : threads) t.join();
  LoadResult r;
  r.seconds = (now_ns() - start) / 1e9;
  r.ok = ok;
  r.failed = failed;
  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[std::min(all.size() - 1, size_t(all.size() * 0.99))];
    r.max_ms = all.back();
  }
  return r;
}

int64_t queue_remaining() {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), g_port), ec);
  if (ec) return -1;
  http::request<http::string_body> req{http::verb::get, "/prompt", 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(stream, req, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (!ec) http::read(stream, buffer, res, ec);
  if (ec) return -1;
  return json::parse(res.body(), nullptr, false)["exec_info"].value("queue_remaining", int64_t(-1));
}

// One WebSocket client of the fan-out test: records, per progress value, when it arrived and when it was
// sent.
class FanoutClient : public std::enable_shared_from_this<FanoutClient> {
 public:
  FanoutClient(net::io_context& ioc, int events)
      : ws_(net::make_strand(ioc)), recv_ns_(events + 1, 0), sent_ns_(events + 1, 0) {}

  void start(std::atomic<int>& connected) {
    connected_ = &connected;
    beast::get_lowest_layer(ws_).async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), g_port),
                                               [self = shared_from_this()](beast::error_code ec) {
                                                 if (ec) return;
                                                 self->ws_.async_handshake("127.0.0.1", "/ws",
                                                                           [self](beast::error_code ec) {
                                                                             if (ec) return;
                                                                             self->read();
                                                                           });
                                               });
  }
  void reset() {
    std::fill(recv_ns_.begin(), recv_ns_.end(), 0);
    received_ = 0;
  }
  int received() const { return received_.load(); }
  int64_t recv_ns(int v) const { return recv_ns_[v]; }
  int64_t sent_ns(int v) const { return sent_ns_[v]; }
  void close() {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

 private:
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return;
      const int64_t t = now_ns();
      const std::string text = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (!self->seen_status_) {
        self->seen_status_ = true;
        ++*self->connected_;
      } else if (text.find("\"type\": \"progress\"") != std::string::npos) {
        const json j = json::parse(text, nullptr, false);
        const int v = j["data"].value("value", 0);
        if (v > 0 && v < static_cast<int>(self->recv_ns_.size())) {
          self->recv_ns_[v] = t;
          self->sent_ns_[v] = j["data"].value("sent_ns", int64_t(0));
          ++self->received_;
        }
      }
      self->read();
    });
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::vector<int64_t> recv_ns_, sent_ns_;
  std::atomic<int> received_{0};
  std::atomic<int>* connected_ = nullptr;
  bool seen_status_ = false;
};

bool post_prompt(const std::string& prompt) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), g_port), ec);
  http::request<http::string_body> req{http::verb::post, "/prompt", 11};
  req.set(http::field::host, "127.0.0.1");
  req.body() = "{\"prompt\": " + prompt + "}";
  req.prepare_payload();
  if (!ec) http::write(stream, req, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (!ec) http::read(stream, buffer, res, ec);
  return !ec && res.result_int() == 200;
}

bool wait_for(const std::function<bool()>& pred, double seconds) {
  const int64_t end = now_ns() + int64_t(seconds * 1e9);
  while (now_ns() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

int arg_int(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int clients = arg_int(argc, argv, "--clients", 200);
  const int posts = arg_int(argc, argv, "--posts", 10000);
  const int sockets = arg_int(argc, argv, "--sockets", 500);
  const int events = arg_int(argc, argv, "--events", 20);

  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  ::signal(SIGPIPE, SIG_IGN);

  int port_pipe[2], command_pipe[2];
  if (::pipe(port_pipe) != 0 || ::pipe(command_pipe) != 0) return 1;
  // fork() without exec (the child runs server_main): safe only because no other thread exists yet and this
  // program links no libtorch or BLAS; a fork with other threads running can deadlock in pthread_atfork
  // handlers (core/spawn.h says why netdist itself spawns children with posix_spawn).
  g_child = ::fork();
  if (g_child < 0) return 1;
  if (g_child == 0) {
    ::close(port_pipe[0]);
    ::close(command_pipe[1]);
    ::_exit(server_main(port_pipe[1], command_pipe[0]));
  }
  ::close(port_pipe[1]);
  ::close(command_pipe[0]);
  if (::read(port_pipe[0], &g_port, sizeof(g_port)) != sizeof(g_port)) {
    std::fprintf(stderr, "load_bench: the server did not start\n");
    return 1;
  }
  const auto command = [&](char c) { return ::write(command_pipe[1], &c, 1) == 1; };
  std::printf("load_bench: server pid %d on 127.0.0.1:%u, %u hardware threads, fd limit %llu\n", int(g_child),
              unsigned(g_port), std::thread::hardware_concurrency(), (unsigned long long)limit.rlim_cur);
  const double rss_idle = rss_mib(g_child);

  const LoadResult base = http_load(clients, posts, false);
  const LoadResult load = http_load(clients, posts, true);
  const bool all_queued = wait_for([&] { return queue_remaining() == int64_t(load.ok); }, 10);
  const double rss_queued = rss_mib(g_child);
  const int64_t drain_start = now_ns();
  command('o');
  const bool drained = wait_for([] { return queue_remaining() == 0; }, 300);
  const double drain_s = (now_ns() - drain_start) / 1e9;
  const double rss_history = rss_mib(g_child);

  // WebSocket fan-out.
  net::io_context ioc;
  auto work = net::make_work_guard(ioc);
  std::thread io_thread([&] { ioc.run(); });
  std::atomic<int> connected{0};
  std::vector<std::shared_ptr<FanoutClient>> fan;
  for (int i = 0; i < sockets; ++i) {
    fan.push_back(std::make_shared<FanoutClient>(ioc, events));
    fan.back()->start(connected);
  }
  const bool all_connected = wait_for([&] { return connected.load() == sockets; }, 60);
  struct Fanout {
    bool complete = false;
    double total_ms = 0, p50_ms = 0, max_ms = 0;
  };
  const auto fanout = [&](int seed, int pace_ms) {
    for (auto& c : fan) c->reset();
    Fanout f;
    const int64_t t0 = now_ns();
    if (!post_prompt(txt2img(seed, events, pace_ms))) return f;
    f.complete = wait_for(
        [&] {
          return std::all_of(fan.begin(), fan.end(), [&](const auto& c) { return c->received() >= events; });
        },
        120);
    std::vector<double> per_event;  // last arrival minus send time, per progress event
    int64_t last = 0;
    for (int v = 1; v <= events; ++v) {
      int64_t latest = 0, sent = 0;
      for (const auto& c : fan) {
        latest = std::max(latest, c->recv_ns(v));
        if (c->sent_ns(v)) sent = c->sent_ns(v);
      }
      if (sent) per_event.push_back((latest - sent) / 1e6);
      last = std::max(last, latest);
    }
    std::sort(per_event.begin(), per_event.end());
    if (!per_event.empty()) {
      f.p50_ms = per_event[per_event.size() / 2];
      f.max_ms = per_event.back();
    }
    f.total_ms = (last - t0) / 1e6;
    return f;
  };
  const Fanout paced = fanout(1, 25);
  const Fanout burst = fanout(2, 0);
  for (auto& c : fan) c->close();
  work.reset();
  ioc.stop();
  io_thread.join();
  command('q');
  int status = 0;
  ::waitpid(g_child, &status, 0);

  std::printf("\n| measure | value |\n|---|---|\n");
  std::printf(
      "| baseline GET /prompt, %d clients, %d requests | %.0f req/s, p50 %.2f ms, p99 %.2f ms (%zu failed) "
      "|\n",
      clients, posts, base.ok / base.seconds, base.p50_ms, base.p99_ms, base.failed);
  std::printf(
      "| POST /prompt (7-node graph), %d clients, %d prompts | %.0f accepted/s, p50 %.2f ms, p99 %.2f ms, "
      "max %.1f ms (%zu failed) |\n",
      clients, posts, load.ok / load.seconds, load.p50_ms, load.p99_ms, load.max_ms, load.failed);
  std::printf("| POST / baseline | rate %.2fx, p99 %.2fx |\n",
              (load.ok / load.seconds) / (base.ok / base.seconds), load.p99_ms / std::max(1e-9, base.p99_ms));
  std::printf("| server RSS idle | %.1f MiB |\n", rss_idle);
  std::printf("| server RSS with %zu prompts queued%s | %.1f MiB (+%.1f KiB per prompt) |\n", load.ok,
              all_queued ? "" : " (queue count mismatch)", rss_queued,
              (rss_queued - rss_idle) * 1024 / std::max<size_t>(1, load.ok));
  std::printf("| worker drain of %zu prompts into history%s | %.2f s (%.0f prompts/s) |\n", load.ok,
              drained ? "" : " (INCOMPLETE)", drain_s, load.ok / drain_s);
  std::printf("| server RSS with %zu history entries | %.1f MiB |\n", load.ok, rss_history);
  std::printf("| WebSocket clients connected | %d of %d%s |\n", connected.load(), sockets,
              all_connected ? "" : " (timeout)");
  std::printf(
      "| fan-out, paced (%d progress events, 25 ms apart): last socket has each event after | p50 %.2f ms, "
      "max %.2f ms%s |\n",
      events, paced.p50_ms, paced.max_ms, paced.complete ? "" : " (INCOMPLETE)");
  std::printf("| fan-out, burst (%d events x %d sockets = %d frames): all delivered after | %.1f ms%s |\n",
              events, sockets, events * sockets, burst.total_ms, burst.complete ? "" : " (INCOMPLETE)");
  const bool ok = load.failed == 0 && base.failed == 0 && all_queued && drained && all_connected &&
                  paced.complete && burst.complete && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) std::printf("\nload_bench: some phases did not complete (see the table)\n");
  return ok ? 0 : 1;
}
