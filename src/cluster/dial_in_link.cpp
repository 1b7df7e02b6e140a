#include "cluster/dial_in_link.h"

#include <algorithm>

#include "cluster/netdist_link.h"

namespace netdist::cluster {

namespace {

std::atomic<uint64_t> next_ticket{0};  // tickets are unique in this process

}  // namespace

DialInLink::DialInLink(std::string worker_id, std::string label, Json capabilities, LinkSettings settings,
                       std::chrono::milliseconds poll_timeout)
    : worker_id_(std::move(worker_id)),
      settings_(std::move(settings)),
      poll_timeout_(poll_timeout),
      label_(label.empty() ? worker_id_ : std::move(label)),
      reported_caps_(std::move(capabilities)),
      last_seen_(std::chrono::steady_clock::now()) {}

LinkIdentity DialInLink::identity() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return LinkIdentity{label_, worker_id_, true, "netdist"};
}

std::string DialInLink::who() const { return "dial-in worker " + worker_id_ + " (" + label_ + ")"; }

bool DialInLink::lease_lost() const {
  return pulls_held_ == 0 && std::chrono::steady_clock::now() - last_seen_ > 3 * settings_.heartbeat;
}

Result<std::optional<Json>> DialInLink::probe() {
  std::unique_lock<std::mutex> lock(mutex_);
  // A dial-in worker is alive again when it pulls.
  if (!cv_.wait_for(lock, settings_.heartbeat, [&] { return closed_ || alive_; }) || closed_)
    return std::optional<Json>();
  return std::optional<Json>(reported_caps_);
}

Result<std::optional<Json>> DialInLink::heartbeat() {
  std::lock_guard<std::mutex> lock(mutex_);  // its pulls are its heartbeat
  if (!lease_lost()) return std::optional<Json>();
  alive_ = false;
  return Status::unavailable(who() + ": silent for " + std::to_string(3 * settings_.heartbeat.count()) +
                             " ms (lease lost)");
}

Result<TaskOutput> DialInLink::run(const LinkTask& task, TaskFault* fault) {
  const protocol::TaskKind kind = task_kind(task.spec);
  std::unique_lock<std::mutex> lock(mutex_);
  Mail& mail = mail_.emplace();
  mail.ticket = ++next_ticket;
  mail.task_id = task_id(task.spec);
  mail.kind = kind;
  mail.request = task_body(task.spec);
  cv_.notify_all();
  const std::string name = who();
  const auto start = std::chrono::steady_clock::now();
  Result<HttpReply> reply = await_reply(lock, task);  // unlocks
  Result<TaskOutput> out = reply.is_ok() ? decode_task_reply(
                                               name, task.spec, std::move(*reply),
                                               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                                               fault)
                                         : Result<TaskOutput>(reply.status());
  if (!out.is_ok()) {
    std::lock_guard<std::mutex> relock(mutex_);
    alive_ = false;  // it proves it is alive by pulling again
  }
  return out;
}

Result<HttpReply> DialInLink::await_reply(std::unique_lock<std::mutex>& lock, const LinkTask& task) {
  Mail& mail = *mail_;
  const std::string what = std::string(protocol::task_kind_name(mail.kind)) + " " + mail.task_id;
  const auto deadline = std::chrono::steady_clock::now() + settings_.task_timeout;
  for (;;) {
    if (mail.reply) {
      HttpReply reply = std::move(*mail.reply);
      mail_.reset();
      lock.unlock();
      return reply;
    }
    Status failed;
    if (closed_)
      failed = Status::unavailable("the coordinator is stopping");
    else if (task.withdrawn && task.withdrawn->load() && !mail.taken)
      failed = Status::cancelled(who() + ": " + what + " withdrawn");
    else if (lease_lost())
      failed = Status::unavailable(who() + ": silent for " + std::to_string(3 * settings_.heartbeat.count()) +
                                   " ms (lease lost) with " + what);
    else if (std::chrono::steady_clock::now() > deadline)
      failed = Status::unavailable(who() + ": " + what + " timed out");
    if (!failed.is_ok()) {
      mail_.reset();
      lock.unlock();
      return failed;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

void DialInLink::interrupt(protocol::TaskKind, const std::string&) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (mail_) mail_->interrupt = true;  // delivered with the worker's next progress report
}

std::optional<protocol::StatusReply> DialInLink::progress() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!mail_) return std::nullopt;
  protocol::StatusReply st;
  st.running = mail_->task_id;
  st.step = mail_->step;
  st.steps = mail_->steps;
  return st;
}

std::optional<Json> DialInLink::live_events(const std::string& task_id, size_t from) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!mail_ || mail_->task_id != task_id) return std::nullopt;
  Json events = Json::array();
  for (size_t i = from; i < mail_->events.size(); ++i) events.push_back(mail_->events[i]);
  return events;
}

void DialInLink::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  cv_.notify_all();
}

Result<std::optional<Json>> DialInLink::pull(const Json& capabilities, const std::string& label) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (closed_) return Status::unavailable("the coordinator is stopping");
  if (capabilities.is_object()) reported_caps_ = capabilities;
  if (!label.empty()) label_ = label;
  last_seen_ = std::chrono::steady_clock::now();
  if (mail_ && mail_->taken && !mail_->reply) {
    // The worker pulls again without reporting the task it took: it dropped it (or never got it).
    mail_->reply = HttpReply{503,
                             std::string("the worker pulled again without reporting ") +
                                 protocol::task_kind_name(mail_->kind) + " " + mail_->task_id,
                             ""};
  }
  alive_ = true;
  cv_.notify_all();
  ++pulls_held_;
  const bool got =
      cv_.wait_for(lock, poll_timeout_, [&] { return closed_ || (mail_ && !mail_->taken && !mail_->reply); });
  --pulls_held_;
  last_seen_ = std::chrono::steady_clock::now();
  if (closed_) return Status::unavailable("the coordinator is stopping");
  if (!got) return std::optional<Json>();
  mail_->taken = true;
  protocol::PulledTask task;
  task.kind = mail_->kind;
  task.ticket = mail_->ticket;
  // A whole prompt's progress reports carry its events to the client: often enough for a live progress bar.
  const int64_t report_ms = std::max<int64_t>(100, settings_.heartbeat.count() / 2);
  task.progress_ms = mail_->kind != protocol::TaskKind::shard ? std::min<int64_t>(report_ms, 250) : report_ms;
  task.request = mail_->request;
  return std::optional<Json>(protocol::to_json(task));
}

Result<bool> DialInLink::report_progress(uint64_t ticket, int64_t step, int64_t steps, size_t events_from,
                                         const Json& events) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_seen_ = std::chrono::steady_clock::now();
  if (!mail_ || mail_->ticket != ticket || mail_->reply)
    return Status::not_found("ticket " + std::to_string(ticket) + " is not current for worker '" + worker_id_ + "'");
  mail_->step = step;
  mail_->steps = steps;
  Json& have = mail_->events;
  if (events.is_array() && events_from <= have.size()) {
    for (size_t i = have.size() - events_from; i < events.size(); ++i) have.push_back(events[i]);
  }
  return mail_->interrupt;
}

Status DialInLink::report_result(uint64_t ticket, int http_status, std::string body,
                                 std::optional<protocol::TaskKind> kind) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_seen_ = std::chrono::steady_clock::now();
  if (!mail_ || mail_->ticket != ticket || mail_->reply)
    return Status::not_found("ticket " + std::to_string(ticket) + " is not current for worker '" + worker_id_ + "'");
  if (kind && *kind != mail_->kind)
    return Status::invalid_argument("ticket " + std::to_string(ticket) + " is a " + protocol::task_kind_name(mail_->kind) +
                                    " task, not a " + protocol::task_kind_name(*kind) + " task");
  mail_->reply = HttpReply{http_status, std::move(body), ""};
  cv_.notify_all();
  return Status::ok();
}

}  // namespace netdist::cluster
