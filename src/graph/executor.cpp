#include "graph/executor.h"

#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <unordered_set>

#include "core/log.h"
#include "graph/cache_key.h"
#include "graph/execution_list.h"
#include "graph/py_format.h"

namespace netdist::graph {
namespace {

Value literal_value(const Json& v, const std::string& type) {
  bool any = type != "INT" && type != "FLOAT" && type != "BOOLEAN" && type != "STRING" && type != "COMBO";
  if ((type == "INT" || any) && v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    return u <= uint64_t(INT64_MAX) ? Value(static_cast<int64_t>(u)) : Value(u);
  }
  if ((type == "INT" || any) && v.is_number_integer()) return v.get<int64_t>();
  if (type == "FLOAT" && v.is_number()) return v.get<double>();
  if (any && v.is_number_float()) return v.get<double>();
  if ((type == "BOOLEAN" || any) && v.is_boolean()) return v.get<bool>();
  if ((type == "STRING" || type == "COMBO" || any) && v.is_string()) return v.get<std::string>();
  return std::monostate{};
}

bool value_matches(const Value& v, const std::string& type) {
  if (std::holds_alternative<std::monostate>(v)) return false;
  if (type == "INT") return std::holds_alternative<int64_t>(v) || std::holds_alternative<uint64_t>(v);
  if (type == "FLOAT") {
    return std::holds_alternative<double>(v) || std::holds_alternative<int64_t>(v) ||
           std::holds_alternative<uint64_t>(v);
  }
  if (type == "BOOLEAN") return std::holds_alternative<bool>(v);
  if (type == "STRING" || type == "COMBO") return std::holds_alternative<std::string>(v);
  return true;
}

Json format_literal(const Json& v) {
  if (v.is_null() || v.is_boolean() || v.is_number() || v.is_string()) return v;
  return py::str(v);
}

std::string exception_type(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return "ValueError";
    case StatusCode::kNotFound: return "FileNotFoundError";
    case StatusCode::kIoError: return "OSError";
    case StatusCode::kUnsupported: return "NotImplementedError";
    case StatusCode::kOutOfMemory: return "torch.OutOfMemoryError";
    default: return "RuntimeError";
  }
}

class RunContext : public NodeContext {
 public:
  RunContext(const std::string& node_id, const std::string& prompt_id, std::atomic<bool>& interrupt,
             EventSink& sink, const Json& prompt, const Json& extra_data)
      : node_id_(node_id), prompt_id_(prompt_id), interrupt_(interrupt), sink_(sink), prompt_(prompt),
        extra_data_(extra_data) {
    if (extra_data.is_object() && extra_data.contains("extra_pnginfo")) extra_pnginfo_ = extra_data["extra_pnginfo"];
  }
  const std::string& node_id() const override { return node_id_; }
  const std::string& prompt_id() const override { return prompt_id_; }
  bool interrupted() const override { return interrupt_.load(); }
  Status progress(int64_t value, int64_t max) override {
    if (interrupt_.exchange(false)) return Status::cancelled("Processing interrupted");
    Json data = Json::object();
    data["value"] = value;
    data["max"] = max;
    data["prompt_id"] = prompt_id_;
    data["node"] = node_id_;
    sink_.event("progress", std::move(data));
    return Status::ok();
  }
  void set_ui_output(Json ui) override { ui_ = std::move(ui); }
  const Json& prompt() const override { return prompt_; }
  const Json& extra_pnginfo() const override { return extra_pnginfo_; }
  const Json& extra_data() const override { return extra_data_; }
  const Json& ui() const { return ui_; }

 private:
  const std::string& node_id_;
  const std::string& prompt_id_;
  std::atomic<bool>& interrupt_;
  EventSink& sink_;
  const Json& prompt_;
  const Json& extra_data_;
  Json extra_pnginfo_;
  Json ui_;
};

}  // namespace

EventSink::~EventSink() = default;

struct Failure {
  std::string node_id;
  bool interrupted = false;
  StatusCode code = StatusCode::kInvalidArgument;  // of the node's Status (kept in ExecutionOutcome::status)
  std::string message;
  std::string type;
  Json traceback = Json::array();
  Json current_inputs = Json::object();
};

class Executor::Run {
 public:
  Run(Executor& ex, const ValidatedPrompt& vp, const std::string& prompt_id, const Json& extra_data,
      EventSink& sink, std::atomic<bool>& interrupt)
      : ex_(ex), prompt_(vp.prompt), outputs_(vp.outputs), prompt_id_(prompt_id), extra_data_(extra_data),
        sink_(sink), interrupt_(interrupt), hidden_prompt_(vp.shown_prompt.is_null() ? vp.prompt.json() : vp.shown_prompt),
        keys_(vp.prompt, ex.registry_, [this](const std::string& id) { return is_changed(id); },
              [&ex] { return "\x01uncacheable#" + std::to_string(++ex.unique_counter_); }) {}

  ExecutionOutcome go();

 private:
  void add_message(const std::string& type, Json data);
  Json is_changed(const std::string& node_id);
  NodeImpl& object_for(const PromptNode& node);
  bool cached(const std::string& node_id) { return ex_.outputs_.count(keys_.key(node_id)) > 0; }
  std::optional<Failure> execute_node(const std::string& node_id);
  std::optional<Failure> run_node(const PromptNode& node, const NodeSchema& schema, NodeInputs& in,
                                  Json& current_inputs);
  void report(const Failure& failure, ExecutionOutcome& outcome);

  Executor& ex_;
  const Prompt& prompt_;
  const std::vector<std::string>& outputs_;
  const std::string& prompt_id_;
  const Json& extra_data_;
  EventSink& sink_;
  std::atomic<bool>& interrupt_;
  Json hidden_prompt_;  // the prompt as nodes see it (PROMPT), with ComfyUI's "is_changed" annotations
  std::unordered_map<std::string, Json> is_changed_;
  CacheKeys keys_;
  Json messages_ = Json::array();
  std::vector<std::string> executed_;
  Json node_timings_ = Json::array();
};

void Executor::Run::add_message(const std::string& type, Json data) {
  data["timestamp"] = ex_.now_ms_();
  messages_.push_back(Json::array({type, data}));
  sink_.event(type, std::move(data));
}

NodeImpl& Executor::Run::object_for(const PromptNode& node) {
  auto& slot = ex_.objects_[{node.id, node.class_type}];
  if (!slot) slot = ex_.registry_.create(node.class_type);
  ND_ASSERT(slot != nullptr, "node class has no factory result: " + node.class_type);
  return *slot;
}

Json Executor::Run::is_changed(const std::string& node_id) {
  auto found = is_changed_.find(node_id);
  if (found != is_changed_.end()) return found->second;
  const PromptNode* node = prompt_.find(node_id);
  const NodeSchema* schema = node ? ex_.registry_.find(node->class_type) : nullptr;
  Json value = false;
  if (schema != nullptr) {
    NodeInputs literals;
    bool complete = true;
    for (const PromptInput& input : node->inputs) {
      const InputSpec* spec = schema->find_input(input.name);
      if (spec == nullptr || runtime_link(input.value)) continue;
      Value v = literal_value(input.value, spec->type);
      if (!value_matches(v, spec->type)) complete = false;
      literals.set(input.name, std::move(v));
    }
    for (const InputSpec& spec : schema->required) {
      const PromptInput* input = node->find_input(spec.name);
      if (input == nullptr) complete = false;
    }
    if (!complete) {
      value = "\x01uncacheable#" + std::to_string(++ex_.unique_counter_);
    } else if (std::optional<std::string> fp = object_for(*node).fingerprint(literals)) {
      const Json& node_json = prompt_.json()[node_id];
      value = node_json.contains("is_changed") ? node_json["is_changed"] : Json::array({*fp});
      hidden_prompt_[node_id]["is_changed"] = value;
    }
  }
  return is_changed_[node_id] = value;
}

std::optional<Failure> Executor::Run::run_node(const PromptNode& node, const NodeSchema& schema, NodeInputs& in,
                                               Json& current_inputs) {
  Failure failure;
  failure.node_id = node.id;
  failure.type = "TypeError";
  for (const InputSpec& spec : schema.required) {
    if (!in.has(spec.name) || std::holds_alternative<std::monostate>(*in.find(spec.name))) {
      failure.message = node.class_type + ": required input '" + spec.name + "' has no value";
      return failure;
    }
  }
  for (const auto& [name, value] : in.entries()) {
    const InputSpec* spec = schema.find_input(name);
    if (spec != nullptr && !std::holds_alternative<std::monostate>(value) && !value_matches(value, spec->type)) {
      failure.message = node.class_type + ": input '" + name + "' expects " + spec->type + ", got " + value_kind(value);
      return failure;
    }
  }
  NodeImpl& impl = object_for(node);
  if (interrupt_.exchange(false)) {
    failure.interrupted = true;
    return failure;
  }
  RunContext ctx(node.id, prompt_id_, interrupt_, sink_, hidden_prompt_, extra_data_);
  Result<std::vector<Value>> result = Status::internal("node did not run");
  try {
    result = impl.run(ctx, in);
  } catch (const std::exception& e) {
    result = Status::internal(e.what());
  } catch (...) {
    result = Status::internal("unknown exception");
  }
  if (!result.is_ok()) {
    failure.interrupted = result.status().code() == StatusCode::kCancelled;
    failure.code = result.status().code();
    failure.message = result.status().message();
    failure.type = exception_type(result.status().code());
    failure.current_inputs = std::move(current_inputs);
    return failure;
  }
  if (result->size() != schema.output_types.size()) {
    failure.type = "RuntimeError";
    failure.code = StatusCode::kInternal;
    failure.message = node.class_type + " returned " + std::to_string(result->size()) + " outputs, declares " +
                      std::to_string(schema.output_types.size());
    failure.current_inputs = std::move(current_inputs);
    return failure;
  }
  const std::string& key = keys_.key(node.id);
  const Json& ui = ctx.ui();
  if (!ui.is_null() && !ui.empty()) {
    Json meta = Json::object();
    meta["node_id"] = node.id;
    meta["display_node"] = node.id;
    meta["parent_node"] = nullptr;
    meta["real_node_id"] = node.id;
    ex_.ui_[key] = UiEntry{ui, std::move(meta)};
    Json data = Json::object();
    data["node"] = node.id;
    data["display_node"] = node.id;
    data["output"] = ui;
    data["prompt_id"] = prompt_id_;
    sink_.event("executed", std::move(data));
  }
  ex_.outputs_[key] = std::move(result).value();
  executed_.push_back(node.id);
  return std::nullopt;
}

std::optional<Failure> Executor::Run::execute_node(const std::string& node_id) {
  const PromptNode& node = *prompt_.find(node_id);
  const std::string& key = keys_.key(node_id);
  if (ex_.outputs_.count(key)) {
    auto ui = ex_.ui_.find(key);
    Json data = Json::object();
    data["node"] = node_id;
    data["display_node"] = node_id;
    data["output"] = ui == ex_.ui_.end() ? Json(nullptr) : ui->second.output;
    data["prompt_id"] = prompt_id_;
    sink_.event("executed", std::move(data));
    return std::nullopt;
  }
  const NodeSchema* schema_ptr = ex_.registry_.find(node.class_type);
  ND_ASSERT(schema_ptr != nullptr, "executing a node of an unregistered class: " + node.class_type);
  const NodeSchema& schema = *schema_ptr;
  NodeInputs in;
  Json current_inputs = Json::object();
  for (const PromptInput& input : node.inputs) {
    const InputSpec* spec = schema.find_input(input.name);
    if (auto link = runtime_link(input.value)) {
      Value v;
      auto source = prompt_.find(link->first) ? ex_.outputs_.find(keys_.key(link->first)) : ex_.outputs_.end();
      if (source != ex_.outputs_.end() && link->second.is_number_integer()) {
        int64_t n = static_cast<int64_t>(source->second.size());
        int64_t index = link->second.get<int64_t>();
        if (index < 0) index += n;
        if (index >= 0 && index < n) v = source->second[static_cast<size_t>(index)];
      }
      current_inputs[input.name] = Json::array({value_to_json(v)});
      if (spec != nullptr) in.set(input.name, std::move(v));
    } else if (spec != nullptr) {
      current_inputs[input.name] = Json::array({format_literal(input.value)});
      in.set(input.name, literal_value(input.value, spec->type));
    } else if (schema.find_hidden(input.name) != nullptr) {
      current_inputs[input.name] = Json::array({format_literal(input.value)});
    }
  }
  for (const HiddenInput& h : schema.hidden) {
    if (h.kind == "PROMPT") current_inputs[h.name] = Json::array({py::str(hidden_prompt_)});
    if (h.kind == "EXTRA_PNGINFO") {
      bool has = extra_data_.is_object() && extra_data_.contains("extra_pnginfo");
      current_inputs[h.name] = Json::array({has ? format_literal(extra_data_["extra_pnginfo"]) : Json(nullptr)});
    }
    if (h.kind == "UNIQUE_ID") current_inputs[h.name] = Json::array({node_id});
  }
  Json executing = Json::object();
  executing["node"] = node_id;
  executing["display_node"] = node_id;
  executing["prompt_id"] = prompt_id_;
  sink_.event("executing", std::move(executing));
  log::debug("executing node {} ({})", node_id, node.class_type);
  const auto started = std::chrono::steady_clock::now();
  std::optional<Failure> failure = run_node(node, schema, in, current_inputs);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  Json timing = Json::object();
  timing["node"] = node_id;
  timing["class_type"] = node.class_type;
  timing["seconds"] = seconds;
  node_timings_.push_back(std::move(timing));
  log::debug("node {} ({}) {} in {:.3f} s", node_id, node.class_type, failure ? "failed" : "ran", seconds);
  return failure;
}

void Executor::Run::report(const Failure& failure, ExecutionOutcome& outcome) {
  Json data = Json::object();
  data["prompt_id"] = prompt_id_;
  data["node_id"] = failure.node_id;
  const PromptNode* node = prompt_.find(failure.node_id);
  data["node_type"] = node ? Json(node->class_type) : Json(nullptr);
  data["executed"] = executed_;
  if (failure.interrupted) {
    outcome.status = Status::cancelled("interrupted at node " + failure.node_id);
    add_message("execution_interrupted", std::move(data));
    return;
  }
  outcome.status = Status(failure.code, failure.node_id + " (" + data["node_type"].dump() + "): " + failure.message);
  data["exception_message"] = failure.message;
  data["exception_type"] = failure.type;
  data["traceback"] = failure.traceback;
  data["current_inputs"] = failure.current_inputs;
  Json current_outputs = Json::array();
  for (const PromptNode& n : prompt_.nodes()) current_outputs.push_back(n.id);
  data["current_outputs"] = std::move(current_outputs);
  add_message("execution_error", std::move(data));
}

ExecutionOutcome Executor::Run::go() {
  ExecutionOutcome outcome;
  interrupt_.store(false);
  Json start = Json::object();
  start["prompt_id"] = prompt_id_;
  add_message("execution_start", std::move(start));

  std::unordered_set<std::string> live_keys;
  std::set<std::pair<std::string, std::string>> live_objects;
  for (const PromptNode& node : prompt_.nodes()) {
    live_keys.insert(keys_.key(node.id));
    live_objects.insert({node.id, node.class_type});
  }
  std::erase_if(ex_.outputs_, [&](const auto& kv) { return !live_keys.count(kv.first); });
  std::erase_if(ex_.ui_, [&](const auto& kv) { return !live_keys.count(kv.first); });
  std::erase_if(ex_.objects_, [&](const auto& kv) { return !live_objects.count(kv.first); });

  Json cached_nodes = Json::array();
  for (const PromptNode& node : prompt_.nodes()) {
    if (cached(node.id)) cached_nodes.push_back(node.id);
  }
  Json cached_event = Json::object();
  cached_event["nodes"] = std::move(cached_nodes);
  cached_event["prompt_id"] = prompt_id_;
  add_message("execution_cached", std::move(cached_event));

  ExecutionList list(prompt_, ex_.registry_, [this](const std::string& id) { return cached(id); });
  for (const std::string& output : outputs_) list.add_node(output);
  bool failed = false;
  while (!list.empty()) {
    std::vector<std::string> cycle;
    std::optional<std::string> node_id = list.stage(&cycle);
    if (!node_id) {
      Failure failure;
      failure.node_id = cycle.empty() ? std::string() : cycle.front();
      failure.message = "Dependency cycle detected";
      failure.type = "graph.DependencyCycleError";
      failure.current_inputs = Json::array();
      report(failure, outcome);
      failed = true;
      break;
    }
    if (std::optional<Failure> failure = execute_node(*node_id)) {
      report(*failure, outcome);
      failed = true;
      break;
    }
    list.complete(*node_id);
  }
  if (!failed) {
    Json success = Json::object();
    success["prompt_id"] = prompt_id_;
    add_message("execution_success", std::move(success));
  }
  outcome.success = !failed;
  for (const PromptNode& node : prompt_.nodes()) {
    auto ui = ex_.ui_.find(keys_.key(node.id));
    if (ui == ex_.ui_.end()) continue;
    outcome.outputs[node.id] = ui->second.output;
    outcome.meta[node.id] = ui->second.meta;
  }
  outcome.messages = std::move(messages_);
  outcome.executed = std::move(executed_);
  outcome.node_timings = std::move(node_timings_);
  return outcome;
}

Executor::Executor(const NodeRegistry& registry)
    : registry_(registry), now_ms_([] {
        using namespace std::chrono;
        return static_cast<int64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
      }) {}

Executor::~Executor() = default;

ExecutionOutcome Executor::execute(const ValidatedPrompt& prompt, const std::string& prompt_id,
                                   const Json& extra_data, EventSink& sink, std::atomic<bool>& interrupt) {
  log::Scope scope(prompt_id, "");  // every message while it runs names the prompt (core/log.h)
  Run run(*this, prompt, prompt_id, extra_data, sink, interrupt);
  return run.go();
}

void Executor::reset() {
  outputs_.clear();
  ui_.clear();
  objects_.clear();
}

}  // namespace netdist::graph
