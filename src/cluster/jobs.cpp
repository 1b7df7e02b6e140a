// Cluster's jobs: run_sampler cuts a sampler's batch into row-shard tasks and merges their rows, run_prompt
// queues one whole-prompt task; both wait for their tasks with progress, the no-capable-worker timeout and
// cancellation (abandon), and a whole prompt's events are relayed live.
#include <algorithm>

#include "cluster/cluster.h"
#include "cluster/cluster_state.h"
#include "cluster/shard_inputs.h"
#include "engine/micro_batch.h"
#include "server/prompt_cost.h"

namespace netdist::cluster {

bool Cluster::capable_within_timeout(Job& job, std::chrono::steady_clock::time_point now,
                                     std::chrono::steady_clock::time_point& last_capable, const std::string& what) {
  const bool capable = !job.running.empty() || std::any_of(members_.begin(), members_.end(),
                                                           [&](const auto& m) { return eligible(*m, job); });
  if (capable) last_capable = now;
  if (now - last_capable <= options_.no_worker_timeout) return true;
  job.failure = Status::unavailable("no live worker able to run " + what + " for " +
                                    std::to_string(options_.no_worker_timeout.count() / 1000) + " s" +
                                    (members_.empty() ? " (no worker has joined: start some with --workers, --join "
                                                        "or --local-workers)"
                                                      : ""));
  return false;
}

Result<at::Tensor> Cluster::run_sampler(const Json& prompt, const std::string& sampler_id, int64_t rows,
                                        const std::function<bool(int64_t, int64_t)>& progress, Plan* plan) {
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
  size_t shards = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::unavailable("the coordinator is stopping");
    // No worker yet (a restarted coordinator whose dial-in workers have not pulled again, local workers still
    // starting) is waited for like no capable worker: the job fails after no_worker_timeout, naming the node.
    // Shards are runs of micro-batches (engine/micro_batch.h: any split along these bounds equals the unsplit
    // batch), one per live worker able to run it, sized by its predicted speed (shard_bounds).
    const std::vector<double> speeds = eligible_speeds(*job);
    const std::vector<int64_t> bounds = shard_bounds(micro_batch_bounds(rows), speeds);
    double speed_sum = 0;
    for (double s : speeds) speed_sum += s;
    job->predicted_s = speed_sum > 0 ? units_per_row * double(rows) / speed_sum : 0;
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
    if (job->shards_done == int64_t(shards) || !job->failure.is_ok()) break;
    const auto now = std::chrono::steady_clock::now();
    if (!capable_within_timeout(*job, now, last_capable, "node " + sampler_id)) break;
    if (now - last_poll >= std::chrono::milliseconds(250) && !job->running.empty()) {
      last_poll = now;
      poll_progress(lock, *job, running_steps, steps);
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
  if (job->shards_done != int64_t(shards)) {
    abandon(lock, job);
    if (!job->failure.is_ok()) return job->failure;
    return Status::cancelled("interrupted");
  }
  if (plan) *plan = Plan{"rows", job->done_by, job->predicted_s};
  return at::cat(job->results, 0);
}

void Cluster::poll_progress(std::unique_lock<std::mutex>& lock, const Job& job, int64_t& running_steps,
                            int64_t& steps) {
  std::vector<WorkerLink*> links;
  for (Member* m : job.running) links.push_back(m->link.get());
  const std::string prefix = job.id + ".";
  lock.unlock();  // a link may call its worker
  running_steps = 0;
  for (WorkerLink* link : links) {
    const std::optional<protocol::StatusReply> st = link->progress();
    if (!st || !st->running || st->running->rfind(prefix, 0) != 0) continue;
    running_steps += st->step;
    steps = std::max(steps, st->steps);
  }
  lock.lock();
}

void Cluster::abandon(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job) {
  job->cancelled = true;
  *job->withdrawn = true;  // a link that has not handed the task over drops it; a ComfyUI link withdraws it
  std::erase_if(queue_, [&](const Task& t) { return t.job == job; });
  std::vector<std::pair<WorkerLink*, std::string>> running;  // each with the task id it runs
  for (Member* m : job->running) {
    const auto rank = std::find(job->group_members.begin(), job->group_members.end(), m);
    const size_t shard = job->grouped() && rank != job->group_members.end() ? size_t(rank - job->group_members.begin()) : 0;
    running.emplace_back(m->link.get(), job->task_id(shard));
  }
  lock.unlock();
  for (const auto& [link, id] : running) link->interrupt(job->kind, id);
  lock.lock();
}

Result<PromptReply> Cluster::run_prompt(const std::string& prompt_id, const Json& prompt, const Json& extra_data,
                                        const Json& outputs_to_execute,
                                        const std::function<bool()>& keep_going, const PromptEventFn& on_event) {
  auto job = std::make_shared<Job>();
  job->kind = protocol::TaskKind::prompt;
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
    const double units = server::predict_prompt_units(prompt);
    const std::vector<double> speeds = eligible_speeds(*job);
    job->predicted_s = speeds.empty() ? 0 : units / speeds.front();
    queue_.push_back(Task{job, 0, 0, 1, units});
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
    reply.events_relayed = job->reply_member == job->live_member ? job->live_relayed : 0;
    reply.plan = plan_to_json(Plan{"whole", {job->reply_member->url()}, job->predicted_s});
    return reply;
  }
  abandon(lock, job);
  if (!job->failure.is_ok()) return job->failure;
  return Status::cancelled("interrupted");
}

void Cluster::relay_live_events(std::unique_lock<std::mutex>& lock, Job& job) {
  if (job.running.size() != 1) return;
  Member* m = job.running.front();
  if (job.live_member != m) {  // a new attempt: its events start again at 0
    job.live_member = m;
    job.live_relayed = 0;
  }
  const size_t from = job.live_relayed;
  WorkerLink* link = m->link.get();
  lock.unlock();
  // nullopt: a link that relays its events itself (ComfyUI) or none to relay now.
  std::optional<Json> events = link->live_events(job.task_id(0), from);
  lock.lock();
  if (!events) return;
  if (job.live_member != m || job.live_relayed != from || job.reply) return;  // moved on meanwhile
  // `executed` waits for the reply: its file names become the coordinator's when the files arrive.
  job.live_relayed += events->size();
  lock.unlock();  // the client's event sink is not called under the cluster's lock
  for (const Json& e : *events) {
    if (e.is_array() && e.size() == 2 && e[0].is_string() && e[0] != "executed")
      job.relay->emit(e[0].get<std::string>(), e[1]);
  }
  lock.lock();
}

}  // namespace netdist::cluster
