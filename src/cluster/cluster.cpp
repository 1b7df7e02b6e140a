#include "cluster/cluster.h"

#include <algorithm>
#include <cstdio>

#include "cluster/comfy_worker.h"
#include "cluster/http_client.h"
#include "cluster/protocol.h"
#include "cluster/shard_inputs.h"
#include "engine/micro_batch.h"
#include "engine/runtime/tensor_io.h"
#include "server/prompt_cost.h"

namespace netdist::cluster {

// Live events of a whole prompt (comfy_worker.h relays them as they come): open while run_prompt waits.
struct EventRelay {
  std::mutex mutex;
  std::function<void(const std::string&, const Json&)> fn;
  void emit(const std::string& type, const Json& data) {
    std::lock_guard<std::mutex> lock(mutex);
    if (fn) fn(type, data);
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex);
    fn = nullptr;
  }
};

struct Cluster::Job {
  std::string id;
  Json prompt;
  std::string sampler_id;
  Requirements requirements;
  // The files its shards' (or the whole prompt's) LoadImage nodes read (shard_inputs.h), read once when the
  // job is made: a file missing here fails the prompt at once instead of counting against the workers.
  Json inputs = Json::object();
  std::vector<at::Tensor> results;  // per shard; defined once done
  std::vector<int> attempts;
  int64_t rows_done = 0;
  int64_t shards_done = 0;
  Status failure;
  bool cancelled = false;
  std::vector<Worker*> running;  // workers running one of its shards (one entry per shard)
  // A whole-prompt job (run_prompt): one task, shard 0, its reply kept once.
  bool whole = false;
  std::string prompt_id;
  Json extra_data, outputs_to_execute;
  std::optional<PromptReply> reply;
  const void* reply_worker = nullptr;  // the worker whose reply it is
  std::shared_ptr<EventRelay> relay;
  // A netdist worker's events of this prompt relayed live (run_prompt): whose, and how many of them.
  const void* live_worker = nullptr;
  size_t live_relayed = 0;
  std::atomic<bool> withdrawn{false};  // abandoned: a ComfyUI worker's runner withdraws its remote prompt
};

struct Cluster::Task {
  std::shared_ptr<Job> job;
  size_t shard = 0;
  int64_t row_begin = 0, row_end = 0;
  double units = 0;  // predicted work (cost_model.h units)
};

// A dial-in worker's mailbox: the task (a shard or a whole prompt) its thread handed over, until the worker
// reports its outcome.
struct DialInMail {
  uint64_t ticket = 0;
  std::string shard_id;  // the shard id, or a whole prompt's task id
  std::string kind;      // "shard" or "prompt"
  Json request;          // the /netdist/v1/shard or /netdist/v1/prompt request body
  bool taken = false;  // a pull carried it to the worker
  bool interrupt = false;
  int64_t step = 0, steps = 0;
  Json events = Json::array();  // a whole prompt's events so far, from its progress reports
  std::optional<HttpReply> reply;  // as POST /netdist/v1/shard or /netdist/v1/prompt would have answered
};

struct Cluster::Worker {
  std::string url;  // "local" for this process; a dial-in worker's advertised URL (a label only)
  bool local = false;
  bool dial_in = false;
  bool comfy = false;        // a stock ComfyUI server (comfy+http:// URL, comfy_worker.h): whole prompts only
  int64_t beats = 0;         // comfy: idle heartbeats; every kComfyCapsEvery-th refreshes its capabilities
  std::string id;            // dial-in worker_id
  std::optional<Json> caps;  // set while the worker is believed alive
  Json reported_caps;        // dial-in: the capabilities it registered with
  std::thread thread;
  int64_t shards_done = 0, rows_done = 0, prompts_done = 0, failures = 0;
  // Dial-in lease: renewed by every pull, progress and result; held pulls keep it alive.
  std::chrono::steady_clock::time_point last_seen;
  int pulls_held = 0;
  std::optional<DialInMail> mail;
  CostModel cost;
  std::string probe_error;  // why the last capability probe failed ("" once one succeeded)
  bool busy = false;  // running a shard that started at busy_since and was predicted at busy_units
  std::chrono::steady_clock::time_point busy_since;
  double busy_units = 0;
};

namespace {

// A task's error reply (not 200, 401 or 409) → its Status; `fault` gets whose fault the reply says it is. An input
// fault keeps the worker's message (it is the prompt's error); anything else is kInternal with the whole reply.
Status task_reply_error(const std::string& who, const std::string& what, const HttpReply& reply, TaskFault* fault) {
  const TaskErrorReply error = parse_task_error_reply(reply.body);
  *fault = error.fault;
  if (error.fault == TaskFault::kInput) return Status::invalid_argument(who + ": " + what + ": " + error.message);
  return Status::internal(who + ": " + what + " failed (" + std::to_string(reply.status) + "): " + reply.body);
}

// A worker's reply to a shard request (POST /netdist/v1/shard, or a dial-in result) → its rows.
Result<at::Tensor> decode_shard_reply(const std::string& who, const std::string& shard_id, int64_t rows,
                                      HttpReply reply, TaskFault* fault) {
  if (reply.status == 409) return Status::cancelled(who + ": shard " + shard_id + " interrupted");
  if (reply.status == 401) return Status::unauthenticated(who + ": the worker refused the auth token");
  if (reply.status != 200) return task_reply_error(who, "shard " + shard_id, reply, fault);
  ND_ASSIGN_OR_RETURN(auto weights, runtime::weights_from_buffer(std::move(reply.body), who + " shard " + shard_id));
  auto it = weights.find("samples");
  if (it == weights.end()) return Status::corruption(who + ": shard reply without 'samples'");
  if (it->second.dim() != 4 || it->second.size(0) != rows) {
    return Status::corruption(who + ": shard reply has the wrong shape");
  }
  return it->second.clone();
}

// A ComfyUI worker's heartbeat probes GET /system_stats; every this many heartbeats it re-reads
// GET /object_info too (node classes and checkpoints added or removed there).
constexpr int64_t kComfyCapsEvery = 5;

double seconds_since_epoch(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

bool Cluster::capable_within_timeout(Job& job, std::chrono::steady_clock::time_point now,
                                     std::chrono::steady_clock::time_point& last_capable, const std::string& what) {
  const bool capable = !job.running.empty() || std::any_of(workers_.begin(), workers_.end(),
                                                           [&](const auto& w) { return eligible(*w, job); });
  if (capable) last_capable = now;
  if (now - last_capable <= options_.no_worker_timeout) return true;
  job.failure = Status::unavailable("no live worker able to run " + what + " for " +
                                    std::to_string(options_.no_worker_timeout.count() / 1000) + " s" +
                                    (workers_.empty() ? " (no worker has joined: start some with --workers, --join "
                                                        "or --local-workers)"
                                                      : ""));
  return false;
}

std::deque<Cluster::Task>::iterator Cluster::task_to_take(const Worker& w, bool& declined) {
  declined = false;
  std::vector<std::deque<Task>::iterator> mine;
  std::vector<double> units;
  for (auto it = queue_.begin(); it != queue_.end() && units.size() < 256; ++it) {
    if (!eligible(w, *it->job)) continue;
    mine.push_back(it);
    units.push_back(it->units);
  }
  if (mine.empty()) return queue_.end();
  const Task& front = *mine.front();
  const auto now_tp = std::chrono::steady_clock::now();
  const double now = seconds_since_epoch(now_tp);
  std::vector<WorkerForecast> forecasts;
  size_t self = 0;
  const double measured = fastest_measured(*front.job);
  for (const auto& x : workers_) {
    const std::optional<double> spu = planning_seconds_per_unit(*x, measured);
    if (x.get() == &w) {
      self = forecasts.size();
      forecasts.push_back({now, spu});
      continue;
    }
    if (!eligible(*x, *front.job)) continue;
    double free_at = now;
    if (x->busy) {
      const double predicted = x->busy_units * spu.value_or(0.0);
      free_at = seconds_since_epoch(x->busy_since) + predicted;
      // A shard running past twice its prediction says the model is wrong for it: do not wait on it.
      if (now - seconds_since_epoch(x->busy_since) > 2 * predicted + 1.0) continue;
    }
    forecasts.push_back({free_at, spu});
  }
  const std::optional<size_t> k = shard_to_take(forecasts, self, units, now);
  declined = !k;
  return k ? mine[*k] : queue_.end();
}

Cluster::Cluster(ClusterOptions options, ShardRunner* local) : options_(std::move(options)), local_(local) {}

protocol::Peer Cluster::peer(const std::string& url, const std::atomic<bool>* cancel) const {
  return protocol::Peer{url, options_.auth_token, options_.tls, cancel};
}

Cluster::~Cluster() { stop(); }

void Cluster::spawn(std::shared_ptr<Worker> w) {
  w->thread = std::thread([this, w] { worker_loop(w); });
}

void Cluster::start() {
  // The local runner's capabilities hash its checkpoints and run a benchmark (seconds): not under mutex_,
  // which request handlers take (validation, /object_info's list of the workers' checkpoints).
  std::optional<Json> local_caps;
  if (local_) local_caps = local_->capabilities();
  std::lock_guard<std::mutex> lock(mutex_);
  if (started_) return;
  started_ = true;
  if (local_) {
    auto w = std::make_shared<Worker>();
    w->url = "local";
    w->local = true;
    w->caps = std::move(local_caps);
    w->cost.seed_from_capabilities(*w->caps);
    workers_.push_back(w);
  }
  for (const std::string& url : options_.worker_urls) {
    auto w = std::make_shared<Worker>();
    w->url = url;
    w->comfy = is_comfy_url(url);
    workers_.push_back(w);
  }
  for (auto& w : workers_) {  // also workers that joined or dialed in before start()
    if (!w->thread.joinable()) spawn(w);
  }
}

void Cluster::stop() {
  std::vector<std::shared_ptr<Worker>> workers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    halting_ = true;
    for (Task& t : queue_) {
      if (t.job->failure.is_ok()) t.job->failure = Status::unavailable("the coordinator is stopping");
    }
    queue_.clear();
    workers = workers_;
  }
  cv_.notify_all();
  if (local_) local_->interrupt();
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Cluster::add_worker(const std::string& url) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& w : workers_) {
    if (w->url == url) return;
  }
  auto w = std::make_shared<Worker>();
  w->url = url;
  w->comfy = is_comfy_url(url);
  workers_.push_back(w);
  if (started_ && !stopping_) spawn(w);
  std::fprintf(stderr, "netdist cluster: worker %s joined\n", url.c_str());
}

double Cluster::fastest_measured(const Job& job) const {
  double fastest = 0;
  for (const auto& x : workers_) {
    const auto m = x->cost.seconds_per_unit();
    if (x->cost.samples() > 0 && m && *m > 0 && eligible(*x, job) && (fastest == 0 || *m < fastest)) fastest = *m;
  }
  return fastest;
}

std::optional<double> Cluster::planning_seconds_per_unit(const Worker& w, double fastest_measured) {
  const std::optional<double> spu = w.cost.seconds_per_unit();
  // Only a benchmark seed (batch 1, so it reads slower than the batches measured on other workers): at most
  // the fastest measured worker's, so that a worker that just joined is tried and measured instead of
  // being planned out of every batch by its seed.
  if (w.cost.samples() > 0 || fastest_measured <= 0) return spu;
  return spu ? std::min(*spu, fastest_measured) : fastest_measured;
}

std::vector<double> Cluster::eligible_speeds(const Job& job) const {
  std::vector<std::optional<double>> per_unit;
  double fastest = 0;  // the smallest known seconds per unit
  const double measured = fastest_measured(job);
  for (const auto& w : workers_) {
    if (!eligible(*w, job)) continue;
    per_unit.push_back(planning_seconds_per_unit(*w, measured));
    if (per_unit.back() && *per_unit.back() > 0 && (fastest == 0 || *per_unit.back() < fastest))
      fastest = *per_unit.back();
  }
  std::vector<double> speeds;
  for (const auto& spu : per_unit) {
    // Unknown speeds count as the fastest known (as shard_to_take does), so an unmeasured worker is tried.
    const double s = spu && *spu > 0 ? *spu : fastest;
    speeds.push_back(s > 0 ? 1.0 / s : 1.0);
  }
  std::sort(speeds.rbegin(), speeds.rend());
  return speeds;
}

bool Cluster::eligible(const Worker& w, const Job& job) const {
  if (job.whole && w.local) return false;
  if (w.comfy && !job.whole) return false;  // row shards need netdist's engine (split = unsplit)
  return w.caps && missing_requirements(job.requirements, *w.caps).empty();
}

Result<PromptReply> Cluster::run_comfy_task(Worker& w, const Task& task) {
  const std::shared_ptr<Job> job = task.job;
  ComfyRun run;
  run.base_url = comfy_base_url(w.url);
  run.label = w.url;
  run.auth_token = options_.auth_token;
  run.prompt_id = job->prompt_id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    run.client_id = "netdist-" + job->prompt_id + "-" + std::to_string(++next_ticket_);
  }
  run.prompt = job->prompt;
  run.extra_data = job->extra_data;
  run.input_dir = options_.input_dir;
  run.inputs = job->inputs;  // read once when the job was made
  run.timeout = options_.shard_timeout;
  run.cancelled = [this, job] { return job->withdrawn.load() || halting_.load(); };
  if (job->relay) run.relay = [relay = job->relay](const std::string& type, const Json& data) { relay->emit(type, data); };
  return run_comfy_prompt(run);
}

Result<PromptReply> Cluster::run_prompt_task(Worker& w, const Task& task, TaskFault* fault) {
  if (w.comfy) return run_comfy_task(w, task);
  const Job& job = *task.job;
  const std::string task_id = job.id + ".prompt";
  const protocol::PromptRequest request{task_id,        job.prompt_id, job.prompt, job.extra_data, job.outputs_to_execute,
                                        job.inputs};
  std::string who = w.url;
  HttpReply reply;
  if (w.dial_in) {
    who = "dial-in worker " + w.id + " (" + w.url + ")";
    std::unique_lock<std::mutex> lock(mutex_);
    ND_ASSIGN_OR_RETURN(reply, run_dial_in(w, task, task_id, protocol::to_json(request), lock));
  } else {
    // stop() does not wait out a worker that never answers.
    ND_ASSIGN_OR_RETURN(reply, protocol::call(peer(w.url, &halting_), protocol::Route::prompt, options_.shard_timeout,
                                              protocol::to_json(request).dump()));
  }
  if (reply.status == 409) return Status::cancelled(who + ": prompt " + job.prompt_id + " interrupted");
  if (reply.status == 401) return Status::unauthenticated(who + ": the worker refused the auth token");
  if (reply.status != 200) return task_reply_error(who, "prompt " + job.prompt_id, reply, fault);
  const Json body = Json::parse(reply.body, nullptr, false);
  auto out = prompt_reply_from_json(body);
  if (!out.is_ok()) return out.status().with_context(who);
  return out;
}

Result<at::Tensor> Cluster::run_task(Worker& w, const Task& task, TaskFault* fault) {
  auto made = shard_workflow(task.job->prompt, task.job->sampler_id, task.row_begin, task.row_end);
  if (!made.is_ok()) {
    *fault = TaskFault::kInput;  // the prompt cannot be cut: no worker can run it
    return made.status();
  }
  Json workflow = std::move(*made);
  const std::string shard_id = task.job->id + "." + std::to_string(task.shard);
  if (w.local) {
    Result<at::Tensor> rows = local_->run(shard_id, workflow);
    if (!rows.is_ok()) *fault = task_fault(rows.status());
    return rows;
  }
  const protocol::ShardRequest request{shard_id, std::move(workflow),
                                       task.job->inputs.empty() ? Json() : task.job->inputs};
  if (w.dial_in) {
    std::unique_lock<std::mutex> lock(mutex_);
    ND_ASSIGN_OR_RETURN(HttpReply reply, run_dial_in(w, task, shard_id, protocol::to_json(request), lock));
    return decode_shard_reply("dial-in worker " + w.id + " (" + w.url + ")", shard_id,
                              task.row_end - task.row_begin, std::move(reply), fault);
  }
  // stop() does not wait out a worker that never answers.
  ND_ASSIGN_OR_RETURN(HttpReply reply, protocol::call(peer(w.url, &halting_), protocol::Route::shard,
                                                      options_.shard_timeout, protocol::to_json(request).dump()));
  return decode_shard_reply(w.url, shard_id, task.row_end - task.row_begin, std::move(reply), fault);
}

bool Cluster::lease_lost(const Worker& w) const {
  return w.pulls_held == 0 && std::chrono::steady_clock::now() - w.last_seen > 3 * options_.heartbeat;
}

Result<HttpReply> Cluster::run_dial_in(Worker& w, const Task& task, const std::string& shard_id, Json request,
                                       std::unique_lock<std::mutex>& lock) {
  const bool whole = task.job->whole;
  const std::string who = "dial-in worker " + w.id + " (" + w.url + ")";
  DialInMail& mail = w.mail.emplace();
  mail.ticket = ++next_ticket_;
  mail.shard_id = shard_id;
  mail.kind = whole ? "prompt" : "shard";
  mail.request = std::move(request);
  cv_.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + options_.shard_timeout;
  for (;;) {
    if (mail.reply) {
      HttpReply reply = std::move(*mail.reply);
      w.mail.reset();
      lock.unlock();
      return reply;
    }
    Status failed;
    if (stopping_) failed = Status::unavailable("the coordinator is stopping");
    else if (task.job->cancelled && !mail.taken)
      failed = Status::cancelled(who + ": " + mail.kind + " " + shard_id + " withdrawn");
    else if (lease_lost(w))
      failed = Status::unavailable(who + ": silent for " + std::to_string(3 * options_.heartbeat.count()) +
                                   " ms (lease lost) with " + mail.kind + " " + shard_id);
    else if (std::chrono::steady_clock::now() > deadline)
      failed = Status::unavailable(who + ": " + mail.kind + " " + shard_id + " timed out");
    if (!failed.is_ok()) {
      w.mail.reset();
      lock.unlock();
      return failed;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
}

Cluster::Worker* Cluster::find_dial_in(const std::string& worker_id) {
  for (auto& w : workers_) {
    if (w->dial_in && w->id == worker_id) return w.get();
  }
  return nullptr;
}

Result<PullReply> Cluster::pull(const std::string& worker_id, const Json& capabilities, const std::string& label) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) return Status::unavailable("the coordinator is stopping");
  Worker* w = find_dial_in(worker_id);
  if (capabilities.is_object()) {
    const std::string who = "dial-in worker " + worker_id + (label.empty() ? "" : " (" + label + ")");
    ND_RETURN_IF_ERROR(protocol::check_version(capabilities, who));
  }
  if (!w) {
    if (!capabilities.is_object())
      return Status::not_found("unknown worker '" + worker_id + "': pull again with its capabilities");
    auto added = std::make_shared<Worker>();
    added->dial_in = true;
    added->id = worker_id;
    added->url = label.empty() ? worker_id : label;
    workers_.push_back(added);
    if (started_) spawn(added);
    w = added.get();
    std::fprintf(stderr, "netdist cluster: worker %s (%s) dialed in\n", worker_id.c_str(), w->url.c_str());
  }
  if (capabilities.is_object()) w->reported_caps = capabilities;
  if (!label.empty()) w->url = label;
  w->last_seen = std::chrono::steady_clock::now();
  if (w->mail && w->mail->taken && !w->mail->reply) {
    // The worker pulls again without reporting the shard it took: it dropped it (or never got it).
    w->mail->reply =
        HttpReply{503, "the worker pulled again without reporting " + w->mail->kind + " " + w->mail->shard_id, ""};
  }
  if (!w->caps) w->caps = w->reported_caps;  // alive (again)
  cv_.notify_all();
  ++w->pulls_held;
  const bool got = cv_.wait_for(lock, options_.poll_timeout,
                                [&] { return stopping_ || (w->mail && !w->mail->taken && !w->mail->reply); });
  --w->pulls_held;
  w->last_seen = std::chrono::steady_clock::now();
  if (stopping_) return Status::unavailable("the coordinator is stopping");
  if (!got) return PullReply();
  DialInMail& mail = *w->mail;
  mail.taken = true;
  protocol::PulledTask task;
  task.kind = protocol::task_kind_from_name(mail.kind);
  task.ticket = mail.ticket;
  // A whole prompt's progress reports carry its events to the client: often enough for a live progress bar.
  const int64_t report_ms = std::max<int64_t>(100, options_.heartbeat.count() / 2);
  task.progress_ms = task.kind == protocol::TaskKind::prompt ? std::min<int64_t>(report_ms, 250) : report_ms;
  task.request = mail.request;
  return PullReply(protocol::to_json(task));
}

Result<bool> Cluster::report_progress(const std::string& worker_id, uint64_t ticket, int64_t step, int64_t steps,
                                      size_t events_from, const Json& events) {
  std::lock_guard<std::mutex> lock(mutex_);
  Worker* w = find_dial_in(worker_id);
  if (!w) return Status::not_found("unknown worker '" + worker_id + "'");
  w->last_seen = std::chrono::steady_clock::now();
  if (!w->mail || w->mail->ticket != ticket || w->mail->reply)
    return Status::not_found("ticket " + std::to_string(ticket) + " is not current for worker '" + worker_id + "'");
  w->mail->step = step;
  w->mail->steps = steps;
  Json& have = w->mail->events;
  if (events.is_array() && events_from <= have.size()) {
    for (size_t i = have.size() - events_from; i < events.size(); ++i) have.push_back(events[i]);
  }
  return w->mail->interrupt;
}

Status Cluster::report_result(const std::string& worker_id, uint64_t ticket, int http_status, std::string body,
                              const std::string& kind) {
  std::lock_guard<std::mutex> lock(mutex_);
  Worker* w = find_dial_in(worker_id);
  if (!w) return Status::not_found("unknown worker '" + worker_id + "'");
  w->last_seen = std::chrono::steady_clock::now();
  if (!w->mail || w->mail->ticket != ticket || w->mail->reply)
    return Status::not_found("ticket " + std::to_string(ticket) + " is not current for worker '" + worker_id + "'");
  if (!kind.empty() && kind != w->mail->kind)
    return Status::invalid_argument("ticket " + std::to_string(ticket) + " is a " + w->mail->kind + " task, not a " +
                                    kind + " task");
  w->mail->reply = HttpReply{http_status, std::move(body), ""};
  cv_.notify_all();
  return Status::ok();
}

void Cluster::worker_loop(std::shared_ptr<Worker> w) {
  for (;;) {
    bool need_caps;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (stopping_) return;
      need_caps = !w->caps;
      if (need_caps && w->dial_in) {  // a dial-in worker is alive again when it pulls
        cv_.wait_for(lock, options_.heartbeat, [&] { return stopping_ || w->caps.has_value(); });
        continue;
      }
    }
    if (need_caps) {
      Json caps;
      std::string why;
      if (w->comfy) {
        auto got = fetch_comfy_capabilities(comfy_base_url(w->url), options_.auth_token, std::chrono::seconds(30));
        if (got.is_ok()) caps = std::move(*got);
        else why = got.status().to_string();
      } else {
        using protocol::Route;
        auto reply = protocol::call(peer(w->url, &halting_), Route::capabilities, std::chrono::seconds(30));
        if (!reply.is_ok()) why = reply.status().to_string();
        else if (reply->status != 200)
          why = std::string("GET ") + protocol::path(Route::capabilities) + " answered " + std::to_string(reply->status);
        else caps = Json::parse(reply->body, nullptr, false);
        if (reply.is_ok() && reply->status == 200 && !caps.is_object()) why = "capabilities are not a JSON object";
        if (caps.is_object()) {
          if (Status v = protocol::check_version(caps, "the worker"); !v.is_ok()) {
            why = v.message();
            caps = Json();
          }
        }
      }
      std::unique_lock<std::mutex> lock(mutex_);
      if (caps.is_object()) {
        if (!w->probe_error.empty()) std::fprintf(stderr, "netdist cluster: worker %s is usable again\n", w->url.c_str());
        w->probe_error.clear();
        w->caps = caps;
        w->cost.seed_from_capabilities(caps);
        cv_.notify_all();
      } else {
        // Said once per distinct reason, so a worker that stays down does not flood the log.
        if (why != w->probe_error)
          std::fprintf(stderr, "netdist cluster: worker %s not usable: %s\n", w->url.c_str(), why.c_str());
        w->probe_error = why;
        cv_.wait_for(lock, options_.retry_delay, [&] { return stopping_; });
      }
      continue;
    }
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // The shard the earliest-finish choice gives this worker, unless others would finish all sooner (declined).
      bool declined = false;
      auto pick = [&] { return task_to_take(*w, declined); };
      if (!cv_.wait_for(lock, options_.heartbeat,
                        [&] { return stopping_ || pick() != queue_.end() || declined; })) {
        if (w->local) continue;
        if (w->dial_in) {  // its pulls are its heartbeat
          if (lease_lost(*w)) w->caps.reset();
          continue;
        }
        lock.unlock();
        if (w->comfy) {  // liveness = ComfyUI's own routes answer; capabilities refreshed now and then
          const bool refresh = ++w->beats % kComfyCapsEvery == 0;
          Result<Json> caps = Json();
          Status alive;
          if (refresh) {
            caps = fetch_comfy_capabilities(comfy_base_url(w->url), options_.auth_token,
                                            std::max(options_.heartbeat, std::chrono::milliseconds(5000)));
            alive = caps.status();
          } else {
            alive = probe_comfy_worker(comfy_base_url(w->url), options_.auth_token, options_.heartbeat);
          }
          lock.lock();
          if (!alive.is_ok()) w->caps.reset();
          else if (refresh) w->caps = std::move(*caps);
          continue;
        }
        // Heartbeat of an idle worker: one that stopped answering loses its lease.
        auto reply = protocol::call(peer(w->url, nullptr), protocol::Route::status, options_.heartbeat);
        lock.lock();
        if (!reply.is_ok() || reply->status != 200) w->caps.reset();
        continue;
      }
      if (stopping_) return;
      if (declined) {  // re-check when notified or soon: busy workers' forecasts change with time
        cv_.wait_for(lock, std::chrono::milliseconds(50));
        continue;
      }
      auto it = pick();
      task = *it;
      queue_.erase(it);
      task.job->running.push_back(w.get());
      w->busy = true;
      w->busy_since = std::chrono::steady_clock::now();
      w->busy_units = task.units;
    }
    Status failed;
    TaskFault fault = TaskFault::kWorker;
    at::Tensor rows;
    std::optional<PromptReply> reply;
    if (task.job->whole) {
      Result<PromptReply> r = run_prompt_task(*w, task, &fault);
      if (r.is_ok())
        reply = std::move(*r);
      else
        failed = r.status();
    } else {
      Result<at::Tensor> r = run_task(*w, task, &fault);
      if (r.is_ok())
        rows = std::move(*r);
      else
        failed = r.status();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    w->busy = false;
    // The cost model measures row shards (the round trip), a netdist worker's whole prompts by the seconds its
    // samplers took (the prompt's model loads, decode and PNG files would read as a slow GPU), and a ComfyUI
    // worker's whole prompts by the round trip (all it ever runs: its first finished prompt seeds its speed).
    if (failed.is_ok()) {
      const double round_trip =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - w->busy_since).count();
      if (!task.job->whole || w->comfy)
        w->cost.observe(task.units, round_trip);
      else if (reply && reply->status.is_ok() && reply->sampling_seconds > 0)
        w->cost.observe(task.units, reply->sampling_seconds);
    }
    Job& job = *task.job;
    job.running.erase(std::find(job.running.begin(), job.running.end(), w.get()));
    if (failed.is_ok()) {
      if (job.whole && !job.reply) {
        job.reply = std::move(reply);
        job.reply_worker = w.get();
        ++job.shards_done;
        ++w->shards_done;
        ++w->prompts_done;
      } else if (!job.whole && !job.results[task.shard].defined()) {
        job.results[task.shard] = rows;
        job.rows_done += task.row_end - task.row_begin;
        ++job.shards_done;
        ++w->shards_done;
        w->rows_done += task.row_end - task.row_begin;
      }
    } else if (!job.cancelled && job.failure.is_ok() && !stopping_ && fault == TaskFault::kInput) {
      // The task itself is bad (shard_runner.h TaskFault): every worker would fail it alike. The prompt fails
      // once with the worker's message; the worker stays alive and takes the next task.
      std::fprintf(stderr, "netdist cluster: shard %s.%zu on %s failed by its input: %s\n", job.id.c_str(), task.shard,
                   w->url.c_str(), failed.to_string().c_str());
      job.failure = failed.with_context("shard " + std::to_string(task.shard));
    } else if (!job.cancelled && job.failure.is_ok() && !stopping_) {
      const Status& s = failed;
      ++w->failures;
      std::fprintf(stderr, "netdist cluster: shard %s.%zu on %s failed: %s\n", job.id.c_str(), task.shard,
                   w->url.c_str(), s.to_string().c_str());
      if (!w->local) w->caps.reset();
      if (++job.attempts[task.shard] >= options_.max_attempts) {
        job.failure = s.with_context("shard " + std::to_string(task.shard) + " failed " +
                                     std::to_string(job.attempts[task.shard]) + " times");
      } else {
        queue_.push_front(task);
      }
    }
    cv_.notify_all();
  }
}

std::optional<std::string> Cluster::check_prompt(const Json& prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string message;
  const bool whole = is_whole_prompt(prompt);
  for (const std::string& sampler : splittable_samplers(prompt)) {
    const Requirements req = shard_requirements(prompt, sampler);
    bool any_known = false, any_fits = false;
    std::string lacks;
    for (const auto& w : workers_) {
      if (!w->caps) continue;
      any_known = true;
      if (w->comfy && !whole) {
        lacks += "; worker " + w->url + " is a stock ComfyUI worker (it runs only whole batch-1 prompts)";
        continue;
      }
      // A ComfyUI worker runs the prompt whole, so it needs every class and checkpoint of it.
      std::vector<std::string> missing =
          missing_requirements(w->comfy ? prompt_requirements(prompt) : req, *w->caps);
      if (missing.empty()) {
        any_fits = true;
        break;
      }
      std::string list;
      for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
      lacks += "; worker " + w->url + " lacks " + list;
    }
    if (any_known && !any_fits) {
      message += (message.empty() ? "" : "\n") + std::string("no worker can run node ") + sampler + " (" +
                 prompt[sampler].value("class_type", "") + ")" + lacks;
    }
  }
  if (message.empty()) return std::nullopt;
  return message;
}

Result<at::Tensor> Cluster::run_sampler(const Json& prompt, const std::string& sampler_id, int64_t rows,
                                        const std::function<bool(int64_t, int64_t)>& progress) {
  if (rows < 1) return Status::invalid_argument("run_sampler: empty batch");
  auto job = std::make_shared<Job>();
  job->prompt = prompt;
  job->sampler_id = sampler_id;
  job->requirements = shard_requirements(prompt, sampler_id);
  {
    ND_ASSIGN_OR_RETURN(Json workflow, shard_workflow(prompt, sampler_id, 0, rows));  // every shard reads the same files
    ND_ASSIGN_OR_RETURN(job->inputs, collect_shard_inputs(workflow, options_.input_dir));
  }
  const auto work = server::sampler_work(prompt, sampler_id);
  const double units_per_row = work ? work->units_per_row() : 1.0;
  std::vector<int64_t> bounds;
  size_t shards = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::unavailable("the coordinator is stopping");
    // No worker yet (a restarted coordinator whose dial-in workers have not pulled again, local workers still
    // starting) is waited for like no capable worker: the job fails after no_worker_timeout, naming the node.
    // Shards are runs of micro-batches (engine/micro_batch.h: any split along these bounds equals the unsplit
    // batch), one per live worker able to run it, sized by its predicted speed (shard_bounds).
    bounds = shard_bounds(micro_batch_bounds(rows), eligible_speeds(*job));
    shards = bounds.size() - 1;
    job->results.resize(shards);
    job->attempts.assign(shards, 0);
    job->id = "job" + std::to_string(++next_job_);
    for (size_t i = 0; i < shards; ++i) {
      queue_.push_back(Task{job, i, bounds[i], bounds[i + 1], units_per_row * double(bounds[i + 1] - bounds[i])});
    }
  }
  cv_.notify_all();
  int64_t steps = 0;  // the sampler's step count, once a worker's status reported it
  int64_t running_steps = 0;
  auto last_capable = std::chrono::steady_clock::now();
  auto last_poll = last_capable;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    const bool finished = job->shards_done == int64_t(shards) || !job->failure.is_ok();
    if (finished) break;
    const auto now = std::chrono::steady_clock::now();
    if (!capable_within_timeout(*job, now, last_capable, "node " + sampler_id)) break;
    if (now - last_poll >= std::chrono::milliseconds(250) && !job->running.empty()) {
      last_poll = now;
      std::vector<Worker*> running = job->running;
      std::vector<protocol::StatusReply> states;  // read under the lock: a dial-in worker reports into its mailbox
      for (Worker* w : running) {
        if (w->dial_in && w->mail) {
          protocol::StatusReply st;
          st.running = w->mail->shard_id;
          st.step = w->mail->step;
          st.steps = w->mail->steps;
          states.push_back(st);
        }
      }
      lock.unlock();
      running_steps = 0;
      for (Worker* w : running) {
        Json st;
        if (w->dial_in) continue;
        if (w->local) {
          st = local_->status();
        } else {
          auto r = protocol::call(peer(w->url, nullptr), protocol::Route::status, std::chrono::milliseconds(500));
          if (r.is_ok() && r->status == 200) st = Json::parse(r->body, nullptr, false);
        }
        if (auto parsed = protocol::status_reply_from_json(st); parsed.is_ok()) states.push_back(std::move(*parsed));
      }
      for (const protocol::StatusReply& st : states) {
        if (!st.running || st.running->rfind(job->id + ".", 0) != 0) continue;
        running_steps += st.step;
        steps = std::max(steps, st.steps);
      }
      lock.lock();
    }
    const int64_t done = job->rows_done;
    lock.unlock();
    const bool go_on = steps > 0 ? progress(std::min(steps, (done * steps + running_steps) / rows), steps)
                                 : progress(done, rows);
    lock.lock();
    if (!go_on) break;
    if (job->shards_done == int64_t(shards) || !job->failure.is_ok()) continue;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  const bool ok = job->shards_done == int64_t(shards);
  if (!ok) {
    abandon(lock, job);
    if (!job->failure.is_ok()) return job->failure;
    return Status::cancelled("interrupted");
  }
  return at::cat(job->results, 0);
}

void Cluster::abandon(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job) {
  job->cancelled = true;
  job->withdrawn = true;  // a ComfyUI worker's runner sees it and withdraws the remote prompt itself
  std::erase_if(queue_, [&](const Task& t) { return t.job == job; });
  std::vector<std::string> busy;
  bool local_busy = false;
  for (Worker* w : job->running) {
    if (w->local)
      local_busy = true;
    else if (w->dial_in && w->mail)
      w->mail->interrupt = true;  // delivered with the worker's next progress report
    else if (!w->dial_in && !w->comfy)
      busy.push_back(w->url);
  }
  lock.unlock();
  if (local_busy) local_->interrupt();
  for (const std::string& url : busy) {
    protocol::InterruptRequest request;
    if (job->whole) request.shard_id = job->id + ".prompt";
    (void)protocol::call(peer(url, nullptr), protocol::Route::interrupt, std::chrono::seconds(5),
                         job->whole ? protocol::to_json(request).dump() : "");
  }
  lock.lock();
}

Result<PromptReply> Cluster::run_prompt(const std::string& prompt_id, const Json& prompt, const Json& extra_data,
                                        const Json& outputs_to_execute,
                                        const std::function<bool()>& keep_going, const PromptEventFn& on_event) {
  auto job = std::make_shared<Job>();
  job->whole = true;
  job->relay = std::make_shared<EventRelay>();
  job->relay->fn = on_event;
  job->prompt = prompt;
  job->prompt_id = prompt_id;
  job->extra_data = extra_data;
  job->outputs_to_execute = outputs_to_execute;
  job->requirements = prompt_requirements(prompt);
  ND_ASSIGN_OR_RETURN(job->inputs, collect_shard_inputs(prompt, options_.input_dir));
  job->results.resize(1);
  job->attempts.assign(1, 0);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::unavailable("the coordinator is stopping");
    job->id = "job" + std::to_string(++next_job_);
    // Its predicted work (prompt_cost.h) lets the earliest-finish choice see a worker busy with it.
    queue_.push_back(Task{job, 0, 0, 1, server::predict_prompt_units(prompt)});
  }
  cv_.notify_all();
  auto last_capable = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (job->reply || !job->failure.is_ok()) break;
    const auto now = std::chrono::steady_clock::now();
    if (!capable_within_timeout(*job, now, last_capable, "prompt " + prompt_id)) break;
    relay_live_events(lock, *job);
    lock.unlock();
    const bool go_on = keep_going();
    lock.lock();
    if (!go_on) break;
    if (job->reply || !job->failure.is_ok()) continue;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  job->relay->close();  // from here on no worker's event reaches the caller
  if (job->reply) {
    PromptReply reply = std::move(*job->reply);
    reply.events_relayed = job->reply_worker == job->live_worker ? job->live_relayed : 0;
    return reply;
  }
  abandon(lock, job);
  if (!job->failure.is_ok()) return job->failure;
  return Status::cancelled("interrupted");
}

void Cluster::relay_live_events(std::unique_lock<std::mutex>& lock, Job& job) {
  if (job.running.size() != 1) return;
  Worker* w = job.running.front();
  if (w->local || w->comfy) return;  // a ComfyUI worker's runner relays its events itself
  if (job.live_worker != w) {  // a new attempt: its events start again at 0
    job.live_worker = w;
    job.live_relayed = 0;
  }
  Json events = Json::array();
  if (w->dial_in) {
    if (!w->mail || w->mail->shard_id != job.id + ".prompt") return;
    for (size_t i = job.live_relayed; i < w->mail->events.size(); ++i) events.push_back(w->mail->events[i]);
  } else {
    const std::string url = w->url;
    const size_t from = job.live_relayed;
    lock.unlock();
    auto r = protocol::call(peer(url, nullptr), protocol::Route::status, std::chrono::milliseconds(500), "",
                            protocol::events_from_query(from));
    lock.lock();
    if (!r.is_ok() || r->status != 200) return;
    auto st = protocol::status_reply_from_json(Json::parse(r->body, nullptr, false));
    if (!st.is_ok() || st->running != job.id + ".prompt" || !st->events) return;
    if (job.live_worker != w || job.live_relayed != from || job.reply) return;  // moved on meanwhile
    events = std::move(*st->events);
  }
  // `executed` waits for the reply: its file names become the coordinator's when the files arrive.
  job.live_relayed += events.size();
  lock.unlock();  // the client's event sink is not called under the cluster's lock
  for (const Json& e : events) {
    if (e.is_array() && e.size() == 2 && e[0].is_string() && e[0] != "executed")
      job.relay->emit(e[0].get<std::string>(), e[1]);
  }
  lock.lock();
}

int Cluster::capable_remote_workers(const Requirements& req) {
  std::lock_guard<std::mutex> lock(mutex_);
  int n = 0;
  for (const auto& w : workers_) n += !w->local && w->caps && missing_requirements(req, *w->caps).empty();
  return n;
}

int Cluster::remote_workers_alive() {
  std::lock_guard<std::mutex> lock(mutex_);
  int n = 0;
  for (const auto& w : workers_) n += !w->local && w->caps.has_value();
  return n;
}

std::vector<std::string> Cluster::worker_checkpoints() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::set<std::string> names;
  for (const auto& w : workers_) {
    if (w->local || !w->caps) continue;
    for (const Json& m : w->caps->value("models", Json::array())) {
      if (m.is_object() && m.value("name", Json()).is_string()) names.insert(m["name"].get<std::string>());
    }
  }
  return {names.begin(), names.end()};
}

Json Cluster::status() {
  std::lock_guard<std::mutex> lock(mutex_);
  Json workers = Json::array();
  for (const auto& w : workers_) {
    workers.push_back({{"url", w->url},
                       {"worker_id", w->dial_in ? Json(w->id) : Json(nullptr)},
                       {"dial_in", w->dial_in},
                       {"kind", w->comfy ? "comfy" : "netdist"},
                       {"alive", w->caps.has_value()},
                       {"shards_done", w->shards_done},
                       {"rows_done", w->rows_done},
                       {"prompts_done", w->prompts_done},
                       {"failures", w->failures},
                       {"seconds_per_unit", w->cost.seconds_per_unit() ? Json(*w->cost.seconds_per_unit()) : Json()},
                       {"samples", w->cost.samples()},
                       {"error", w->probe_error.empty() ? Json() : Json(w->probe_error)}});
  }
  return Json{{"workers", workers}, {"queued", queue_.size()}};
}

}  // namespace netdist::cluster
