// The /netdist/v1 wire protocol between a coordinator and its netdist workers: every route, its request
// and reply as a typed struct, and their JSON encoding. Both sides use these (the coordinator's routes and
// links, the worker's runner routes and its dial-in loop); the route paths and the field names are spelled
// only here (protocol.cpp).
//
// Routes a netdist worker serves (shard_runner.h), called by the coordinator's connect-out links:
//   GET  capabilities        → the capability probe (a JSON object; carries protocol_version, see kVersion)
//   GET  status[?events_from] → StatusReply
//   POST interrupt            InterruptRequest
//   POST shard                ShardRequest   → 200 safetensors {"samples"} or a task error reply
//   POST prompt               PromptRequest  → 200 PromptReply JSON (shard_runner.h) or a task error reply
//   POST tile                 TileRequest    → 200 safetensors {"tiles"} (uint8 [n, h, w, 3]) or a task error reply
// Routes a coordinator serves (coordinator.h), called by dial-in workers (dial_in.h) and operators:
//   POST pull                 PullRequest    → 200 PulledTask, 204 no work, 409 unknown worker, 400 refused
//   POST progress             ProgressRequest → ProgressReply
//   POST result?ResultQuery   the task's reply as body (what POST shard / prompt would have answered)
//   POST join                 JoinRequest (legacy connect-out registration)
//   POST drain                DrainRequest → {"ok": true} (the worker takes no new task); 404 unknown url
//   GET  cluster              the cluster's status (cluster.h status())
//   POST group/kv             GroupKvRequest → GroupKvReply (group_protocol.h: a step group's rendezvous)
// Routes any netdist server started with --share-models serves (model_share.h), called by model_fetch.h:
//   GET  models               {"models": [{kind, name, sha256, bytes}], "pending": n}
//   GET  models/<sha256>      the file's bytes, by Range
//
// from_json functions check every field's JSON type and return invalid_argument naming the field; to_json
// never fails. Thread-safety: free functions without state.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "core/status.h"

namespace netdist::cluster::protocol {

using Json = nlohmann::ordered_json;

// The protocol's version. A worker whose capabilities state another one (or none) is refused by the
// coordinator, naming both versions. Raise it with every incompatible change of a route below.
inline constexpr int kVersion = 1;
// The error type of GET models on a server started without --share-models (403).
inline constexpr const char* kModelSharingOff = "model_sharing_off";

enum class Route { capabilities, status, interrupt, shard, prompt, pull, progress, result, join, cluster, models,
                   tile, group_kv, drain };

// "/netdist/v1/shard" etc., and the method each route takes ("GET" or "POST").
const char* path(Route route);
const char* method(Route route);
// GET models lists what a --share-models server shares; GET model_path(sha256) serves one file by Range
// (model_share.h, model_fetch.h).
std::string model_path(std::string_view sha256);
// The route `path` (without query) names, if any; true when `path` is under /netdist/v1/ at all.
std::optional<Route> route_of(std::string_view path);
bool is_protocol_path(std::string_view path);

// The kinds of task a coordinator hands a worker. Wire names "shard", "prompt", "tile" (one step of a USDU
// tile job: TileRequest) and "group" (one member's part of a whole prompt run by a step group:
// group_protocol.h GroupPromptRequest).
enum class TaskKind { shard, prompt, tile, group };
const char* task_kind_name(TaskKind kind);
std::optional<TaskKind> task_kind_from_name(std::string_view name);

// --- capabilities -------------------------------------------------------------------------------------
// Adds protocol_version = kVersion to a worker's capability reply.
void stamp_version(Json& capabilities);
// OK when `capabilities` states kVersion; else unsupported naming `who`, the version it states (or that
// it states none) and this side's version.
Status check_version(const Json& capabilities, const std::string& who);

// One model file a worker has (or, `fetch`, can fetch: model_fetch.h), or a --share-models server shares.
struct ModelEntry {
  std::string kind;                   // checkpoint, lora, vae, upscale; empty = checkpoint (older workers)
  std::string name;                   // the name a loader asks for
  std::optional<std::string> sha256;  // none while not hashed yet
  uint64_t bytes = 0;
  bool fetch = false;  // not here yet: fetched from the worker's model source when a task names it
};
Json to_json(const ModelEntry& entry);
// Lenient: an entry that is not an object or has no string name is none.
std::optional<ModelEntry> model_entry_from_json(const Json& json);

// The speed figure a worker measures at its first probe (shard_runner.cpp speed_benchmark).
struct Benchmark {
  std::string model;
  double width = 0, height = 0;
  int64_t steps = 0;
  double steps_per_second = 0;
};
Json to_json(const Benchmark& benchmark);

// What the coordinator reads from a worker's capability reply. The reply is input: entries of the wrong
// JSON type are skipped, a missing field is empty, nothing throws.
struct Capabilities {
  std::vector<std::string> node_classes;
  std::vector<ModelEntry> models;
  std::optional<Benchmark> benchmark;
  double test_step_delay_ms = 0;
};
Capabilities capabilities_from_json(const Json& json);
// The fields of a capability reply that Capabilities holds, for the side that writes one; the writer adds
// its own descriptive fields (engine version, device) around them.
void put_capabilities(Json& reply, const std::vector<std::string>& node_classes, const std::vector<ModelEntry>& models,
                      const std::optional<Benchmark>& benchmark);
// Replaces the reply's model list (a worker's models change as they are hashed or fetched).
void put_models(Json& reply, const std::vector<ModelEntry>& models);

// GET models: what a --share-models server shares, and how many of its files are not hashed yet.
struct ModelList {
  std::vector<ModelEntry> models;
  int64_t pending = 0;
};
Json to_json(const ModelList& list);
// invalid_argument when it is not an object with a "models" array.
Result<ModelList> model_list_from_json(const Json& json);

// --- status -------------------------------------------------------------------------------------------
// The model transfer a worker is making (model_fetch.h), in its status reply's "model_fetch".
struct FetchProgress {
  std::string kind, name, sha256;
  uint64_t bytes_done = 0, bytes_total = 0;
  double bytes_per_second = 0;
};
Json to_json(const FetchProgress& progress);  // with "percent" of bytes_total done

struct StatusReply {
  std::optional<std::string> running;  // the shard or task id running now
  int64_t step = 0, steps = 0;
  int64_t shards_done = 0;
  size_t events_total = 0;
  std::optional<Json> events;  // with ?events_from: the running prompt's events from that index on
  std::optional<Json> model_fetch;  // with a model fetcher: its transfers (model_fetch.h progress())
};
Json to_json(const StatusReply& reply);
Result<StatusReply> status_reply_from_json(const Json& json);
// The ?events_from query value → its count; invalid_argument quoting it otherwise.
Result<size_t> parse_events_from(const std::string& value);
std::string events_from_query(size_t from);  // "events_from=N"

// --- interrupt ----------------------------------------------------------------------------------------
struct InterruptRequest {
  std::optional<std::string> shard_id;  // only this shard or task; none = whatever runs
};
Json to_json(const InterruptRequest& request);
InterruptRequest interrupt_request_from_body(const std::string& body);  // lenient: anything else = none

// --- shard --------------------------------------------------------------------------------------------
// One file a shard's or prompt's LoadImage nodes read, carried in the request's "inputs" object under the
// name the workflow gives it (shard_inputs.h).
struct InputFile {
  std::string sha256;  // hex of the bytes
  std::string data;    // base64 of the bytes
};
Json to_json(const InputFile& file);
// invalid_argument naming `name` unless it has "sha256" and "data" strings.
Result<InputFile> input_file_from_json(const std::string& name, const Json& json);

struct ShardRequest {
  std::string shard_id = "shard";
  Json workflow = Json::object();
  Json inputs;  // shard_inputs.h; null = none
};
Json to_json(const ShardRequest& request);
Result<ShardRequest> shard_request_from_json(const Json& json);

// --- prompt (a whole prompt) --------------------------------------------------------------------------
struct PromptRequest {
  std::string task_id;  // defaults to prompt_id on the wire
  std::string prompt_id;
  Json prompt = Json::object();
  Json extra_data = Json::object();
  Json outputs_to_execute = Json::array();
  Json inputs;  // null = none
};
Json to_json(const PromptRequest& request);
Result<PromptRequest> prompt_request_from_json(const Json& json);

// --- tile (one step of an Ultimate SD Upscale job, tile_jobs.h) ----------------------------------------
// `workflow` is the self-contained tile workflow (tile_jobs.h tile_workflow): the USDU node's upstream and
// one NetdistUsduTiles node (id kShardOutputId) carrying the step's geometry, settings and pixels.
struct TileRequest {
  std::string tile_id = "tile";
  Json workflow = Json::object();
  Json inputs;  // shard_inputs.h; null = none
};
Json to_json(const TileRequest& request);
Result<TileRequest> tile_request_from_json(const Json& json);

// --- dial-in: pull, progress, result ------------------------------------------------------------------
struct PullRequest {
  std::string worker_id;
  std::string url;    // a label shown in the cluster's status
  Json capabilities;  // null = as registered before
};
Json to_json(const PullRequest& request);
Result<PullRequest> pull_request_from_json(const Json& json);

// A pulled task: the shard, prompt or tile request body with its kind, ticket and how often to report progress.
struct PulledTask {
  std::optional<TaskKind> kind = TaskKind::shard;  // none: a kind this worker does not know (kind_text)
  std::string kind_text = "\"shard\"";             // the kind as sent (JSON), for messages
  uint64_t ticket = 0;
  int64_t progress_ms = 1000;
  Json request;  // to_json(ShardRequest), to_json(PromptRequest) or to_json(TileRequest)
};
Json to_json(const PulledTask& task);
// invalid_argument when it is not an object or has no ticket; a missing kind is "shard" (a coordinator
// from before whole prompts), an unknown one leaves `kind` empty. `request` is the whole body.
Result<PulledTask> pulled_task_from_json(const Json& json);

struct ProgressRequest {
  std::string worker_id;
  uint64_t ticket = 0;
  int64_t step = 0, steps = 0;
  size_t events_from = 0;
  Json events = Json::array();  // a whole prompt's events from events_from on; empty = none sent
};
Json to_json(const ProgressRequest& request);
Result<ProgressRequest> progress_request_from_json(const Json& json);

struct ProgressReply {
  bool interrupt = false;
};
Json to_json(const ProgressReply& reply);
ProgressReply progress_reply_from_json(const Json& json);  // lenient: anything else = no interrupt

// POST result's query: who reports which ticket, and the HTTP status the task's reply would have had.
struct ResultQuery {
  std::string worker_id;
  uint64_t ticket = 0;
  int status = 0;
  std::optional<TaskKind> kind;  // not stated by older workers
};
std::string to_query(const ResultQuery& query);  // "worker_id=..&ticket=..&status=..[&kind=..]"
// From the request's query values (`value(name)`); invalid_argument naming what is wrong.
Result<ResultQuery> result_query_from(const std::function<std::optional<std::string>(const std::string&)>& value);

struct JoinRequest {
  std::string url;
};
Json to_json(const JoinRequest& request);
Result<JoinRequest> join_request_from_json(const Json& json);

// {"url", "drain"?: bool (default true; false = take tasks again)}: the worker whose cluster status row has
// this url.
struct DrainRequest {
  std::string url;
  bool drain = true;
};
Result<DrainRequest> drain_request_from_json(const Json& json);

// --- one call ----------------------------------------------------------------------------------------
// Where and how a side reaches its peer: its base URL, the cluster token, TLS trust and a flag that ends
// a call early (stop()).
struct Peer {
  std::string url;
  std::string auth_token;
  std::shared_ptr<const TlsClientContext> tls;
  const std::atomic<bool>* cancel = nullptr;
};

// One protocol call: `route`'s method and path (plus "?query" when not empty), `body` as `content_type`.
// As http_call: unavailable / cancelled on transport failures, any HTTP status is a reply.
Result<HttpReply> call(const Peer& peer, Route route, std::chrono::milliseconds timeout, std::string body = "",
                       const std::string& query = "", const std::string& content_type = "application/json");

}  // namespace netdist::cluster::protocol
