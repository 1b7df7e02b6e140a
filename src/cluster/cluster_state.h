// Cluster's private state, shared by its three source files: cluster.cpp (membership, the dial-in entry
// points, queries), scheduler.cpp (the link loop: probe, pick, run, account; planning) and jobs.cpp
// (run_sampler, run_prompt: a job's tasks, progress, abandonment), tile_jobs.cpp (run_tiles). Not for other files.
#pragma once

#include <thread>

#include "cluster/cluster.h"
#include "cluster/cost_model.h"

namespace netdist::cluster {

// What a caller asked for: one sampler's batch (row shards) or one whole prompt, and its outcome.
struct Cluster::Job {
  std::string id;
  protocol::TaskKind kind = protocol::TaskKind::shard;
  Json prompt;
  std::string sampler_id;  // row shards
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
  std::vector<Member*> running;  // members running one of its tasks (one entry per task)
  std::vector<std::string> done_by;  // URLs of the members whose results were kept, each once
  double predicted_s = 0;            // the cost model's prediction when it was queued (plan.h)
  // Tile tasks (run_tiles): each task's workflow, and the URL of the member whose result was kept.
  std::vector<Json> tile_workflows;
  std::vector<std::string> task_workers;
  // A whole prompt (run_prompt): one task, shard 0, its reply kept once.
  std::string prompt_id;
  Json extra_data, outputs_to_execute;
  std::optional<PromptReply> reply;
  const Member* reply_member = nullptr;  // the member whose reply it is
  std::shared_ptr<EventRelay> relay;
  // A netdist worker's events of this prompt relayed live (run_prompt): whose, and how many of them.
  const Member* live_member = nullptr;
  size_t live_relayed = 0;
  // Abandoned: a link that has not handed the task over drops it; a ComfyUI link withdraws its remote prompt.
  std::shared_ptr<std::atomic<bool>> withdrawn = std::make_shared<std::atomic<bool>>(false);

  // A step group's prompt (group_jobs.cpp): task `shard` is rank `shard`, pinned to group_members[shard].
  std::vector<const Member*> group_members;
  protocol::GroupSpec group;

  bool whole() const { return kind == protocol::TaskKind::prompt; }
  bool grouped() const { return kind == protocol::TaskKind::group; }
  // The id a worker runs task `shard` of this job under.
  std::string task_id(size_t shard) const {
    if (grouped()) return id + ".rank" + std::to_string(shard);
    return id + "." + (whole() ? std::string("prompt") : std::to_string(shard));
  }
};

// One queued task of a job: shard `shard` (rows [row_begin, row_end)), tile task `shard` (row_end = its tile
// count), or a whole prompt (shard 0).
struct Cluster::Task {
  std::shared_ptr<Job> job;
  size_t shard = 0;
  int64_t row_begin = 0, row_end = 0;
  double units = 0;  // predicted work (cost_model.h units)
};

// The scheduler's record of one worker link: what it reported, what it did, what it is predicted to do,
// and its link loop's thread.
struct Cluster::Member {
  std::unique_ptr<WorkerLink> link;
  std::optional<Json> caps;  // set while the worker is believed alive
  std::thread thread;        // its link loop
  int64_t shards_done = 0, rows_done = 0, prompts_done = 0, failures = 0;
  CostModel cost;
  ExchangeCost exchange;  // its step groups' measured seconds per collective (cost_model.h)
  std::string probe_error;  // why the last capability probe failed ("" once one succeeded)
  bool busy = false;        // running a task that started at busy_since and was predicted at busy_units
  std::chrono::steady_clock::time_point busy_since;
  double busy_units = 0;
  double busy_seconds = 0;  // seconds spent in finished tasks (status(): busy_seconds_total)
  bool draining = false;    // set_draining: takes no new task
  std::string task_id, task_kind, task_prompt_id;  // the running task, while busy (status(): "task")

  std::string url() const { return link->identity().url; }
};

}  // namespace netdist::cluster
