// Cluster's scheduler half: one link loop per member (probe until alive → wait for a task it should take →
// link.run(task) → account), the earliest-finish pick and the planning numbers it uses.
#include <algorithm>

#include "cluster/cluster.h"
#include "cluster/cluster_state.h"
#include "core/log.h"

namespace netdist::cluster {

namespace {

// "shard N" (appends: GCC 12 -O3 warns falsely on `"literal" + std::string&&` in some inlining contexts).
std::string shard_name(size_t shard) {
  std::string name = "shard ";
  name.append(std::to_string(shard));
  return name;
}

double seconds_since_epoch(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

void Cluster::link_loop(std::shared_ptr<Member> m) {
  const log::Scope scope("", m->url());  // this thread's messages name its worker
  for (;;) {
    bool alive;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      alive = m->caps.has_value();
    }
    if (!alive) {
      if (!probe(*m)) return;
      continue;
    }
    bool stop = false;
    std::optional<Task> task = take_task(*m, stop);
    if (stop) return;
    if (!task) continue;
    TaskFault fault = TaskFault::kWorker;
    Result<LinkTask> link_task_made = link_task(*task, &fault);
    Result<TaskOutput> out = link_task_made.is_ok() ? m->link->run(*link_task_made, &fault)
                                                    : Result<TaskOutput>(link_task_made.status());
    account(*m, *task, std::move(out), fault);
  }
}

bool Cluster::probe(Member& m) {
  Result<std::optional<Json>> caps = m.link->probe();
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) return false;
  if (caps.is_ok() && !caps->has_value()) return true;  // nothing to say yet (a dial-in worker not pulling)
  const std::string url = m.url();
  if (caps.is_ok()) {
    if (!m.probe_error.empty()) log::info("cluster: worker {} is usable again", url);
    m.probe_error.clear();
    m.caps = std::move(**caps);
    if (m.link->seeds_speed()) m.cost.seed_from_capabilities(*m.caps);
    cv_.notify_all();
    return true;
  }
  // Said once per distinct reason, so a worker that stays down does not flood the log.
  const std::string why = caps.status().code() == StatusCode::kUnsupported ? caps.status().message()
                                                                            : caps.status().to_string();
  if (why != m.probe_error) log::warn("cluster: worker {} not usable: {}", url, why);
  m.probe_error = why;
  cv_.wait_for(lock, options_.retry_delay, [&] { return stopping_; });
  return !stopping_;
}

std::optional<Cluster::Task> Cluster::take_task(Member& m, bool& stop) {
  std::unique_lock<std::mutex> lock(mutex_);
  // The task the earliest-finish choice gives this member, unless others would finish all sooner (declined).
  bool declined = false;
  auto pick = [&] { return task_to_take(m, declined); };
  if (!cv_.wait_for(lock, options_.heartbeat, [&] { return stopping_ || pick() != queue_.end() || declined; })) {
    idle_heartbeat(m, lock);
    return std::nullopt;
  }
  if (stopping_) {
    stop = true;
    return std::nullopt;
  }
  if (declined) {  // re-check when notified or soon: busy members' forecasts change with time
    cv_.wait_for(lock, std::chrono::milliseconds(50));
    return std::nullopt;
  }
  auto it = pick();
  Task task = *it;
  queue_.erase(it);
  task.job->running.push_back(&m);
  m.busy = true;
  m.busy_since = std::chrono::steady_clock::now();
  m.busy_units = task.units;
  m.task_id = task.job->task_id(task.shard);
  m.task_kind = protocol::task_kind_name(task.job->kind);
  m.task_prompt_id = task.job->prompt_id;
  return task;
}

void Cluster::idle_heartbeat(Member& m, std::unique_lock<std::mutex>& lock) {
  lock.unlock();  // the link may call its worker
  Result<std::optional<Json>> beat = m.link->heartbeat();
  lock.lock();
  if (!beat.is_ok())
    m.caps.reset();  // not alive: probed again before it gets a task
  else if (beat->has_value())
    m.caps = std::move(**beat);
}

Result<LinkTask> Cluster::link_task(const Task& task, TaskFault* fault) const {
  const Job& job = *task.job;
  LinkTask out;
  out.withdrawn = job.withdrawn;
  if (job.grouped()) {  // rank task.shard of the job's step group (group_jobs.cpp)
    protocol::GroupSpec spec = job.group;
    spec.rank = int(task.shard);
    out.spec = GroupPromptTask{protocol::GroupPromptRequest{
        protocol::PromptRequest{job.task_id(task.shard), job.prompt_id, job.prompt, job.extra_data,
                                job.outputs_to_execute, job.inputs},
        std::move(spec)}};
    return out;
  }
  if (job.whole()) {
    out.spec = WholePromptTask{
        protocol::PromptRequest{job.task_id(0), job.prompt_id, job.prompt, job.extra_data, job.outputs_to_execute,
                                job.inputs},
        job.relay};
    return out;
  }
  if (job.kind == protocol::TaskKind::tile) {
    out.spec = TileTask{protocol::TileRequest{job.task_id(task.shard), job.tile_workflows[task.shard],
                                              job.inputs.empty() ? Json() : job.inputs},
                        task.row_end - task.row_begin};
    return out;
  }
  auto made = shard_workflow(job.prompt, job.sampler_id, task.row_begin, task.row_end);
  if (!made.is_ok()) {
    *fault = TaskFault::kInput;  // the prompt cannot be cut: no worker can run it
    return made.status();
  }
  out.spec = RowShardTask{protocol::ShardRequest{job.task_id(task.shard), std::move(*made),
                                                 job.inputs.empty() ? Json() : job.inputs},
                          task.row_end - task.row_begin};
  return out;
}

void Cluster::account(Member& m, const Task& task, Result<TaskOutput> out, TaskFault fault) {
  std::lock_guard<std::mutex> lock(mutex_);
  m.busy = false;
  m.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - m.busy_since).count();
  // The cost model learns from the seconds the link measured (task.h TaskOutput: a row shard's round trip, a
  // netdist worker's sampling seconds for a whole prompt, a ComfyUI worker's round trip).
  if (out.is_ok() && out->seconds) m.cost.observe(task.units, *out->seconds);
  Job& job = *task.job;
  job.running.erase(std::find(job.running.begin(), job.running.end(), &m));
  if (out.is_ok() && std::find(job.done_by.begin(), job.done_by.end(), m.url()) == job.done_by.end())
    job.done_by.push_back(m.url());
  if (job.grouped()) {
    account_group_task(m, task, std::move(out));
  } else if (out.is_ok()) {
    if (job.whole() && !job.reply) {
      job.reply = std::move(std::get<PromptReply>(out->value));
      job.reply_member = &m;
      ++job.shards_done;
      ++m.shards_done;
      ++m.prompts_done;
    } else if (!job.whole() && !job.results[task.shard].defined()) {
      job.results[task.shard] = std::get<at::Tensor>(out->value);
      if (task.shard < job.task_workers.size()) job.task_workers[task.shard] = m.url();
      job.rows_done += task.row_end - task.row_begin;
      ++job.shards_done;
      ++m.shards_done;
      m.rows_done += task.row_end - task.row_begin;
    }
  } else if (!job.cancelled && job.failure.is_ok() && !stopping_ && fault == TaskFault::kInput) {
    // The task itself is bad (shard_runner.h TaskFault): every worker would fail it alike. The prompt fails
    // once with the worker's message; the worker stays alive and takes the next task.
    log::warn("cluster: shard {}.{} on {} failed by its input: {}", job.id, task.shard, m.url(),
              out.status().to_string());
    job.failure = out.status().with_context(shard_name(task.shard));
  } else if (!job.cancelled && job.failure.is_ok() && !stopping_) {
    const Status& s = out.status();
    ++m.failures;
    log::warn("cluster: shard {}.{} on {} failed: {}", job.id, task.shard, m.url(), s.to_string());
    if (m.link->reprobe_after_failure()) m.caps.reset();
    if (++job.attempts[task.shard] >= options_.max_attempts) {
      std::string what = shard_name(task.shard);
      what.append(" failed ").append(std::to_string(job.attempts[task.shard])).append(" times");
      job.failure = s.with_context(what);
    } else {
      queue_.push_front(task);
    }
  }
  cv_.notify_all();
}

void Cluster::account_group_task(Member& m, const Task& task, Result<TaskOutput> out) {
  Job& job = *task.job;
  const std::string who = "rank " + std::to_string(task.shard) + " (" + m.url() + ") of step group " + job.group.group_id;
  Status failed = out.is_ok() ? std::get<PromptReply>(out->value).status : out.status();
  if (failed.is_ok()) {
    ++m.shards_done;
    const PromptReply& reply = std::get<PromptReply>(out->value);
    m.exchange.observe(reply.exchange_seconds, reply.exchanges);  // this member's per-link cost
    if (task.shard == 0 && !job.reply) {
      job.reply = std::move(std::get<PromptReply>(out->value));
      job.reply_member = &m;
      ++m.prompts_done;
    }
    return;
  }
  if (!out.is_ok()) {  // the worker itself failed (a dead one must show it is alive before its next task)
    ++m.failures;
    if (m.link->reprobe_after_failure()) m.caps.reset();
  }
  if (job.cancelled || !job.failure.is_ok() || stopping_) {
    log::info("cluster: {} ended after the group failed: {}", who, failed.to_string());
    return;
  }
  // No retry of one rank: the caller re-plans the whole prompt (a lost member fails the others' collectives).
  log::warn("cluster: {} failed: {}", who, failed.to_string());
  job.failure = failed.with_context(who);
}

bool Cluster::eligible(const Member& m, const Job& job) const {
  if (m.draining) return false;
  if (!m.link->refuses(job.kind).empty()) return false;  // e.g. row shards need netdist's engine
  return m.caps && missing_requirements(job.requirements, *m.caps).empty();
}

double Cluster::fastest_measured(const Job& job) const {
  double fastest = 0;
  for (const auto& x : members_) {
    const auto spu = x->cost.seconds_per_unit();
    if (x->cost.samples() > 0 && spu && *spu > 0 && eligible(*x, job) && (fastest == 0 || *spu < fastest)) fastest = *spu;
  }
  return fastest;
}

std::optional<double> Cluster::planning_seconds_per_unit(const Member& m, double fastest_measured) {
  const std::optional<double> spu = m.cost.seconds_per_unit();
  // Only a benchmark seed (batch 1, so it reads slower than the batches measured on other workers): at most
  // the fastest measured worker's, so that a worker that just joined is tried and measured instead of
  // being planned out of every batch by its seed.
  if (m.cost.samples() > 0 || fastest_measured <= 0) return spu;
  return spu ? std::min(*spu, fastest_measured) : fastest_measured;
}

std::vector<double> Cluster::eligible_speeds(const Job& job) const {
  std::vector<std::optional<double>> per_unit;
  double fastest = 0;  // the smallest known seconds per unit
  const double measured = fastest_measured(job);
  for (const auto& m : members_) {
    if (!eligible(*m, job)) continue;
    per_unit.push_back(planning_seconds_per_unit(*m, measured));
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

std::deque<Cluster::Task>::iterator Cluster::task_to_take(const Member& m, bool& declined) {
  declined = false;
  std::vector<std::deque<Task>::iterator> mine;
  std::vector<double> units;
  for (auto it = queue_.begin(); it != queue_.end() && units.size() < 256; ++it) {
    if (it->job->grouped()) {  // a step group's rank goes to the member picked for it, at once
      if (it->job->group_members[it->shard] == &m) return it;
      continue;
    }
    if (!eligible(m, *it->job)) continue;
    mine.push_back(it);
    units.push_back(it->units);
  }
  if (mine.empty()) return queue_.end();
  const Task& front = *mine.front();
  const double now = seconds_since_epoch(std::chrono::steady_clock::now());
  std::vector<WorkerForecast> forecasts;
  size_t self = 0;
  const double measured = fastest_measured(*front.job);
  for (const auto& x : members_) {
    const std::optional<double> spu = planning_seconds_per_unit(*x, measured);
    if (x.get() == &m) {
      self = forecasts.size();
      forecasts.push_back({now, spu});
      continue;
    }
    if (!eligible(*x, *front.job)) continue;
    double free_at = now;
    if (x->busy) {
      const double predicted = x->busy_units * spu.value_or(0.0);
      free_at = seconds_since_epoch(x->busy_since) + predicted;
      // A task running past twice its prediction says the model is wrong for it: do not wait on it.
      if (now - seconds_since_epoch(x->busy_since) > 2 * predicted + 1.0) continue;
    }
    forecasts.push_back({free_at, spu});
  }
  const std::optional<size_t> k = shard_to_take(forecasts, self, units, now);
  declined = !k;
  return k ? mine[*k] : queue_.end();
}

}  // namespace netdist::cluster
