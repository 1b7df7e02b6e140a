// The coordinator's cluster: its members (one per worker link) and the scheduler that hands them tasks.
//
// Names (docs/ARCHITECTURE.md "Glossary"): a *worker* is a process that runs tasks (a netdist worker, a
// stock ComfyUI server, or this process's own ShardRunner). The coordinator reaches each through a *link*
// (worker_link.h: LocalLink, NetdistLink for connect-out URLs, DialInLink for `netdist worker --join`,
// ComfyLink for comfy+http:// URLs), which keeps that kind's own state and speaks the protocol
// (protocol.h). The cluster keeps one *member* per link (what it reported, its cost model, its counters)
// and runs one *link loop* thread per member: probe until alive → wait for a task it should take (pick) →
// link.run(task) → account. Tasks are of a kind (task.h): a row shard of a sampler's batch, or a whole
// prompt; a link refuses the kinds it never runs (the local runner takes no whole prompts, a ComfyUI
// server no row shards).
//
//  - connect-out (static --workers URLs, or the legacy join): the coordinator posts each task to the worker
//    and probes an idle one with its status route every `heartbeat`;
//  - dial-in (`netdist worker --join`, dial_in.h): the worker makes every request. It long-polls pull();
//    the task its link loop picked waits in the link's mailbox until a pull takes it, and the loop waits for
//    report_result(). report_progress() carries step/steps and answers whether to interrupt. Any pull,
//    progress or result renews the worker's lease; a worker silent for 3 × heartbeat while no pull of it is
//    held is dead (its task goes back to the queue). A worker unknown here (a coordinator restart) is told so
//    (kNotFound) and registers again by pulling with its capabilities. A worker whose capabilities state
//    another protocol version (protocol.h kVersion) is refused, naming both versions.
// Each link loop PULLS the next task its worker is able to run (capability matching: it has every node
// class and checkpoint the task needs, and its link accepts the task's kind) from one shared FIFO queue, so a
// fast worker simply takes more tasks. Before taking one it asks the cost model (cost_model.h: per-worker
// seconds per unit, seeded from the capabilities benchmark, fitted from finished tasks) whether another
// eligible worker would finish it sooner, busy ones included; if so it leaves the task and re-checks when
// notified or after 50 ms (the last shard of a batch waits for the fast worker instead of going to a slow
// one). A task whose worker fails (connection refused or reset, timeout, lease lost, a worker-side error)
// goes back to the front of the queue and the worker must show it is alive again (its link's probe)
// before it gets another; a task's result is kept once, so retries never duplicate rows. A task that failed
// max_attempts times fails its prompt with the last error. A task whose error reply says its input is at
// fault (shard_runner.h TaskFault) fails its prompt at once with the worker's message, is not retried and
// does not count against the worker, which stays alive. A task whose nodes read input files (LoadImage)
// carries them (shard_inputs.h), read from input_dir.
//
// Whole prompts: run_prompt queues a whole-prompt task on the same queue, for one worker that has every
// node class and checkpoint of it. The same failover rules apply. A ComfyUI worker's events reach
// run_prompt's `on_event` live through its link; a netdist worker's through its link's live_events.
//
// Split = unsplit: run_sampler cuts a sampler's batch into runs of micro-batches (engine/micro_batch.h), one
// run per live capable worker, sized by predicted speed (shard.h shard_bounds); every row is bit-identical to
// the unsplit sampler's (engine.h: rows draw the full-batch noise; the UNet runs one micro-batch per call
// whatever the split), and the rows are merged in row order.
// Sources: cluster.cpp (membership, dial-in entry points, queries), scheduler.cpp (the link loop, the pick,
// accounting, planning), jobs.cpp (run_sampler, run_prompt), tile_jobs.cpp (run_tiles: USDU tile steps); private state in cluster_state.h.
// Thread-safety: every public member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "cluster/protocol.h"
#include "cluster/task.h"
#include "cluster/worker_link.h"
#include "cluster/cost_model.h"
#include "cluster/group_kv.h"
#include "cluster/plan.h"
#include "cluster/shard.h"
#include "cluster/shard_runner.h"
#include "core/status.h"

namespace netdist::cluster {

class DialInLink;

struct ClusterOptions {
  std::vector<std::string> worker_urls;  // --workers
  std::string auth_token;                // sent to workers as "Authorization: Bearer"
  std::shared_ptr<const TlsClientContext> tls;  // https:// worker URLs (--tls-ca); null = system CA store
  std::chrono::milliseconds shard_timeout{600000};
  std::chrono::milliseconds retry_delay{300};           // between capability probes of an unreachable worker
  int max_attempts = 4;                                 // per shard, over all workers
  std::chrono::milliseconds no_worker_timeout{120000};  // a batch no live worker can run fails after this
  std::chrono::milliseconds heartbeat{2000};  // an idle worker is probed this often; no answer = not alive
  std::chrono::milliseconds poll_timeout{15000};  // a dial-in pull is held this long before "no work"
  std::chrono::milliseconds group_timeout{60000};  // a step group's rendezvous and each of its collectives
  std::string input_dir = "input";  // where the files that shards' LoadImage nodes name are read
};

// What a dial-in pull gets: a task with "kind", "ticket" and "progress_ms" (how often to report progress)
// added to its request body: "kind": "shard" → the /netdist/v1/shard body; "kind": "prompt" → the
// /netdist/v1/prompt body (a whole prompt). Or nothing when poll_timeout passed.
using PullReply = std::optional<Json>;

class Cluster {
 public:
  // `local`, if not null, renders shards in this process too and must outlive the cluster.
  Cluster(ClusterOptions options, ShardRunner* local);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  void start();
  void stop();  // idempotent; shards still queued fail their prompts with kUnavailable
  // Adds a connect-out worker by URL (--workers, legacy join); a URL already known is not duplicated.
  void add_worker(const std::string& url);
  // Drains (true) or undrains the worker whose status url is `url`: a draining worker finishes what it runs
  // and takes no new task nor group place. not_found naming the url when no worker has it.
  Status set_draining(const std::string& url, bool draining);

  // Dial-in. pull: `worker_id` asks for work, holding up to poll_timeout; `capabilities` (null = as
  // reported before) registers an unknown id, `label` is the URL shown in status(). kNotFound when the id
  // is unknown and no capabilities came; kUnavailable while stopping.
  Result<PullReply> pull(const std::string& worker_id, const Json& capabilities, const std::string& label);
  // Progress of the shard handed out as `ticket`: true = interrupt it. kNotFound when the worker or the
  // ticket is not current (stop running it). For a whole prompt, `events` are its events from index
  // `events_from` on (as GET /netdist/v1/status?events_from gives them); the ones not yet here are kept
  // for run_prompt to relay live.
  Result<bool> report_progress(const std::string& worker_id, uint64_t ticket, int64_t step, int64_t steps,
                               size_t events_from = 0, const Json& events = Json::array());
  // The outcome of `ticket`: `http_status` and `body` as POST /netdist/v1/shard (kind "shard": 200 +
  // safetensors, or an error JSON) or /netdist/v1/prompt (kind "prompt": JSON) would have answered.
  // `kind` (empty = not stated) must be the ticket's: invalid_argument naming both otherwise. kNotFound
  // when the worker or the ticket is not current.
  Status report_result(const std::string& worker_id, uint64_t ticket, int http_status, std::string body,
                       const std::string& kind = "");

  // Capability check for a whole prompt: nullopt when, for every splittable sampler, some known worker
  // has what it needs (or no worker has reported capabilities yet); else a message naming, per worker,
  // what is missing.
  std::optional<std::string> check_prompt(const Json& prompt);

  // Renders rows [0, rows) of sampler `sampler_id` of `prompt` on the workers and returns them merged in
  // row order ([rows, C, h, w] float32 CPU). `progress(value, max)` is called about every 100 ms: once a
  // worker's GET /netdist/v1/status reported the sampler's step count S, as one machine's sampler
  // progress (max = S, value = steps of finished rows plus steps of running shards, divided by rows);
  // before that as (rows done, rows). Returning false interrupts: queued shards are dropped, running ones
  // are interrupted on their workers, and the result is kCancelled. `plan`, if set, gets mode "rows", the
  // workers whose shards were kept and the predicted seconds (total units / sum of eligible speeds).
  Result<at::Tensor> run_sampler(const Json& prompt, const std::string& sampler_id, int64_t rows,
                                 const std::function<bool(int64_t done, int64_t total)>& progress,
                                 Plan* plan = nullptr);

  // Runs a whole prompt on one capable worker (connect-out: POST /netdist/v1/prompt; dial-in: its mailbox)
  // with the coordinator's prompt_id and returns its reply (the prompt's own status, outputs, events,
  // files). `keep_going()` is polled about every 100 ms; false interrupts: a queued task is dropped, a
  // running one is interrupted on its worker, and the result is kCancelled. kUnavailable when no live
  // worker could run it for no_worker_timeout.
  // `on_event`, if set, gets the events a ComfyUI worker sends while it runs the prompt (comfy_worker.h:
  // already under `prompt_id`), from a cluster thread, never after run_prompt returned. The reply's `plan`
  // is mode "whole", the worker whose reply it is and the predicted seconds on the fastest eligible worker.
  using PromptEventFn = std::function<void(const std::string& type, const Json& data)>;
  Result<PromptReply> run_prompt(const std::string& prompt_id, const Json& prompt, const Json& extra_data,
                                 const Json& outputs_to_execute, const std::function<bool()>& keep_going,
                                 const PromptEventFn& on_event = {});

  // One step of an Ultimate SD Upscale wave as a tile task (tile_jobs.h): its tile job, its tile count (the
  // reply must have as many) and its predicted work (cost_model.h units).
  struct TileSpec {
    Json tile_job;
    int64_t tiles = 1;
    double units = 0;
  };
  // Per spec, the redrawn tiles (uint8 [tiles, h, w, 3]; float32 for model tiles) and the URL of the worker that redrew them.
  struct TileRun {
    std::vector<at::Tensor> tiles;
    std::vector<std::string> workers;
  };
  // Runs one tile task per spec of USDU node `node_id` of `prompt` on the workers (any order, any worker,
  // failover as for row shards) and returns their results in spec order. `progress(done, total)` (specs
  // done) is called about every 100 ms; false interrupts as in run_sampler (kCancelled). Defined in
  // tile_jobs.cpp.
  Result<TileRun> run_tiles(const Json& prompt, const std::string& node_id, const std::vector<TileSpec>& specs,
                            const std::function<bool(int64_t done, int64_t total)>& progress);
  // Tile tasks of any kind (run_tiles' USDU steps; model_tiles.h's upscale-model and VAE tiles): one
  // self-contained workflow per task (its output node kShardOutputId gives the task's tiles, uint8 or
  // float32 [tiles, ...]), their tile counts and units (specs[i].tile_job unused), and what a worker needs.
  // Runs and returns as run_tiles. Defined in tile_jobs.cpp.
  struct TileTasks {
    std::vector<Json> workflows;
    std::vector<TileSpec> specs;
    Requirements requirements;
  };
  Result<TileRun> run_tile_tasks(const Json& prompt, const std::string& node_id, TileTasks tasks,
                                 const std::function<bool(int64_t done, int64_t total)>& progress);

  // How many workers other than this process are alive and have every node class and checkpoint of `req`.
  int capable_remote_workers(const Requirements& req);
  // How many workers other than this process are alive.
  int remote_workers_alive();
  // The checkpoint names that live remote workers report, sorted, each once (a coordinator lists them,
  // nodes::NodeEnv::set_remote_checkpoints).
  std::vector<std::string> worker_checkpoints();

  // {"workers": [{"url", "worker_id" (dial-in) | null, "dial_in", "kind", "alive", "device" (the
  //   capabilities' device: {"name", "type", ...}, null until probed), "shards_done", "rows_done",
  //   "prompts_done", "failures", "seconds_per_unit" (null until known), "samples" (shards measured),
  //   "busy_seconds_total" (seconds spent in tasks, the running one included), "draining", "task" (null
  //   when idle, else {"id", "kind", "prompt_id" (whole prompts and groups, else null), "seconds", "step",
  //   "steps"}), "error" (why the last capability probe failed, null once one succeeded)}], "queued": n}
  //   (shards_done counts row shards and whole prompts.)
  // With `with_steps`, a busy worker is asked for its task's step (the link's progress(), up to 500 ms each,
  // outside the lock); without, "step" and "steps" stay null.
  Json status(bool with_steps = true);

  // The plans of running prompts (plan.h): the coordinator's samplers record, its backend takes.
  PlanLog& plans() { return plans_; }

  // --- step groups (group_jobs.cpp; group_protocol.h) ---
  // The live, idle workers other than this process whose links take group tasks (netdist workers) and that
  // have every node class and checkpoint of `prompt`, fastest first, and the seconds per unit of the fastest
  // (nullopt when unknown), and the largest measured seconds per collective among them (cost_model.h
  // ExchangeCost: what their step groups reported; nullopt when none was measured).
  struct GroupCandidates {
    std::vector<std::string> urls;
    std::optional<double> seconds_per_unit;
    std::optional<double> exchange_s;
  };
  GroupCandidates group_candidates(const Json& prompt);
  // Runs a whole prompt on a step group of `size` idle capable workers in `mode` ("cfg", "tiles", "cfg+tiles",
  // "rows+cfg"; group_protocol.h GroupSpec): each gets the prompt with its rank (TaskKind::group) and the
  // members' speeds (the tile shares), the members meet through group_kv() (open while the prompt runs),
  // rank 0's reply is returned with plan {mode (group_plan.h plan_mode_name), the members, predicted_s, and
  // detail: group_plan.h group_plan_record}; every member's
  // exchange seconds feed its ExchangeCost. A member that fails,
  // dies or refuses to join fails the whole group at once (no retry; the others are interrupted): the caller
  // re-plans (coordinator.cpp runs it whole). unavailable when fewer than `size` such workers are idle now.
  Result<PromptReply> run_group(const std::string& prompt_id, const Json& prompt, const Json& extra_data,
                                const Json& outputs_to_execute, const std::string& mode, int size,
                                double predicted_s, const std::function<bool()>& keep_going);
  GroupKv& group_kv() { return group_kv_; }
  // The URL group members reach this coordinator's group/kv route at (serve: its first --listen address);
  // empty: dial-in workers use their --join URL.
  void set_self_url(const std::string& url);

 private:
  struct Job;
  struct Task;
  struct Member;
  // --- membership (cluster.cpp) ---
  LinkSettings link_settings() const;
  // Adds `link` as a member (mutex_ held); its link loop starts now if the cluster runs.
  Member& add_member(std::unique_ptr<WorkerLink> link);
  DialInLink* find_dial_in(const std::string& worker_id);  // mutex_ held
  void spawn(std::shared_ptr<Member> m);
  // --- the link loop (scheduler.cpp): probe until alive → wait → pick → link.run(task) → account ---
  void link_loop(std::shared_ptr<Member> m);
  // Probes a member without capabilities; false when stopping.
  bool probe(Member& m);
  // Waits up to a heartbeat for a task `m` should take and takes it off the queue; nullopt when there is
  // none (an idle heartbeat ran) or the cluster stops (`stop` set).
  std::optional<Task> take_task(Member& m, bool& stop);
  void idle_heartbeat(Member& m, std::unique_lock<std::mutex>& lock);
  // The task as its link runs it (a row shard's workflow is cut here); a prompt that cannot be cut is an
  // input fault.
  Result<LinkTask> link_task(const Task& task, TaskFault* fault) const;
  void account(Member& m, const Task& task, Result<TaskOutput> out, TaskFault fault);
  // A step group's rank finished (lock held): rank 0's reply is kept; any failure fails the group's job.
  void account_group_task(Member& m, const Task& task, Result<TaskOutput> out);
  bool eligible(const Member& m, const Job& job) const;
  // Relative speeds (1 / seconds per unit, fastest first) of the members believed alive that can run `job`;
  // empty when none is. Lock held.
  std::vector<double> eligible_speeds(const Job& job) const;
  // The smallest measured (not only seeded) seconds per unit among the members eligible for `job`; 0 when
  // none is measured (mutex_ held).
  double fastest_measured(const Job& job) const;
  // The seconds per unit the planner uses for `m`: its cost model's, except that a member with only a
  // benchmark seed counts as at most `fastest_measured` (when > 0).
  static std::optional<double> planning_seconds_per_unit(const Member& m, double fastest_measured);
  // The queued task `m` should take now by earliest predicted finish (cost_model.h shard_to_take), or end():
  // nothing `m` may run (declined = false), or other members would finish all of it sooner (declined =
  // true). Lock held.
  std::deque<Task>::iterator task_to_take(const Member& m, bool& declined);
  // --- jobs (jobs.cpp) ---
  // Called with the lock held while a job waits: true while some live member can run it (or one is running
  // it); after no_worker_timeout without one, sets the job's failure naming `what` and returns false.
  bool capable_within_timeout(Job& job, std::chrono::steady_clock::time_point now,
                              std::chrono::steady_clock::time_point& last_capable, const std::string& what);
  // Steps of `job`'s running row shards as their workers report them: adds to running_steps, raises steps.
  void poll_progress(std::unique_lock<std::mutex>& lock, const Job& job, int64_t& running_steps, int64_t& steps);
  // Gives up on an unfinished job: drops its queued tasks and interrupts the links running one.
  void abandon(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job);
  // Relays the events a netdist worker has recorded so far for the whole prompt `job` (its link's
  // live_events) to the job's client, except `executed` (its file names are rewritten with the reply).
  // Takes `lock` (held on entry and exit) off around the link call and the relay.
  void relay_live_events(std::unique_lock<std::mutex>& lock, Job& job);

  ClusterOptions options_;
  ShardRunner* local_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  std::vector<std::shared_ptr<Member>> members_;
  bool started_ = false, stopping_ = false;
  std::atomic<bool> halting_{false};  // stopping_, readable without the lock (links' calls poll it)
  uint64_t next_job_ = 0;
  PlanLog plans_;
  GroupKv group_kv_;
  std::string self_url_;  // guarded by mutex_
};

}  // namespace netdist::cluster
