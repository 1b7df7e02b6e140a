// The kinds of task the scheduler hands a worker link (worker_link.h), as types: a row shard of one
// sampler's batch, a whole prompt, or one step of an Ultimate SD Upscale job's tiles. A later kind (a per-step group) is one more alternative of
// `TaskSpec` and one more case in each link's run(); links refuse kinds they do not take (accepts()).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include <ATen/ATen.h>

#include "cluster/group_protocol.h"
#include "cluster/protocol.h"
#include "cluster/shard_runner.h"

namespace netdist::cluster {

// Live events of a whole prompt (a ComfyUI link relays them as they come): open while the job waits.
// Thread-safety: emit and close from any thread; nothing reaches `fn` after close() returned.
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

// Rows [row_begin, row_end) of one sampler's batch: `request` is the self-contained shard workflow
// (shard.h shard_workflow) with its id and input files.
struct RowShardTask {
  protocol::ShardRequest request;
  int64_t rows = 0;  // row_end - row_begin: the reply must have this many
};

// A whole prompt for one worker, under the coordinator's prompt id (`request.task_id` names the attempt's
// task on the worker). `relay` gets a ComfyUI worker's live events.
struct WholePromptTask {
  protocol::PromptRequest request;
  std::shared_ptr<EventRelay> relay;
};

// One step of an Ultimate SD Upscale job (tile_jobs.h): `request` is the self-contained tile workflow; the
// reply is the step's redrawn tiles, uint8 [tiles, h, w, 3].
struct TileTask {
  protocol::TileRequest request;
  int64_t tiles = 0;  // the reply must have this many
};

// One member's part of a whole prompt run by a step group (group_protocol.h): the worker runs the whole
// prompt as rank `request.group.rank`; rank 0's reply carries the outputs, the others' are acks.
struct GroupPromptTask {
  protocol::GroupPromptRequest request;
};

using TaskSpec = std::variant<RowShardTask, WholePromptTask, TileTask, GroupPromptTask>;

inline protocol::TaskKind task_kind(const TaskSpec& spec) {
  if (std::holds_alternative<RowShardTask>(spec)) return protocol::TaskKind::shard;
  if (std::holds_alternative<TileTask>(spec)) return protocol::TaskKind::tile;
  return std::holds_alternative<WholePromptTask>(spec) ? protocol::TaskKind::prompt : protocol::TaskKind::group;
}
// The id the worker runs it under (its status' "running"): the shard id, the prompt's task id or the tile id.
inline const std::string& task_id(const TaskSpec& spec) {
  if (const auto* s = std::get_if<RowShardTask>(&spec)) return s->request.shard_id;
  if (const auto* t = std::get_if<TileTask>(&spec)) return t->request.tile_id;
  if (const auto* g = std::get_if<GroupPromptTask>(&spec)) return g->request.prompt.task_id;
  return std::get<WholePromptTask>(spec).request.task_id;
}
// The body a netdist worker gets (POST shard / prompt, or a pulled task's request) and the route it goes to.
inline Json task_body(const TaskSpec& spec) {
  if (const auto* s = std::get_if<RowShardTask>(&spec)) return protocol::to_json(s->request);
  if (const auto* t = std::get_if<TileTask>(&spec)) return protocol::to_json(t->request);
  if (const auto* g = std::get_if<GroupPromptTask>(&spec)) return protocol::to_json(g->request);
  return protocol::to_json(std::get<WholePromptTask>(spec).request);
}
inline protocol::Route task_route(const TaskSpec& spec) {
  if (std::holds_alternative<RowShardTask>(spec)) return protocol::Route::shard;
  return std::holds_alternative<TileTask>(spec) ? protocol::Route::tile : protocol::Route::prompt;
}

// One task as a link runs it: what, plus the job's withdrawal flag (set when the job is abandoned: a link
// that has not handed it over yet drops it, a ComfyUI link withdraws its remote prompt).
struct LinkTask {
  TaskSpec spec;
  std::shared_ptr<const std::atomic<bool>> withdrawn;
};

// What running a task gave: the rows of a row shard, the tiles of a tile task or the reply of a whole prompt, and the seconds the
// cost model should learn from (none: do not learn from this task).
struct TaskOutput {
  std::variant<at::Tensor, PromptReply> value;
  std::optional<double> seconds;
};

}  // namespace netdist::cluster
