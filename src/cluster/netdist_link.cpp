#include "cluster/netdist_link.h"

#include "engine/runtime/tensor_io.h"

namespace netdist::cluster {

namespace {

// A task's error reply (not 200, 401 or 409) → its Status; `fault` gets whose fault the reply says it is. An
// input fault keeps the worker's message (it is the prompt's error); anything else is kInternal with the whole
// reply.
Status task_reply_error(const std::string& who, const std::string& what, const HttpReply& reply, TaskFault* fault) {
  const TaskErrorReply error = parse_task_error_reply(reply.body);
  *fault = error.fault;
  if (error.fault == TaskFault::kInput) return Status::invalid_argument(who + ": " + what + ": " + error.message);
  return Status::internal(who + ": " + what + " failed (" + std::to_string(reply.status) + "): " + reply.body);
}

Result<TaskOutput> decode_rows(const std::string& who, const RowShardTask& shard, HttpReply reply, double seconds,
                               TaskFault* fault) {
  const std::string& shard_id = shard.request.shard_id;
  if (reply.status == 409) return Status::cancelled(who + ": shard " + shard_id + " interrupted");
  if (reply.status == 401) return Status::unauthenticated(who + ": the worker refused the auth token");
  if (reply.status != 200) return task_reply_error(who, "shard " + shard_id, reply, fault);
  ND_ASSIGN_OR_RETURN(auto weights, runtime::weights_from_buffer(std::move(reply.body), who + " shard " + shard_id));
  auto it = weights.find("samples");
  if (it == weights.end()) return Status::corruption(who + ": shard reply without 'samples'");
  if (it->second.dim() != 4 || it->second.size(0) != shard.rows) {
    return Status::corruption(who + ": shard reply has the wrong shape");
  }
  return TaskOutput{it->second.clone(), seconds};
}

Result<TaskOutput> decode_tiles(const std::string& who, const TileTask& task, HttpReply reply, double seconds,
                                TaskFault* fault) {
  const std::string& tile_id = task.request.tile_id;
  if (reply.status == 409) return Status::cancelled(who + ": tile " + tile_id + " interrupted");
  if (reply.status == 401) return Status::unauthenticated(who + ": the worker refused the auth token");
  if (reply.status != 200) return task_reply_error(who, "tile " + tile_id, reply, fault);
  ND_ASSIGN_OR_RETURN(auto weights, runtime::weights_from_buffer(std::move(reply.body), who + " tile " + tile_id));
  auto it = weights.find("tiles");
  if (it == weights.end()) return Status::corruption(who + ": tile reply without 'tiles'");
  const at::Tensor& t = it->second;
  // USDU tiles are uint8 [n, h, w, 3]; upscale-model and VAE tiles float32 [n, c, h, w] (model_tiles.h).
  const bool u8 = t.scalar_type() == at::kByte && t.dim() == 4 && t.size(3) == 3;
  const bool f32 = t.scalar_type() == at::kFloat && t.dim() == 4;
  if (!(u8 || f32) || t.size(0) != task.tiles)
    return Status::corruption(who + ": tile reply has the wrong shape or type");
  return TaskOutput{t.clone(), seconds};
}

Result<TaskOutput> decode_prompt_reply(const std::string& who, const protocol::PromptRequest& request,
                                       const HttpReply& reply, TaskFault* fault) {
  const std::string& prompt_id = request.prompt_id;
  if (reply.status == 409) return Status::cancelled(who + ": prompt " + prompt_id + " interrupted");
  if (reply.status == 401) return Status::unauthenticated(who + ": the worker refused the auth token");
  if (reply.status != 200) return task_reply_error(who, "prompt " + prompt_id, reply, fault);
  auto out = prompt_reply_from_json(Json::parse(reply.body, nullptr, false));
  if (!out.is_ok()) return out.status().with_context(who);
  // The seconds its samplers took: the prompt's model loads, decode and PNG files would read as a slow GPU.
  std::optional<double> seconds;
  if (out->status.is_ok() && out->sampling_seconds > 0) seconds = out->sampling_seconds;
  return TaskOutput{std::move(*out), seconds};
}

}  // namespace

Result<TaskOutput> decode_task_reply(const std::string& who, const TaskSpec& spec, HttpReply reply, double seconds,
                                     TaskFault* fault) {
  if (const auto* shard = std::get_if<RowShardTask>(&spec)) return decode_rows(who, *shard, std::move(reply), seconds, fault);
  if (const auto* tile = std::get_if<TileTask>(&spec)) return decode_tiles(who, *tile, std::move(reply), seconds, fault);
  if (const auto* group = std::get_if<GroupPromptTask>(&spec)) {
    auto out = decode_prompt_reply(who, group->request.prompt, reply, fault);
    if (out.is_ok()) out->seconds.reset();  // a group member's time is not its own speed
    return out;
  }
  return decode_prompt_reply(who, std::get<WholePromptTask>(spec).request, reply, fault);
}

protocol::Peer NetdistLink::peer(bool cancellable) const {
  return protocol::Peer{url_, settings_.auth_token, settings_.tls, cancellable ? settings_.halting : nullptr};
}

Result<std::optional<Json>> NetdistLink::probe() {
  using protocol::Route;
  ND_ASSIGN_OR_RETURN(HttpReply reply, protocol::call(peer(true), Route::capabilities, std::chrono::seconds(30)));
  if (reply.status != 200)
    return Status::unavailable(std::string("GET ") + protocol::path(Route::capabilities) + " answered " +
                               std::to_string(reply.status));
  Json caps = Json::parse(reply.body, nullptr, false);
  if (!caps.is_object()) return Status::corruption("capabilities are not a JSON object");
  ND_RETURN_IF_ERROR(protocol::check_version(caps, "the worker"));
  return std::optional<Json>(std::move(caps));
}

Result<std::optional<Json>> NetdistLink::heartbeat() {
  auto reply = protocol::call(peer(false), protocol::Route::status, settings_.heartbeat);
  if (!reply.is_ok()) return reply.status();
  if (reply->status != 200) return Status::unavailable(url_ + ": status answered " + std::to_string(reply->status));
  return std::optional<Json>();
}

Result<TaskOutput> NetdistLink::run(const LinkTask& task, TaskFault* fault) {
  const Json body = task_body(task.spec);
  const auto start = std::chrono::steady_clock::now();
  // stop() does not wait out a worker that never answers.
  ND_ASSIGN_OR_RETURN(HttpReply reply,
                      protocol::call(peer(true), task_route(task.spec), settings_.task_timeout, body.dump()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return decode_task_reply(url_, task.spec, std::move(reply), seconds, fault);
}

void NetdistLink::interrupt(protocol::TaskKind kind, const std::string& task_id) {
  protocol::InterruptRequest request;  // a row shard: whatever the worker runs (one task at a time)
  if (kind != protocol::TaskKind::shard) request.shard_id = task_id;
  (void)protocol::call(peer(false), protocol::Route::interrupt, std::chrono::seconds(5),
                       request.shard_id ? protocol::to_json(request).dump() : "");
}

std::optional<protocol::StatusReply> NetdistLink::progress() {
  auto r = protocol::call(peer(false), protocol::Route::status, std::chrono::milliseconds(500));
  if (!r.is_ok() || r->status != 200) return std::nullopt;
  auto st = protocol::status_reply_from_json(Json::parse(r->body, nullptr, false));
  if (!st.is_ok()) return std::nullopt;
  return std::move(*st);
}

std::optional<Json> NetdistLink::live_events(const std::string& task_id, size_t from) {
  auto r = protocol::call(peer(false), protocol::Route::status, std::chrono::milliseconds(500), "",
                          protocol::events_from_query(from));
  if (!r.is_ok() || r->status != 200) return std::nullopt;
  auto st = protocol::status_reply_from_json(Json::parse(r->body, nullptr, false));
  if (!st.is_ok() || st->running != task_id || !st->events) return std::nullopt;
  return std::move(*st->events);
}

}  // namespace netdist::cluster
