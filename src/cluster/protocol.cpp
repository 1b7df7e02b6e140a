#include "cluster/protocol.h"

#include <cstdlib>

namespace netdist::cluster::protocol {

namespace {

constexpr std::string_view kPrefix = "/netdist/v1/";

struct RouteInfo {
  Route route;
  const char* path;
  const char* method;
};

constexpr RouteInfo kRoutes[] = {
    {Route::capabilities, "/netdist/v1/capabilities", "GET"},
    {Route::status, "/netdist/v1/status", "GET"},
    {Route::interrupt, "/netdist/v1/interrupt", "POST"},
    {Route::shard, "/netdist/v1/shard", "POST"},
    {Route::prompt, "/netdist/v1/prompt", "POST"},
    {Route::pull, "/netdist/v1/pull", "POST"},
    {Route::progress, "/netdist/v1/progress", "POST"},
    {Route::result, "/netdist/v1/result", "POST"},
    {Route::join, "/netdist/v1/join", "POST"},
    {Route::cluster, "/netdist/v1/cluster", "GET"},
    {Route::models, "/netdist/v1/models", "GET"},
    {Route::tile, "/netdist/v1/tile", "POST"},
    {Route::group_kv, "/netdist/v1/group/kv", "POST"},
    {Route::drain, "/netdist/v1/drain", "POST"},
};

const RouteInfo& info(Route route) {
  for (const RouteInfo& r : kRoutes) {
    if (r.route == route) return r;
  }
  return kRoutes[0];  // unreachable: every Route is listed
}

// `json[key]` if `json` is an object holding it, else null (never inserts, never throws).
Json field(const Json& json, const char* key) {
  if (!json.is_object()) return Json();
  auto it = json.find(key);
  return it == json.end() ? Json() : *it;
}

int64_t integer_or_zero(const Json& json, const char* key) {
  const Json v = field(json, key);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}

}  // namespace

const char* path(Route route) { return info(route).path; }
const char* method(Route route) { return info(route).method; }

std::string model_path(std::string_view sha256) { return std::string(path(Route::models)) + "/" + std::string(sha256); }

std::optional<Route> route_of(std::string_view p) {
  for (const RouteInfo& r : kRoutes) {
    if (p == r.path) return r.route;
  }
  return std::nullopt;
}

bool is_protocol_path(std::string_view p) { return p.substr(0, kPrefix.size()) == kPrefix; }

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::shard: return "shard";
    case TaskKind::prompt: return "prompt";
    case TaskKind::tile: return "tile";
    case TaskKind::group: return "group";
  }
  return "shard";
}

std::optional<TaskKind> task_kind_from_name(std::string_view name) {
  if (name == "shard") return TaskKind::shard;
  if (name == "prompt") return TaskKind::prompt;
  if (name == "tile") return TaskKind::tile;
  if (name == "group") return TaskKind::group;
  return std::nullopt;
}

void stamp_version(Json& capabilities) { capabilities["protocol_version"] = kVersion; }

Status check_version(const Json& capabilities, const std::string& who) {
  const Json v = field(capabilities, "protocol_version");
  if (v.is_number_integer() && v.get<int64_t>() == kVersion) return Status::ok();
  const std::string theirs = v.is_null() ? std::string("none") : v.dump();
  return Status(StatusCode::kUnsupported, who + " speaks netdist protocol version " + theirs +
                                              ", this coordinator speaks version " + std::to_string(kVersion) +
                                              ": run the same netdist version on both");
}

Json to_json(const ModelEntry& e) {
  Json j{{"name", e.name}, {"sha256", e.sha256 ? Json(*e.sha256) : Json(nullptr)}, {"bytes", e.bytes}};
  if (!e.kind.empty()) j["kind"] = e.kind;
  if (e.fetch) j["fetch"] = true;
  return j;
}

std::optional<ModelEntry> model_entry_from_json(const Json& json) {
  const Json name = field(json, "name");
  if (!name.is_string()) return std::nullopt;
  ModelEntry e;
  e.name = name.get<std::string>();
  const Json kind = field(json, "kind"), sha = field(json, "sha256"), bytes = field(json, "bytes");
  if (kind.is_string()) e.kind = kind.get<std::string>();
  if (sha.is_string()) e.sha256 = sha.get<std::string>();
  if (bytes.is_number_unsigned()) e.bytes = bytes.get<uint64_t>();
  e.fetch = field(json, "fetch") == Json(true);
  return e;
}

Json to_json(const Benchmark& b) {
  return Json{{"model", b.model},
              {"width", b.width},
              {"height", b.height},
              {"steps", b.steps},
              {"steps_per_second", b.steps_per_second}};
}

Capabilities capabilities_from_json(const Json& json) {
  Capabilities c;
  const Json classes = field(json, "node_classes"), models = field(json, "models");
  for (const Json& n : classes.is_array() ? classes : Json::array())
    if (n.is_string()) c.node_classes.push_back(n.get<std::string>());
  for (const Json& m : models.is_array() ? models : Json::array())
    if (auto e = model_entry_from_json(m)) c.models.push_back(std::move(*e));
  const Json b = field(json, "benchmark");
  if (b.is_object()) {
    auto number = [&](const char* key) {
      const Json v = field(b, key);
      return v.is_number() ? v.get<double>() : 0.0;
    };
    Benchmark bench;
    const Json model = field(b, "model");
    if (model.is_string()) bench.model = model.get<std::string>();
    bench.width = number("width");
    bench.height = number("height");
    bench.steps = static_cast<int64_t>(number("steps"));
    bench.steps_per_second = number("steps_per_second");
    c.benchmark = bench;
  }
  const Json delay = field(json, "test_step_delay_ms");
  if (delay.is_number()) c.test_step_delay_ms = delay.get<double>();
  return c;
}

void put_models(Json& reply, const std::vector<ModelEntry>& models) {
  Json list = Json::array();
  for (const ModelEntry& m : models) list.push_back(to_json(m));
  reply["models"] = std::move(list);
}

void put_capabilities(Json& reply, const std::vector<std::string>& node_classes, const std::vector<ModelEntry>& models,
                      const std::optional<Benchmark>& benchmark) {
  reply["node_classes"] = node_classes;
  put_models(reply, models);
  reply["benchmark"] = benchmark ? to_json(*benchmark) : Json(nullptr);
}

Json to_json(const ModelList& list) {
  Json j{{"models", Json::array()}, {"pending", list.pending}};
  for (const ModelEntry& m : list.models) j["models"].push_back(to_json(m));
  return j;
}

Result<ModelList> model_list_from_json(const Json& json) {
  const Json models = field(json, "models");
  if (!models.is_array()) return Status::invalid_argument("the model list has no \"models\" array");
  ModelList list;
  for (const Json& m : models)
    if (auto e = model_entry_from_json(m)) list.models.push_back(std::move(*e));
  list.pending = integer_or_zero(json, "pending");
  return list;
}

Json to_json(const InputFile& f) { return Json{{"sha256", f.sha256}, {"data", f.data}}; }

Result<InputFile> input_file_from_json(const std::string& name, const Json& json) {
  const Json sha = field(json, "sha256"), data = field(json, "data");
  if (!sha.is_string() || !data.is_string())
    return Status::invalid_argument("shard input '" + name + "' needs {\"sha256\", \"data\"} strings");
  return InputFile{sha.get<std::string>(), data.get<std::string>()};
}

Json to_json(const FetchProgress& p) {
  return Json{{"kind", p.kind},
              {"name", p.name},
              {"sha256", p.sha256},
              {"bytes_done", p.bytes_done},
              {"bytes_total", p.bytes_total},
              {"percent", p.bytes_total ? double(p.bytes_done) * 100.0 / double(p.bytes_total) : 100.0},
              {"bytes_per_second", p.bytes_per_second}};
}

Json to_json(const StatusReply& r) {
  Json j{{"running", r.running ? Json(*r.running) : Json(nullptr)},
         {"step", r.step},
         {"steps", r.steps},
         {"shards_done", r.shards_done},
         {"events_total", r.events_total}};
  if (r.events) j["events"] = *r.events;
  if (r.model_fetch) j["model_fetch"] = *r.model_fetch;
  return j;
}

Result<StatusReply> status_reply_from_json(const Json& json) {
  if (!json.is_object()) return Status::invalid_argument("status reply is not a JSON object");
  StatusReply r;
  const Json running = field(json, "running");
  if (running.is_string()) r.running = running.get<std::string>();
  r.step = integer_or_zero(json, "step");
  r.steps = integer_or_zero(json, "steps");
  r.shards_done = integer_or_zero(json, "shards_done");
  const Json total = field(json, "events_total");
  if (total.is_number_unsigned()) r.events_total = total.get<size_t>();
  const Json events = field(json, "events");
  if (events.is_array()) r.events = events;
  const Json fetch = field(json, "model_fetch");
  if (!fetch.is_null()) r.model_fetch = fetch;
  return r;
}

Result<size_t> parse_events_from(const std::string& value) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || value[0] == '-')
    return Status::invalid_argument("events_from must be a count, not '" + value + "'");
  return size_t(n);
}

std::string events_from_query(size_t from) { return "events_from=" + std::to_string(from); }

Json to_json(const InterruptRequest& r) {
  if (!r.shard_id) return Json::object();
  return Json{{"shard_id", *r.shard_id}};
}

InterruptRequest interrupt_request_from_body(const std::string& body) {
  const Json id = field(Json::parse(body, nullptr, false), "shard_id");
  InterruptRequest r;
  if (id.is_string()) r.shard_id = id.get<std::string>();
  return r;
}

Json to_json(const ShardRequest& r) {
  Json j{{"shard_id", r.shard_id}, {"workflow", r.workflow}};
  if (!r.inputs.is_null()) j["inputs"] = r.inputs;
  return j;
}

Result<ShardRequest> shard_request_from_json(const Json& json) {
  if (!field(json, "workflow").is_object()) return Status::invalid_argument("shard body needs a \"workflow\" object");
  ShardRequest r;
  const Json id = field(json, "shard_id");
  if (!id.is_null() && !id.is_string()) return Status::invalid_argument("shard \"shard_id\" must be a string");
  if (id.is_string()) r.shard_id = id.get<std::string>();
  r.workflow = json["workflow"];
  r.inputs = field(json, "inputs");
  return r;
}

Json to_json(const PromptRequest& r) {
  Json j{{"task_id", r.task_id.empty() ? r.prompt_id : r.task_id},
         {"prompt_id", r.prompt_id},
         {"prompt", r.prompt},
         {"extra_data", r.extra_data},
         {"outputs_to_execute", r.outputs_to_execute}};
  if (!r.inputs.is_null() && !r.inputs.empty()) j["inputs"] = r.inputs;
  return j;
}

Result<PromptRequest> prompt_request_from_json(const Json& json) {
  if (!field(json, "prompt").is_object() || !field(json, "prompt_id").is_string())
    return Status::invalid_argument("prompt task body needs a \"prompt\" object and a \"prompt_id\" string");
  PromptRequest r;
  r.prompt_id = json["prompt_id"].get<std::string>();
  const Json task_id = json.contains("task_id") ? json["task_id"] : Json(r.prompt_id);
  if (!task_id.is_string()) return Status::invalid_argument("prompt task \"task_id\" must be a string");
  r.task_id = task_id.get<std::string>();
  r.prompt = json["prompt"];
  r.extra_data = json.contains("extra_data") ? json["extra_data"] : Json::object();
  r.outputs_to_execute = json.contains("outputs_to_execute") ? json["outputs_to_execute"] : Json::array();
  r.inputs = field(json, "inputs");
  return r;
}

Json to_json(const TileRequest& r) {
  Json j{{"tile_id", r.tile_id}, {"workflow", r.workflow}};
  if (!r.inputs.is_null()) j["inputs"] = r.inputs;
  return j;
}

Result<TileRequest> tile_request_from_json(const Json& json) {
  if (!field(json, "workflow").is_object()) return Status::invalid_argument("tile body needs a \"workflow\" object");
  TileRequest r;
  const Json id = field(json, "tile_id");
  if (!id.is_null() && !id.is_string()) return Status::invalid_argument("tile \"tile_id\" must be a string");
  if (id.is_string()) r.tile_id = id.get<std::string>();
  r.workflow = json["workflow"];
  r.inputs = field(json, "inputs");
  return r;
}

Json to_json(const PullRequest& r) {
  Json j{{"worker_id", r.worker_id}, {"url", r.url}};
  if (!r.capabilities.is_null()) j["capabilities"] = r.capabilities;
  return j;
}

Result<PullRequest> pull_request_from_json(const Json& json) {
  const Json id = field(json, "worker_id");
  if (!id.is_string() || id.get<std::string>().empty())
    return Status::invalid_argument("pull body needs {\"worker_id\": \"...\"}");
  PullRequest r;
  r.worker_id = id.get<std::string>();
  r.capabilities = field(json, "capabilities");
  if (!r.capabilities.is_null() && !r.capabilities.is_object())
    return Status::invalid_argument("pull \"capabilities\" must be an object");
  const Json url = field(json, "url");
  if (url.is_string()) r.url = url.get<std::string>();
  return r;
}

Json to_json(const PulledTask& t) {
  Json j = t.request;
  j["kind"] = t.kind ? task_kind_name(*t.kind) : "unknown";
  j["ticket"] = t.ticket;
  j["progress_ms"] = t.progress_ms;
  return j;
}

Result<PulledTask> pulled_task_from_json(const Json& json) {
  const Json ticket = field(json, "ticket");
  if (!json.is_object() || !ticket.is_number_unsigned()) return Status::invalid_argument("a task without a ticket");
  PulledTask t;
  t.ticket = ticket.get<uint64_t>();
  const Json kind = json.contains("kind") ? json["kind"] : Json(task_kind_name(TaskKind::shard));
  t.kind_text = kind.dump();
  t.kind = kind.is_string() ? task_kind_from_name(kind.get<std::string>()) : std::nullopt;
  const Json every = json.contains("progress_ms") ? json["progress_ms"] : Json(1000);
  t.progress_ms = every.is_number_integer() ? every.get<int64_t>() : 1000;
  t.request = json;
  return t;
}

Json to_json(const ProgressRequest& r) {
  Json j{{"worker_id", r.worker_id}, {"ticket", r.ticket}, {"step", r.step}, {"steps", r.steps}};
  if (!r.events.empty()) {
    j["events_from"] = r.events_from;
    j["events"] = r.events;
  }
  return j;
}

Result<ProgressRequest> progress_request_from_json(const Json& json) {
  if (!field(json, "worker_id").is_string() || !field(json, "ticket").is_number_unsigned())
    return Status::invalid_argument("progress body needs {\"worker_id\", \"ticket\", \"step\", \"steps\"}");
  const Json from = json.contains("events_from") ? json["events_from"] : Json(0);
  const Json events = json.contains("events") ? json["events"] : Json::array();
  if (!from.is_number_integer() || from.get<int64_t>() < 0 || !events.is_array())
    return Status::invalid_argument("progress \"events_from\" must be a count and \"events\" an array");
  ProgressRequest r;
  r.worker_id = json["worker_id"].get<std::string>();
  r.ticket = json["ticket"].get<uint64_t>();
  r.step = integer_or_zero(json, "step");
  r.steps = integer_or_zero(json, "steps");
  r.events_from = from.get<size_t>();
  r.events = events;
  return r;
}

Json to_json(const ProgressReply& r) { return Json{{"interrupt", r.interrupt}}; }

ProgressReply progress_reply_from_json(const Json& json) {
  const Json v = field(json, "interrupt");
  return ProgressReply{v.is_boolean() && v.get<bool>()};
}

std::string to_query(const ResultQuery& q) {
  return "worker_id=" + q.worker_id + "&ticket=" + std::to_string(q.ticket) + "&status=" + std::to_string(q.status) +
         (q.kind ? std::string("&kind=") + task_kind_name(*q.kind) : std::string());
}

Result<ResultQuery> result_query_from(
    const std::function<std::optional<std::string>(const std::string&)>& value) {
  const auto id = value("worker_id");
  const auto ticket = value("ticket");
  const auto status = value("status");
  ResultQuery q;
  try {
    if (ticket) q.ticket = std::stoull(*ticket);
    if (status) q.status = std::stoi(*status);
  } catch (const std::exception&) {
    q.status = 0;
  }
  if (!id || id->empty() || !ticket || q.status < 100 || q.status > 599)
    return Status::invalid_argument(
        "result needs ?worker_id=ID&ticket=N&status=HTTP_STATUS[&kind=shard|prompt|tile] and the task reply as body");
  q.worker_id = *id;
  const std::string kind = value("kind").value_or("");
  if (!kind.empty()) {
    q.kind = task_kind_from_name(kind);
    if (!q.kind) return Status::invalid_argument("result kind '" + kind + "' is not \"shard\", \"prompt\" or \"tile\"");
  }
  return q;
}

Json to_json(const JoinRequest& r) { return Json{{"url", r.url}}; }

Result<JoinRequest> join_request_from_json(const Json& json) {
  const Json url = field(json, "url");
  if (!url.is_string()) return Status::invalid_argument("join body needs {\"url\": \"http://host:port\"}");
  return JoinRequest{url.get<std::string>()};
}

Result<DrainRequest> drain_request_from_json(const Json& json) {
  const Json url = field(json, "url");
  const Json drain = field(json, "drain");
  if (!url.is_string()) return Status::invalid_argument("drain body needs {\"url\": \"<a worker's url>\"}");
  if (!drain.is_null() && !drain.is_boolean()) return Status::invalid_argument("drain \"drain\" must be true or false");
  return DrainRequest{url.get<std::string>(), drain.is_null() || drain.get<bool>()};
}

Result<HttpReply> call(const Peer& peer, Route route, std::chrono::milliseconds timeout, std::string body,
                       const std::string& query, const std::string& content_type) {
  HttpCall c;
  c.method = method(route);
  c.target = std::string(path(route)) + (query.empty() ? "" : "?" + query);
  c.body = std::move(body);
  c.content_type = content_type;
  c.auth_token = peer.auth_token;
  c.tls = peer.tls;  // a TLS verification failure names the URL and the reason
  c.timeout = timeout;
  c.cancel = peer.cancel;
  return http_call(peer.url, c);
}

}  // namespace netdist::cluster::protocol
