#include "cluster/local_link.h"

#include <chrono>

namespace netdist::cluster {

std::string LocalLink::refuses(protocol::TaskKind kind) const {
  if (kind == protocol::TaskKind::shard || kind == protocol::TaskKind::tile) return "";
  return "is this process's own runner (the coordinator's executor uses its engine)";
}

Result<TaskOutput> LocalLink::run(const LinkTask& task, TaskFault* fault) {
  const auto* shard = std::get_if<RowShardTask>(&task.spec);
  const auto* tile = std::get_if<TileTask>(&task.spec);
  if (!shard && !tile) return Status::internal("the local runner was given a task of kind " +
                                               std::string(protocol::task_kind_name(task_kind(task.spec))));
  const auto start = std::chrono::steady_clock::now();
  // Input files are read from this process's own input folder: the request's copies are not needed. A tile
  // workflow's output node gives its tiles as a shard's gives rows (tile_jobs.h).
  Result<at::Tensor> rows = shard ? runner_.run(shard->request.shard_id, shard->request.workflow)
                                  : runner_.run(tile->request.tile_id, tile->request.workflow);
  if (!rows.is_ok()) {
    *fault = task_fault(rows.status());
    return rows.status();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return TaskOutput{std::move(*rows), seconds};
}

std::optional<protocol::StatusReply> LocalLink::progress() {
  auto st = protocol::status_reply_from_json(runner_.status());
  if (!st.is_ok()) return std::nullopt;
  return std::move(*st);
}

}  // namespace netdist::cluster
