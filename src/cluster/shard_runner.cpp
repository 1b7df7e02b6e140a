#include "cluster/shard_runner.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <tuple>

#include "cluster/group_protocol.h"
#include "cluster/protocol.h"
#include "cluster/shard.h"
#include "cluster/shard_inputs.h"
#include "core/base64.h"
#include "engine/runtime/tensor_io.h"
#include "graph/validate.h"
#include "io/files.h"
#include "io/sha256.h"
#include "nodes/step_group_binding.h"

namespace netdist::cluster {

namespace {

// Also times the sampling: a node that reports step progress is a sampler, and the time from its
// "executing" event to the next node's (or to the end) counts in sampling_seconds().
class ShardSink : public graph::EventSink {
 public:
  // `on_record` (with `record`) sees each recorded event as it is recorded.
  ShardSink(std::function<void(int64_t, int64_t)> on_progress, bool record = false,
            std::function<void(const Json&)> on_record = nullptr)
      : on_progress_(std::move(on_progress)), record_(record), on_record_(std::move(on_record)) {}
  void event(const std::string& type, graph::Json data) override {
    if (type == "executing") {
      close_node();
      node_started_ = Clock::now();
      in_node_ = data.is_object() && !data.value("node", Json()).is_null();
    }
    if (type == "progress") {
      node_samples_ = true;
      on_progress_(data.value("value", int64_t(0)), data.value("max", int64_t(0)));
    }
    if (type == "execution_error") error_ = data;
    if (record_ && type != "preview_image") {
      events_.push_back(Json::array({type, data}));
      if (on_record_) on_record_(events_.back());
    }
  }
  double sampling_seconds() {
    close_node();
    return sampling_seconds_;
  }
  graph::Json error_;
  Json events_ = Json::array();

 private:
  using Clock = std::chrono::steady_clock;
  void close_node() {
    if (in_node_ && node_samples_)
      sampling_seconds_ += std::chrono::duration<double>(Clock::now() - node_started_).count();
    in_node_ = node_samples_ = false;
  }
  std::function<void(int64_t, int64_t)> on_progress_;
  bool record_;
  std::function<void(const Json&)> on_record_;
  Clock::time_point node_started_;
  bool in_node_ = false, node_samples_ = false;
  double sampling_seconds_ = 0;
};

server::Response error_reply(int status, const std::string& type, const std::string& message) {
  return server::error_response(status, type, message);
}

}  // namespace

// Input faults are those every worker would hit: wrong values and shapes, unsupported models. A file this
// worker lacks (kNotFound) or a task that does not validate here (kUnavailable: the coordinator validated it,
// so this worker differs) is this worker's, and the task is tried on another.
TaskFault task_fault(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnsupported: return TaskFault::kInput;
    default: return TaskFault::kWorker;
  }
}

const char* task_fault_name(TaskFault fault) { return fault == TaskFault::kInput ? "input" : "worker"; }

server::Response task_error_reply(const std::string& type, const Status& status) {
  const TaskFault fault = task_fault(status);
  const int code = status.code() == StatusCode::kCancelled ? 409 : fault == TaskFault::kInput ? 400 : 500;
  server::Response r = error_reply(code, type, status.to_string());
  Json body = Json::parse(r.body, nullptr, false);
  if (body.is_object() && body["error"].is_object()) {
    body["error"]["fault"] = task_fault_name(fault);
    r.body = body.dump();
  }
  return r;
}

TaskErrorReply parse_task_error_reply(const std::string& body) {
  TaskErrorReply out;
  out.message = body;
  const Json j = Json::parse(body, nullptr, false);
  if (!j.is_object() || !j["error"].is_object()) return out;
  const Json& error = j["error"];
  if (error.value("message", Json()).is_string()) out.message = error["message"].get<std::string>();
  if (error.value("fault", Json()) == "input") out.fault = TaskFault::kInput;
  return out;
}

ShardRunner::ShardRunner(const graph::NodeRegistry& registry, std::shared_ptr<nodes::NodeEnv> env,
                         ShardRunnerOptions options)
    : registry_(registry), env_(std::move(env)), options_(std::move(options)), executor_(registry) {}

Status ShardRunner::lock_for_task(std::unique_lock<std::timed_mutex>& lock, const std::string& task_id) {
  lock = std::unique_lock<std::timed_mutex>(run_mutex_, std::defer_lock);
  if (lock.try_lock_for(options_.busy_timeout)) return Status::ok();
  std::lock_guard<std::mutex> s(status_mutex_);
  return Status::unavailable("task " + task_id + ": this worker is still running " + running_.value_or("a task") +
                             " after waiting " + std::to_string(options_.busy_timeout.count() / 1000) + " s for it");
}

Result<at::Tensor> ShardRunner::run(const std::string& shard_id, const Json& workflow, const Json& inputs) {
  std::unique_lock<std::timed_mutex> lock;
  ND_RETURN_IF_ERROR(lock_for_task(lock, "shard " + shard_id));
  if (options_.models) ND_RETURN_IF_ERROR(options_.models->prepare(workflow).with_context("shard " + shard_id));
  auto installed = install_shard_inputs(workflow, inputs, env_->options().input_dir);
  if (!installed.is_ok()) return installed.status().with_context("shard " + shard_id);
  graph::ValidationResult v = graph::validate_prompt(*installed, registry_);
  if (!v.ok())
    return Status::unavailable("shard " + shard_id + " does not validate here: " + v.error_body.dump());
  {
    std::lock_guard<std::mutex> s(status_mutex_);
    running_ = shard_id;
    step_ = steps_ = 0;
  }
  ShardSink sink([this](int64_t value, int64_t max) {
    {
      std::lock_guard<std::mutex> s(status_mutex_);
      step_ = value;
      steps_ = max;
    }
    if (options_.test_step_delay_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.test_step_delay_ms));
  });
  graph::ExecutionOutcome outcome =
      executor_.execute(*v.validated, shard_id, Json::object(), sink, interrupt_);
  interrupt_ = false;
  {
    std::lock_guard<std::mutex> s(status_mutex_);
    running_.reset();
    if (outcome.success) ++shards_done_;
  }
  if (!outcome.success)
    return outcome.status.is_ok() ? Status::internal("shard " + shard_id + " failed") : outcome.status;
  const Json& ui = outcome.outputs.value(kShardOutputId, Json::object());
  if (!ui.contains("netdist_latent") || !ui["netdist_latent"].is_array() || ui["netdist_latent"].empty()) {
    return Status::internal("shard " + shard_id + " produced no latent");
  }
  ND_ASSIGN_OR_RETURN(std::string bytes, base64_decode(ui["netdist_latent"][0].get<std::string>()));
  ND_ASSIGN_OR_RETURN(auto weights, runtime::weights_from_buffer(std::move(bytes), "shard " + shard_id));
  auto it = weights.find("samples");
  if (it == weights.end()) return Status::internal("shard " + shard_id + " latent has no 'samples' tensor");
  return it->second.clone();
}

void ShardRunner::interrupt(const std::string& id) {
  std::lock_guard<std::mutex> s(status_mutex_);
  if (running_ && *running_ == id) interrupt_ = true;
}

namespace {

// The bytes of every output or temp file that `outputs` ({node_id: ui}) name, read from this process's folders.
Result<std::vector<PromptFile>> read_output_files(const Json& outputs, const nodes::NodeEnvOptions& o) {
  std::vector<PromptFile> files;
  for (auto node = outputs.begin(); node != outputs.end(); ++node) {
    if (!node.value().is_object()) continue;
    for (auto list = node.value().begin(); list != node.value().end(); ++list) {
      if (!list.value().is_array()) continue;
      for (const Json& entry : list.value()) {
        if (!entry.is_object() || !entry["filename"].is_string()) continue;
        const std::string type = entry.value("type", "");
        if (type != "output" && type != "temp") continue;
        PromptFile f{type, entry.value("subfolder", ""), entry["filename"].get<std::string>(), {}};
        const std::filesystem::path path =
            std::filesystem::path(type == "output" ? o.output_dir : o.temp_dir) / f.subfolder / f.filename;
        ND_ASSIGN_OR_RETURN(f.bytes, io::read_file(path.string()));
        files.push_back(std::move(f));
      }
    }
  }
  return files;
}

}  // namespace

namespace {

// PROMPT (the PNG metadata) names the input files as the client did, as on the coordinator.
void show_client_input_names(graph::ValidatedPrompt& validated, const Json& prompt) {
  Json shown = validated.prompt.json();
  for (auto node = shown.begin(); node != shown.end(); ++node) {
    auto original = prompt.find(node.key());
    if (original == prompt.end() || !reads_input_file(original->value("class_type", ""))) continue;
    const Json written = original->value("inputs", Json::object()).value("image", Json());
    if (node.value().contains("inputs") && node.value()["inputs"].is_object() && !written.is_null())
      node.value()["inputs"]["image"] = written;
  }
  validated.shown_prompt = std::move(shown);
}

}  // namespace

Status ShardRunner::join_prompt_group(const protocol::GroupSpec& group, const std::string& prompt_id,
                                      std::optional<nodes::ScopedStepGroupBinding>& bound,
                                      std::shared_ptr<ExchangeTally>& tally) {
  GroupJoinOptions join = options_.group;
  join.cancelled = [this] { return interrupt_.load(); };
  Result<GroupMembership> joined = join_group(group, join);
  if (!joined.is_ok())
    return joined.status().with_context("prompt " + prompt_id + " as rank " + std::to_string(group.rank) +
                                        " of step group " + group.group_id);
  tally = joined->tally;
  nodes::StepGroupBinding binding;
  binding.group = joined->group;
  binding.cfg_split = group.mode != "tiles";
  binding.tiles = group.mode == "tiles" || group.mode == "cfg+tiles";
  binding.cross = joined->cross;
  binding.rows = group.mode == "rows+cfg";
  // The tile shares follow the speeds of the members that share the tiles: all of them, or this cross group's.
  for (int r = 0; r < int(group.speeds.size()); ++r) {
    if (group.mode == "tiles" || (group.mode == "cfg+tiles" && r % 2 == group.rank % 2))
      binding.tile_speeds.push_back(group.speeds[r]);
  }
  bound.emplace(prompt_id, std::move(binding));
  // Every member runs every node: a sampler cached on one member only would leave the others waiting in the
  // group's collectives.
  executor_.reset();
  return Status::ok();
}

Result<PromptReply> ShardRunner::run_prompt(const std::string& task_id, const std::string& prompt_id,
                                            const Json& prompt, const Json& extra_data,
                                            const Json& outputs_to_execute, const Json& inputs,
                                            const std::optional<protocol::GroupSpec>& group) {
  std::unique_lock<std::timed_mutex> lock;
  ND_RETURN_IF_ERROR(lock_for_task(lock, task_id));
  {
    // Running from here on, so an interrupt for it is not lost while its files are written (the executor
    // would clear a flag set before it starts: checked below).
    std::lock_guard<std::mutex> s(status_mutex_);
    running_ = task_id;
    step_ = steps_ = 0;
    live_events_ = Json::array();
    interrupt_ = false;
  }
  auto not_running = [this](Status status) {
    std::lock_guard<std::mutex> s(status_mutex_);
    running_.reset();
    interrupt_ = false;
    return status;
  };
  if (Status fetched = options_.models ? options_.models->prepare(prompt) : Status::ok(); !fetched.is_ok())
    return not_running(fetched.with_context("prompt " + prompt_id));
  auto installed = install_shard_inputs(prompt, inputs, env_->options().input_dir);
  if (!installed.is_ok()) return not_running(installed.status().with_context("prompt " + prompt_id));
  std::vector<std::string> targets;
  if (outputs_to_execute.is_array()) {
    for (const Json& id : outputs_to_execute) {
      if (id.is_string()) targets.push_back(id.get<std::string>());
    }
  }
  graph::ValidationResult v = graph::validate_prompt(*installed, registry_, targets.empty() ? nullptr : &targets);
  if (!v.ok())
    return not_running(
        Status::unavailable("prompt " + prompt_id + " does not validate here: " + v.error_body.dump()));
  if (inputs.is_object() && !inputs.empty()) show_client_input_names(*v.validated, prompt);
  if (interrupt_.load()) return not_running(Status::cancelled("prompt " + prompt_id + " interrupted before it started"));
  std::optional<nodes::ScopedStepGroupBinding> bound;  // the group lives as long as the prompt runs
  std::shared_ptr<ExchangeTally> tally;
  if (group) {
    Status joined = join_prompt_group(*group, prompt_id, bound, tally);
    if (!joined.is_ok()) return not_running(joined);
  }
  ShardSink sink(
      [this](int64_t value, int64_t max) {
        {
          std::lock_guard<std::mutex> s(status_mutex_);
          step_ = value;
          steps_ = max;
        }
        if (options_.test_step_delay_ms > 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(options_.test_step_delay_ms));
      },
      true,
      [this](const Json& event) {
        std::lock_guard<std::mutex> s(status_mutex_);
        live_events_.push_back(event);
      });
  graph::ExecutionOutcome outcome = executor_.execute(*v.validated, prompt_id,
                                                      extra_data.is_object() ? extra_data : Json::object(),
                                                      sink, interrupt_);
  interrupt_ = false;
  {
    std::lock_guard<std::mutex> s(status_mutex_);
    running_.reset();
    if (outcome.success) ++shards_done_;
  }
  if (outcome.status.code() == StatusCode::kCancelled) return outcome.status;
  PromptReply reply;
  reply.status = outcome.status;
  reply.outputs = outcome.outputs;
  reply.events = std::move(sink.events_);
  reply.sampling_seconds = sink.sampling_seconds();
  if (tally) std::tie(reply.exchange_seconds, reply.exchanges) = std::pair(tally->seconds, tally->exchanges);
  ND_ASSIGN_OR_RETURN(reply.files, read_output_files(reply.outputs, env_->options()));
  return reply;
}

Json prompt_reply_to_json(const PromptReply& reply) {
  Json files = Json::array();
  for (const PromptFile& f : reply.files) {
    files.push_back({{"type", f.type},
                     {"subfolder", f.subfolder},
                     {"filename", f.filename},
                     {"data", base64_encode(f.bytes)}});
  }
  return Json{{"status", {{"code", static_cast<int>(reply.status.code())}, {"message", reply.status.message()}}},
              {"outputs", reply.outputs},
              {"events", reply.events},
              {"files", files},
              {"sampling_seconds", reply.sampling_seconds},
              {"exchange_seconds", reply.exchange_seconds},
              {"exchanges", reply.exchanges}};
}

Result<PromptReply> prompt_reply_from_json(const Json& json) {
  // A reply arrives over HTTP (a dial-in worker posts it to /netdist/v1/result): any field may be missing or
  // of any type, so every access is checked (operator[] on a const Json with a missing key is undefined).
  const auto field = [](const Json& object, const char* key) -> const Json& {
    static const Json kMissing;
    if (!object.is_object()) return kMissing;
    const auto it = object.find(key);
    return it == object.end() ? kMissing : *it;
  };
  const Json& status = field(json, "status");
  if (!json.is_object() || !status.is_object() || !field(status, "code").is_number_integer() ||
      !field(json, "outputs").is_object() || !field(json, "events").is_array() || !field(json, "files").is_array()) {
    return Status::corruption("prompt reply needs \"status\" {code, message}, \"outputs\", \"events\", \"files\"");
  }
  PromptReply reply;
  const int64_t code = field(status, "code").get<int64_t>();
  if (code < 0 || code > static_cast<int>(StatusCode::kInternal))
    return Status::corruption("prompt reply has an unknown status code " + std::to_string(code));
  const Json& message = field(status, "message");
  reply.status = Status(static_cast<StatusCode>(code), message.is_string() ? message.get<std::string>() : "");
  reply.outputs = json["outputs"];
  reply.events = json["events"];
  if (json.contains("sampling_seconds")) {
    if (!json["sampling_seconds"].is_number() || json["sampling_seconds"].get<double>() < 0)
      return Status::corruption("prompt reply \"sampling_seconds\" must be a number >= 0");
    reply.sampling_seconds = json["sampling_seconds"].get<double>();
  }
  if (json.contains("exchange_seconds") || json.contains("exchanges")) {
    const Json& s = field(json, "exchange_seconds");
    const Json& n = field(json, "exchanges");
    if (!s.is_number() || s.get<double>() < 0 || !n.is_number_integer() || n.get<int64_t>() < 0)
      return Status::corruption("prompt reply \"exchange_seconds\" and \"exchanges\" must be numbers >= 0");
    reply.exchange_seconds = s.get<double>();
    reply.exchanges = n.get<int64_t>();
  }
  for (const Json& f : json["files"]) {
    if (!field(f, "type").is_string() || !field(f, "subfolder").is_string() || !field(f, "filename").is_string() ||
        !field(f, "data").is_string()) {
      return Status::corruption("prompt reply file needs type, subfolder, filename and data strings");
    }
    PromptFile file{field(f, "type").get<std::string>(), field(f, "subfolder").get<std::string>(),
                    field(f, "filename").get<std::string>(), {}};
    ND_ASSIGN_OR_RETURN(file.bytes, base64_decode(field(f, "data").get<std::string>()));
    reply.files.push_back(std::move(file));
  }
  return reply;
}

server::Response ShardRunner::serve_prompt(const std::string& request_body) {
  auto body = server::parse_json_body(request_body);
  if (!body.is_ok()) return error_reply(400, "invalid_prompt_task", body.status().message());
  return serve_prompt(*body);
}

server::Response ShardRunner::serve_prompt(const Json& body) {
  auto request = protocol::prompt_request_from_json(body);
  if (!request.is_ok()) return error_reply(400, "invalid_prompt_task", request.status().message());
  auto group = protocol::group_of_prompt_body(body);
  if (!group.is_ok()) return error_reply(400, "invalid_prompt_task", group.status().message());
  Result<PromptReply> reply = run_prompt(request->task_id, request->prompt_id, request->prompt, request->extra_data,
                                         request->outputs_to_execute, request->inputs, *group);
  if (!reply.is_ok()) return task_error_reply("prompt_failed", reply.status());
  if (*group && (*group)->rank != 0) {  // an ack: rank 0 returns the images
    reply->outputs = Json::object();
    reply->events = Json::array();
    reply->files.clear();
  }
  return server::json_response(prompt_reply_to_json(*reply));
}

Result<at::Tensor> ShardRunner::run_request(const Json& body) {
  ND_ASSIGN_OR_RETURN(protocol::ShardRequest request, protocol::shard_request_from_json(body));
  return run(request.shard_id, request.workflow, request.inputs);
}

namespace {

// A short speed figure: the embedded model, one 64×64 image, 4 euler steps at CFG 5 on this device (after
// one warm-up step). None when the embedded model is not available.
std::optional<protocol::Benchmark> speed_benchmark(nodes::NodeEnv& env) {
  const std::string path = env.options().default_checkpoint;
  if (path.empty()) return std::nullopt;
  const std::string name = std::filesystem::path(path).filename().string();
  auto model = env.load_checkpoint(name);
  if (!model.is_ok()) return std::nullopt;
  Model& m = **model;
  auto pos = encode_prompt(m, "a red heart");
  auto neg = encode_prompt(m, "");
  if (!pos.is_ok() || !neg.is_ok()) return std::nullopt;
  SampleRequest req;
  req.steps = 1;
  req.cfg = 5.0;
  req.latent = empty_latent(m, 1, 64, 64);
  if (!sample(m, *pos, *neg, req, nullptr).is_ok()) return std::nullopt;
  req.steps = 4;
  const auto t0 = std::chrono::steady_clock::now();
  if (!sample(m, *pos, *neg, req, nullptr).is_ok()) return std::nullopt;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return protocol::Benchmark{name, 64, 64, 4, seconds > 0 ? 4.0 / seconds : 0.0};
}

}  // namespace

Json ShardRunner::capabilities() {
  std::lock_guard<std::mutex> lock(caps_mutex_);
  if (caps_ && options_.models) protocol::put_models(*caps_, options_.models->capability_models());
  if (caps_) return *caps_;
  std::vector<protocol::ModelEntry> models;
  if (options_.models) models = options_.models->capability_models();
  for (const std::string& name : options_.models ? std::vector<std::string>() : env_->local_checkpoint_names()) {
    auto path = env_->checkpoint_path(name);
    if (!path.is_ok()) continue;
    protocol::ModelEntry m;
    m.name = name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(*path, ec)) {
      const uintmax_t size = std::filesystem::file_size(*path, ec);
      m.bytes = ec ? 0 : size;
      if (auto h = io::file_sha256(*path); h.is_ok()) m.sha256 = *h;
    }
    models.push_back(std::move(m));
  }
  const std::string& dev = options_.device_name;
  caps_ = Json{{"engine_version", NETDIST_VERSION},
               {"device", {{"name", dev}, {"type", dev.rfind("cuda", 0) == 0 ? "cuda" : "cpu"}}},
               {"test_step_delay_ms", options_.test_step_delay_ms}};
  protocol::put_capabilities(*caps_, registry_.class_types(), models, speed_benchmark(*env_));
  protocol::stamp_version(*caps_);
  return *caps_;
}

Json ShardRunner::status(std::optional<size_t> events_from) const {
  std::lock_guard<std::mutex> s(status_mutex_);
  protocol::StatusReply st;
  st.running = running_;
  st.step = step_;
  st.steps = steps_;
  st.shards_done = shards_done_;
  st.events_total = running_ ? live_events_.size() : size_t(0);
  if (options_.models) st.model_fetch = options_.models->progress();
  if (events_from) {
    Json events = Json::array();
    for (size_t i = *events_from; running_ && i < live_events_.size(); ++i) events.push_back(live_events_[i]);
    st.events = std::move(events);
  }
  return protocol::to_json(st);
}

server::Response ShardRunner::serve_shard(const std::string& request_body) {
  auto body = server::parse_json_body(request_body);
  if (!body.is_ok()) return error_reply(400, "invalid_shard", body.status().message());
  return serve_shard(*body);
}

server::Response ShardRunner::serve_shard(const Json& body) {
  auto request = protocol::shard_request_from_json(body);
  if (!request.is_ok()) return task_error_reply("shard_failed", request.status());
  Result<at::Tensor> rows = run(request->shard_id, request->workflow, request->inputs);
  if (!rows.is_ok()) return task_error_reply("shard_failed", rows.status());
  auto bytes = runtime::weights_to_buffer({{"samples", *rows}}, {{"shard_id", request->shard_id}});
  if (!bytes.is_ok()) return error_reply(500, "shard_failed", bytes.status().to_string());
  server::Response r;
  r.content_type = "application/octet-stream";
  r.body = std::move(*bytes);
  return r;
}

server::Response ShardRunner::serve_tile(const Json& body) {
  auto request = protocol::tile_request_from_json(body);
  if (!request.is_ok()) return task_error_reply("tile_failed", request.status());
  Result<at::Tensor> tiles = run(request->tile_id, request->workflow, request->inputs);
  if (!tiles.is_ok()) return task_error_reply("tile_failed", tiles.status());
  if (tiles->scalar_type() != at::kByte && tiles->scalar_type() != at::kFloat)  // USDU; model tiles (model_tiles.h)
    return error_reply(500, "tile_failed", "tile " + request->tile_id + " gave no 8-bit or float32 tiles");
  auto bytes = runtime::weights_to_buffer({{"tiles", tiles->contiguous()}}, {{"tile_id", request->tile_id}});
  if (!bytes.is_ok()) return error_reply(500, "tile_failed", bytes.status().to_string());
  server::Response r;
  r.content_type = "application/octet-stream";
  r.body = std::move(*bytes);
  return r;
}

server::ExtraRoutes ShardRunner::routes() {
  return [this](const server::Request& req, const std::string& path) -> std::optional<server::Response> {
    using protocol::Route;
    if (!protocol::is_protocol_path(path)) return std::nullopt;
    const std::optional<Route> route = protocol::route_of(path);
    if (route && req.method == protocol::method(*route)) {
      switch (*route) {
        case Route::capabilities: return server::json_response(capabilities());
        case Route::status: {
          std::optional<size_t> from;
          if (auto q = req.query_value("events_from")) {
            auto n = protocol::parse_events_from(*q);
            if (!n.is_ok()) return error_reply(400, "invalid_status_query", n.status().message());
            from = *n;
          }
          return server::json_response(status(from));
        }
        case Route::interrupt: {
          const protocol::InterruptRequest r = protocol::interrupt_request_from_body(req.body);
          if (r.shard_id)
            interrupt(*r.shard_id);
          else
            interrupt();
          return server::empty_response(200);
        }
        case Route::prompt: return serve_prompt(req.body);
        case Route::shard: return serve_shard(req.body);
        case Route::tile: {
          auto body = server::parse_json_body(req.body);
          if (!body.is_ok()) return error_reply(400, "invalid_tile", body.status().message());
          return serve_tile(*body);
        }
        default: break;  // the coordinator's routes (coordinator.h)
      }
    }
    return error_reply(404, "not_found", "no route for " + req.method + " " + path);
  };
}

}  // namespace netdist::cluster
