#include "cluster/dial_in.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "cluster/http_client.h"
#include "server/http_types.h"

namespace netdist::cluster {

namespace {

std::string make_worker_id() {
  char host[256] = {};
  std::string name = gethostname(host, sizeof host - 1) == 0 ? host : "worker";
  for (char& c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!plain) c = '-';
  }
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(rd() & 0xffffff));
  return name + "-" + std::to_string(getpid()) + "-" + suffix;
}

}  // namespace

DialIn::DialIn(ShardRunner& runner, DialInOptions options)
    : runner_(runner), options_(std::move(options)), worker_id_(make_worker_id()) {}

void DialIn::start() {
  if (thread_.joinable()) return;
  std::fprintf(stderr, "netdist worker: dialing in to %s as %s\n", options_.coordinator.c_str(), worker_id_.c_str());
  thread_ = std::thread([this] { loop(); });
}

void DialIn::stop() {
  stopping_ = true;
  if (!thread_.joinable()) return;
  runner_.interrupt();
  thread_.join();
}

void DialIn::sleep_for(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!stopping_ && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void DialIn::loop() {
  const std::string& coordinator = options_.coordinator;
  bool registered = false;  // the coordinator knows worker_id_ (else the next pull sends capabilities)
  bool connected = false;   // for log lines on changes only
  bool told_unreachable = false;
  while (!stopping_) {
    Json body = {{"worker_id", worker_id_}, {"url", options_.label}};
    if (!registered) body["capabilities"] = runner_.capabilities();
    HttpCall call;
    call.method = "POST";
    call.target = "/netdist/v1/pull";
    call.body = body.dump();
    call.auth_token = options_.auth_token;
    call.tls = options_.tls;
    call.timeout = std::chrono::seconds(60);  // the coordinator holds a pull for its poll timeout (~15 s)
    call.cancel = &stopping_;
    auto reply = http_call(coordinator, call);
    if (stopping_) break;
    if (!reply.is_ok() || reply->status == 503) {
      if (connected || !told_unreachable)
        std::fprintf(stderr, "netdist worker: cannot reach %s (%s), retrying every %lld ms\n", coordinator.c_str(),
                     reply.is_ok() ? "it is stopping" : reply.status().to_string().c_str(),
                     static_cast<long long>(options_.retry_delay.count()));
      connected = false;
      told_unreachable = true;
      sleep_for(options_.retry_delay);
      continue;
    }
    if (reply->status == 409) {  // an unknown id (the coordinator restarted): register again
      registered = false;
      continue;
    }
    if (reply->status != 200 && reply->status != 204) {
      std::fprintf(stderr, "netdist worker: %s refused the pull (%d): %s\n", coordinator.c_str(), reply->status,
                   reply->body.c_str());
      connected = false;
      sleep_for(options_.retry_delay);
      continue;
    }
    if (!connected)
      std::fprintf(stderr, "netdist worker: connected to %s\n", coordinator.c_str());
    connected = registered = true;
    told_unreachable = false;
    if (reply->status == 204) continue;
    Json request = Json::parse(reply->body, nullptr, false);
    if (!request.is_object() || !request.value("ticket", Json()).is_number_unsigned()) {
      std::fprintf(stderr, "netdist worker: %s sent a shard without a ticket\n", coordinator.c_str());
      continue;
    }
    run_task(request);
  }
}

void DialIn::run_task(const Json& request) {
  const uint64_t ticket = request["ticket"].get<uint64_t>();
  const Json kind_value = request.value("kind", Json("shard"));  // a coordinator before whole prompts: shards
  const std::string kind = kind_value.is_string() ? kind_value.get<std::string>() : std::string();
  const Json progress_ms = request.value("progress_ms", Json(1000));
  const auto every = std::chrono::milliseconds(
      std::max<int64_t>(50, progress_ms.is_number_integer() ? progress_ms.get<int64_t>() : 1000));
  std::atomic<bool> done{false};
  std::thread reporter([&] {
    size_t acked = 0;  // a whole prompt's events the coordinator has (it relays them to the client live)
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + every;
      while (!done && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (done) return;
      const Json st = runner_.status(kind == "prompt" ? std::optional<size_t>(acked) : std::nullopt);
      Json body{{"worker_id", worker_id_},
                {"ticket", ticket},
                {"step", st.value("step", int64_t(0))},
                {"steps", st.value("steps", int64_t(0))}};
      const size_t sent = st.contains("events") ? st["events"].size() : 0;
      if (sent > 0) {
        body["events_from"] = acked;
        body["events"] = st["events"];
      }
      HttpCall call;
      call.method = "POST";
      call.target = "/netdist/v1/progress";
      call.body = body.dump();
      call.auth_token = options_.auth_token;
      call.tls = options_.tls;
      call.timeout = std::max(every * 2, std::chrono::milliseconds(2000));
      call.cancel = &done;
      auto reply = http_call(options_.coordinator, call);
      if (!reply.is_ok()) continue;  // the coordinator is unreachable: keep rendering, report later
      if (reply->status == 200) acked += sent;
      const Json r = Json::parse(reply->body, nullptr, false);
      const bool interrupt = reply->status == 409 || (r.is_object() && r.value("interrupt", false));
      if (interrupt && !done) runner_.interrupt();
    }
  });
  server::Response reply = kind == "shard"    ? runner_.serve_shard(request)
                           : kind == "prompt" ? runner_.serve_prompt(request)
                                              : server::error_response(400, "invalid_task",
                                                                       "unknown task kind " + kind_value.dump());
  done = true;
  reporter.join();
  HttpCall call;
  call.method = "POST";
  call.target = "/netdist/v1/result?worker_id=" + worker_id_ + "&ticket=" + std::to_string(ticket) +
                "&status=" + std::to_string(reply.status) + (kind == "prompt" ? "&kind=prompt" : "");
  call.body = std::move(reply.body);
  call.content_type = reply.content_type.empty() ? "application/json" : reply.content_type;
  call.auth_token = options_.auth_token;
  call.tls = options_.tls;
  call.timeout = std::chrono::seconds(60);
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = http_call(options_.coordinator, call);
    if (r.is_ok()) {
      if (r->status != 200)
        std::fprintf(stderr, "netdist worker: %s did not take the result of ticket %llu (%d): %s\n",
                     options_.coordinator.c_str(), static_cast<unsigned long long>(ticket), r->status,
                     r->body.c_str());
      return;
    }
    sleep_for(std::chrono::milliseconds(500));
    if (stopping_) return;
  }
}

}  // namespace netdist::cluster
