#include "cluster/dial_in.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "cluster/http_client.h"
#include "core/log.h"
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
  log::info("worker: dialing in to {} as {}", options_.coordinator, worker_id_);
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

protocol::Peer DialIn::coordinator_peer(const std::atomic<bool>* cancel) const {
  return protocol::Peer{options_.coordinator, options_.auth_token, options_.tls, cancel};
}

void DialIn::loop() {
  const std::string& coordinator = options_.coordinator;
  bool registered = false;  // the coordinator knows worker_id_ (else the next pull sends capabilities)
  bool connected = false;   // for log lines on changes only
  bool told_unreachable = false;
  while (!stopping_) {
    protocol::PullRequest pull{worker_id_, options_.label, Json()};
    if (!registered) pull.capabilities = runner_.capabilities();
    // The coordinator holds a pull for its poll timeout (~15 s).
    auto reply = protocol::call(coordinator_peer(&stopping_), protocol::Route::pull, std::chrono::seconds(60),
                                protocol::to_json(pull).dump());
    if (stopping_) break;
    if (!reply.is_ok() || reply->status == 503) {
      if (connected || !told_unreachable)
        log::warn("worker: cannot reach {} ({}), retrying every {} ms", coordinator,
                  reply.is_ok() ? std::string("it is stopping") : reply.status().to_string(),
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
      log::warn("worker: {} refused the pull ({}): {}", coordinator, reply->status, reply->body);
      connected = false;
      sleep_for(options_.retry_delay);
      continue;
    }
    if (!connected)
      log::info("worker: connected to {}", coordinator);
    connected = registered = true;
    told_unreachable = false;
    if (reply->status == 204) continue;
    auto task = protocol::pulled_task_from_json(Json::parse(reply->body, nullptr, false));
    if (!task.is_ok()) {
      log::warn("worker: {} sent a task without a ticket", coordinator);
      continue;
    }
    run_task(*task);
  }
}

void DialIn::run_task(const protocol::PulledTask& task) {
  const auto every = std::chrono::milliseconds(std::max<int64_t>(50, task.progress_ms));
  // A group member's task is a whole prompt with "group" (group_protocol.h), run and answered alike.
  const bool whole = task.kind == protocol::TaskKind::prompt || task.kind == protocol::TaskKind::group;
  std::atomic<bool> done{false};
  std::thread reporter([&] {
    size_t acked = 0;  // a whole prompt's events the coordinator has (it relays them to the client live)
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + every;
      while (!done && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (done) return;
      auto st = protocol::status_reply_from_json(runner_.status(whole ? std::optional<size_t>(acked) : std::nullopt));
      protocol::ProgressRequest progress{worker_id_, task.ticket, st->step, st->steps, acked,
                                         st->events.value_or(Json::array())};
      const size_t sent = progress.events.size();
      auto reply = protocol::call(coordinator_peer(&done), protocol::Route::progress,
                                  std::max(every * 2, std::chrono::milliseconds(2000)),
                                  protocol::to_json(progress).dump());
      if (!reply.is_ok()) continue;  // the coordinator is unreachable: keep rendering, report later
      if (reply->status == 200) acked += sent;
      const bool interrupt = reply->status == 409 ||
                             protocol::progress_reply_from_json(Json::parse(reply->body, nullptr, false)).interrupt;
      if (interrupt && !done) runner_.interrupt();
    }
  });
  server::Response reply = task.kind == protocol::TaskKind::shard  ? runner_.serve_shard(task.request)
                           : task.kind == protocol::TaskKind::tile ? runner_.serve_tile(task.request)
                           : whole ? runner_.serve_prompt(task.request)
                                   : server::error_response(400, "invalid_task", "unknown task kind " + task.kind_text);
  done = true;
  reporter.join();
  protocol::ResultQuery query{worker_id_, task.ticket, reply.status, std::nullopt};
  if (task.kind != protocol::TaskKind::shard) query.kind = task.kind;
  const std::string content_type = reply.content_type.empty() ? "application/json" : reply.content_type;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = protocol::call(coordinator_peer(nullptr), protocol::Route::result, std::chrono::seconds(60), reply.body,
                            protocol::to_query(query), content_type);
    if (r.is_ok()) {
      if (r->status != 200)
        log::warn("worker: {} did not take the result of ticket {} ({}): {}", options_.coordinator, task.ticket,
                  r->status, r->body);
      return;
    }
    sleep_for(std::chrono::milliseconds(500));
    if (stopping_) return;
  }
}

}  // namespace netdist::cluster
