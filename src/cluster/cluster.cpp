// Cluster: membership (links added and started), the dial-in entry points and the queries. The link loop
// and planning are in scheduler.cpp, the jobs in jobs.cpp; the shared state in cluster_state.h.
#include "cluster/cluster.h"

#include <algorithm>
#include <set>

#include "cluster/cluster_state.h"
#include "cluster/comfy_link.h"
#include "cluster/comfy_worker.h"
#include "cluster/dial_in_link.h"
#include "cluster/local_link.h"
#include "cluster/netdist_link.h"
#include "cluster/protocol.h"
#include "core/log.h"

namespace netdist::cluster {

Cluster::Cluster(ClusterOptions options, ShardRunner* local) : options_(std::move(options)), local_(local) {}

Cluster::~Cluster() { stop(); }

LinkSettings Cluster::link_settings() const {
  LinkSettings s;
  s.auth_token = options_.auth_token;
  s.tls = options_.tls;
  s.task_timeout = options_.shard_timeout;
  s.heartbeat = options_.heartbeat;
  s.input_dir = options_.input_dir;
  s.halting = &halting_;
  return s;
}

namespace {

// A connect-out link for a --workers or joined URL: a stock ComfyUI server or a netdist worker.
std::unique_ptr<WorkerLink> connect_out_link(const std::string& url, const LinkSettings& settings) {
  if (is_comfy_url(url)) return std::make_unique<ComfyLink>(url, settings);
  return std::make_unique<NetdistLink>(url, settings);
}

}  // namespace

Cluster::Member& Cluster::add_member(std::unique_ptr<WorkerLink> link) {
  auto m = std::make_shared<Member>();
  m->link = std::move(link);
  members_.push_back(m);
  if (started_ && !stopping_) spawn(m);
  return *m;
}

void Cluster::spawn(std::shared_ptr<Member> m) {
  m->thread = std::thread([this, m] { link_loop(m); });
}

void Cluster::start() {
  // The local runner's capabilities hash its checkpoints and run a benchmark (seconds): not under mutex_,
  // which request handlers take (validation, /object_info's list of the workers' checkpoints).
  std::optional<Json> local_caps;
  if (local_) local_caps = local_->capabilities();
  std::lock_guard<std::mutex> lock(mutex_);
  if (started_) return;
  if (local_) {
    Member& m = add_member(std::make_unique<LocalLink>(*local_, *local_caps));
    m.caps = std::move(local_caps);
    m.cost.seed_from_capabilities(*m.caps);
  }
  for (const std::string& url : options_.worker_urls) add_member(connect_out_link(url, link_settings()));
  started_ = true;
  for (auto& m : members_) {  // also workers that joined or dialed in before start()
    if (!m->thread.joinable()) spawn(m);
  }
}

void Cluster::stop() {
  std::vector<std::shared_ptr<Member>> members;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    halting_ = true;
    for (Task& t : queue_) {
      if (t.job->failure.is_ok()) t.job->failure = Status::unavailable("the coordinator is stopping");
    }
    queue_.clear();
    members = members_;
  }
  cv_.notify_all();
  for (auto& m : members) m->link->close();  // held pulls and tasks waiting for a dial-in reply end now
  for (auto& m : members) {
    if (m->thread.joinable()) m->thread.join();
  }
}

void Cluster::add_worker(const std::string& url) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& m : members_) {
    if (m->url() == url) return;
  }
  add_member(connect_out_link(url, link_settings()));
  log::info("cluster: worker {} joined", url);
}

DialInLink* Cluster::find_dial_in(const std::string& worker_id) {
  for (auto& m : members_) {
    auto* link = dynamic_cast<DialInLink*>(m->link.get());
    if (link && link->identity().worker_id == worker_id) return link;
  }
  return nullptr;
}

Result<PullReply> Cluster::pull(const std::string& worker_id, const Json& capabilities, const std::string& label) {
  DialInLink* link = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::unavailable("the coordinator is stopping");
    if (capabilities.is_object()) {
      const std::string who = "dial-in worker " + worker_id + (label.empty() ? "" : " (" + label + ")");
      ND_RETURN_IF_ERROR(protocol::check_version(capabilities, who));
    }
    link = find_dial_in(worker_id);
    if (!link) {
      if (!capabilities.is_object())
        return Status::not_found("unknown worker '" + worker_id + "': pull again with its capabilities");
      auto added = std::make_unique<DialInLink>(worker_id, label, capabilities, link_settings(), options_.poll_timeout);
      link = added.get();
      add_member(std::move(added));
      log::info("cluster: worker {} ({}) dialed in", worker_id, link->identity().url);
    }
  }
  // Members are never removed: the link outlives this call. The pull is held without the cluster's lock.
  return link->pull(capabilities, label);
}

Result<bool> Cluster::report_progress(const std::string& worker_id, uint64_t ticket, int64_t step, int64_t steps,
                                      size_t events_from, const Json& events) {
  DialInLink* link = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    link = find_dial_in(worker_id);
  }
  if (!link) return Status::not_found("unknown worker '" + worker_id + "'");
  return link->report_progress(ticket, step, steps, events_from, events);
}

Status Cluster::report_result(const std::string& worker_id, uint64_t ticket, int http_status, std::string body,
                              const std::string& kind) {
  DialInLink* link = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    link = find_dial_in(worker_id);
  }
  if (!link) return Status::not_found("unknown worker '" + worker_id + "'");
  std::optional<protocol::TaskKind> stated;
  if (!kind.empty()) {
    stated = protocol::task_kind_from_name(kind);
    if (!stated) return Status::invalid_argument("result kind '" + kind + "' is not \"shard\", \"prompt\" or \"tile\"");
  }
  return link->report_result(ticket, http_status, std::move(body), stated);
}

std::optional<std::string> Cluster::check_prompt(const Json& prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string message;
  const bool whole = is_whole_prompt(prompt);
  for (const std::string& sampler : splittable_samplers(prompt)) {
    const Requirements req = shard_requirements(prompt, sampler);
    bool any_known = false, any_fits = false;
    std::string lacks;
    for (const auto& m : members_) {
      if (!m->caps) continue;
      any_known = true;
      const std::string refusal = m->link->refuses(protocol::TaskKind::shard);
      if (!refusal.empty() && !whole) {
        lacks.append("; worker ").append(m->url()).append(" ").append(refusal);
        continue;
      }
      // A link that takes whole prompts only runs the prompt whole, so it needs every class and checkpoint of it.
      std::vector<std::string> missing = missing_requirements(refusal.empty() ? req : prompt_requirements(prompt), *m->caps);
      if (missing.empty()) {
        any_fits = true;
        break;
      }
      lacks.append("; worker ").append(m->url()).append(" lacks ");
      for (size_t i = 0; i < missing.size(); ++i) lacks.append(i ? ", " : "").append(missing[i]);
    }
    if (any_known && !any_fits) {  // (appends: GCC 12 -O3 warns falsely on `"literal" + std::string&&` here)
      if (!message.empty()) message += '\n';
      message.append("no worker can run node ").append(sampler).append(" (");
      message.append(prompt[sampler].value("class_type", "")).append(")").append(lacks);
    }
  }
  if (message.empty()) return std::nullopt;
  return message;
}

int Cluster::capable_remote_workers(const Requirements& req) {
  std::lock_guard<std::mutex> lock(mutex_);
  int n = 0;
  for (const auto& m : members_) n += !m->link->in_process() && m->caps && missing_requirements(req, *m->caps).empty();
  return n;
}

int Cluster::remote_workers_alive() {
  std::lock_guard<std::mutex> lock(mutex_);
  int n = 0;
  for (const auto& m : members_) n += !m->link->in_process() && m->caps.has_value();
  return n;
}

std::vector<std::string> Cluster::worker_checkpoints() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::set<std::string> names;
  for (const auto& m : members_) {
    if (m->link->in_process() || !m->caps) continue;
    for (const protocol::ModelEntry& model : protocol::capabilities_from_json(*m->caps).models) names.insert(model.name);
  }
  return {names.begin(), names.end()};
}

Status Cluster::set_draining(const std::string& url, bool draining) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& m : members_) {
    if (m->url() != url) continue;
    if (m->draining != draining) log::info("cluster: worker {} {}", url, draining ? "draining" : "takes tasks again");
    m->draining = draining;
    cv_.notify_all();
    return Status::ok();
  }
  return Status::not_found("no worker with url '" + url + "' (see GET /netdist/v1/cluster)");
}

Json Cluster::status(bool with_steps) {
  std::unique_lock<std::mutex> lock(mutex_);
  Json workers = Json::array();
  struct BusyMember {
    size_t index;
    std::shared_ptr<Member> member;
    std::string task_id;
  };
  std::vector<BusyMember> busy;  // asked for their step below, unlocked
  const auto now = std::chrono::steady_clock::now();
  for (const auto& m : members_) {
    const LinkIdentity id = m->link->identity();
    const double running_s = m->busy ? std::chrono::duration<double>(now - m->busy_since).count() : 0.0;
    Json task;
    if (m->busy) {
      task = {{"id", m->task_id}, {"kind", m->task_kind},
              {"prompt_id", m->task_prompt_id.empty() ? Json() : Json(m->task_prompt_id)},
              {"seconds", running_s}, {"step", nullptr}, {"steps", nullptr}};
      if (with_steps) busy.push_back({workers.size(), m, m->task_id});
    }
    workers.push_back({{"url", id.url},
                       {"worker_id", id.worker_id ? Json(*id.worker_id) : Json(nullptr)},
                       {"dial_in", id.dial_in},
                       {"kind", id.kind},
                       {"alive", m->caps.has_value()},
                       {"device", m->caps && m->caps->contains("device") ? (*m->caps)["device"] : Json()},
                       {"shards_done", m->shards_done},
                       {"rows_done", m->rows_done},
                       {"prompts_done", m->prompts_done},
                       {"failures", m->failures},
                       {"seconds_per_unit", m->cost.seconds_per_unit() ? Json(*m->cost.seconds_per_unit()) : Json()},
                       {"samples", m->cost.samples()},
                       {"busy_seconds_total", m->busy_seconds + running_s},
                       {"draining", m->draining},
                       {"task", task},
                       {"error", m->probe_error.empty() ? Json() : Json(m->probe_error)}});
  }
  Json out{{"workers", workers}, {"queued", queue_.size()}};
  lock.unlock();  // a link may call its worker for the step
  for (const BusyMember& b : busy) {
    const std::optional<protocol::StatusReply> st = b.member->link->progress();
    if (!st || !st->running || *st->running != b.task_id) continue;
    out["workers"][b.index]["task"]["step"] = st->step;
    out["workers"][b.index]["task"]["steps"] = st->steps;
  }
  return out;
}

}  // namespace netdist::cluster
