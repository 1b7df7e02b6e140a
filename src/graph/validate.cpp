#include "graph/validate.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "graph/py_format.h"

namespace netdist::graph {
namespace {

// A Python exception escaping validate_inputs: str(ex) and its type name.
struct PyException {
  std::string type;
  std::string message;
};

struct NodeOutcome {
  bool valid = true;
  Json reasons = Json::array();
};

std::vector<std::string> split_types(const std::string& types) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t comma = types.find(',', start);
    std::string part = types.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t b = part.find_first_not_of(" \t\n\r\f\v");
    size_t e = part.find_last_not_of(" \t\n\r\f\v");
    out.push_back(b == std::string::npos ? "" : part.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

class Validator {
 public:
  Validator(Json& prompt, const NodeRegistry& registry) : prompt_(prompt), registry_(registry) {}

  // validate_inputs(prompt, id, validated); nullopt result = ran, see outcome(id); else the exception.
  std::optional<PyException> validate(const std::string& id, int depth);

  void record(const std::string& id, NodeOutcome outcome) {
    if (!outcomes_.count(id)) order_.push_back(id);
    outcomes_[id] = std::move(outcome);
  }
  const NodeOutcome& outcome(const std::string& id) const { return outcomes_.at(id); }
  const std::vector<std::string>& order() const { return order_; }

 private:
  // Resolves a link [o_id, slot] to the received type, raising as Python would.
  std::optional<PyException> linked_type(const Json& link, std::string* received_type, std::string* o_id);
  void check_literal(const std::string& name, const InputSpec& spec, Json& val, bool skip_checks, Json& errors);

  Json& prompt_;
  const NodeRegistry& registry_;
  std::unordered_map<std::string, NodeOutcome> outcomes_;
  std::vector<std::string> order_;
  std::unordered_set<std::string> on_stack_;
};

std::optional<PyException> Validator::linked_type(const Json& link, std::string* received_type,
                                                  std::string* o_id) {
  const Json& source = link[0];
  if (source.is_array() || source.is_object()) return PyException{"TypeError", "unhashable type: '" + py::type_name(source) + "'"};
  if (!source.is_string() || !prompt_.contains(source.get<std::string>())) {
    return PyException{"KeyError", py::repr(source)};
  }
  *o_id = source.get<std::string>();
  const NodeSchema* schema = registry_.find(prompt_[*o_id]["class_type"].get<std::string>());
  const auto& types = schema->output_types;
  const Json& slot = link[1];
  int64_t index = 0;
  if (slot.is_boolean()) {
    index = slot.get<bool>() ? 1 : 0;
  } else if (slot.is_number_unsigned() && slot.get<uint64_t>() > uint64_t(INT64_MAX)) {
    return PyException{"IndexError", "cannot fit 'int' into an index-sized integer"};
  } else if (slot.is_number_integer()) {
    index = slot.get<int64_t>();
  } else {
    return PyException{"TypeError", "tuple indices must be integers or slices, not " + py::type_name(slot)};
  }
  int64_t n = static_cast<int64_t>(types.size());
  if (index < -n || index >= n) return PyException{"IndexError", "tuple index out of range"};
  *received_type = types[static_cast<size_t>(index < 0 ? index + n : index)];
  return std::nullopt;
}

void Validator::check_literal(const std::string& name, const InputSpec& spec, Json& val, bool skip_checks,
                              Json& errors) {
  Json config = input_config_json(spec);
  if (spec.type == "INT" || spec.type == "FLOAT" || spec.type == "STRING" || spec.type == "BOOLEAN") {
    py::Converted converted;
    if (spec.type == "INT") converted = py::to_int(val);
    if (spec.type == "FLOAT") converted = py::to_float(val);
    if (spec.type == "STRING") converted.value = Json(py::str(val));
    if (spec.type == "BOOLEAN") converted.value = Json(py::truthy(val));
    if (!converted.value) {
      errors.push_back(comfy_error("invalid_input_type",
                                   "Failed to convert an input value to a " + spec.type + " value",
                                   name + ", " + py::str(val) + ", " + converted.error,
                                   Json{{"input_name", name},
                                        {"input_config", config},
                                        {"received_value", val},
                                        {"exception_message", converted.error}}));
      return;
    }
    val = *converted.value;
  }
  if (skip_checks) return;
  Json extra = Json{{"input_name", name}, {"input_config", config}, {"received_value", val}};
  if (!spec.min.is_null() && py::compare_numbers(val, spec.min) == -1) {
    errors.push_back(comfy_error("value_smaller_than_min",
                                 "Value " + py::str(val) + " smaller than min of " + py::str(spec.min), name,
                                 std::move(extra)));
    return;
  }
  if (!spec.max.is_null() && py::compare_numbers(val, spec.max) == 1) {
    errors.push_back(comfy_error("value_bigger_than_max",
                                 "Value " + py::str(val) + " bigger than max of " + py::str(spec.max), name,
                                 std::move(extra)));
    return;
  }
  if (spec.type == "COMBO") {
    std::vector<std::string> options = combo_options(spec);
    bool found = val.is_string() && std::find(options.begin(), options.end(), val.get<std::string>()) != options.end();
    if (!found) {
      std::string list_info;
      if (options.size() > 20) {
        list_info = "(list of length " + std::to_string(options.size()) + ")";
        extra["input_config"] = nullptr;
      } else {
        list_info = py::str(Json(options));
      }
      errors.push_back(comfy_error("value_not_in_list", "Value not in list",
                                   name + ": '" + py::str(val) + "' not in " + list_info, std::move(extra)));
    }
  }
}

// ComfyUI's "exception_during_inner_validation" error of input `x` linked to `link`.
Json inner_validation_error(const std::string& x, const Json& config, const PyException& ex, const Json& link) {
  return comfy_error("exception_during_inner_validation", "Exception when validating inner node", ex.message,
                     Json{{"input_name", x},
                          {"input_config", config},
                          {"exception_message", ex.message},
                          {"exception_type", ex.type},
                          {"traceback", Json::array()},
                          {"linked_node", link}});
}

// A node's VALIDATE_INPUTS: called with the literal values of the inputs it names (links as None); a failure
// becomes one "custom_validation_failed" error per value, as ComfyUI reports it.
void custom_validation_errors(const NodeSchema& schema, const Json& inputs, const std::vector<std::string>& custom,
                              Json& errors) {
  Json values = Json::object();
  for (auto it = inputs.begin(); it != inputs.end(); ++it) {
    const std::string& x = it.key();
    if (std::find(custom.begin(), custom.end(), x) == custom.end()) continue;
    if (schema.find_input(x) == nullptr && schema.find_hidden(x) == nullptr && !as_link(it.value())) continue;
    values[x] = as_link(it.value()) ? Json(nullptr) : it.value();
  }
  std::optional<std::string> failure = schema.custom_validation->check(values);
  if (!failure) return;
  for (auto it = values.begin(); it != values.end(); ++it) {
    std::string details = failure->empty() ? it.key() : it.key() + " - " + *failure;
    errors.push_back(comfy_error("custom_validation_failed", "Custom validation failed for node", details,
                                 Json{{"input_name", it.key()}}));
  }
}

std::optional<PyException> Validator::validate(const std::string& id, int depth) {
  if (outcomes_.count(id)) return std::nullopt;
  if (depth > kMaxValidationDepth) return PyException{"RecursionError", "maximum recursion depth exceeded"};
  Json& node = prompt_[id];
  if (!node.contains("inputs")) return PyException{"KeyError", "'inputs'"};
  const NodeSchema& schema = *registry_.find(node["class_type"].get<std::string>());
  Json empty = Json::object();
  Json& inputs = node["inputs"].is_object() ? node["inputs"] : empty;
  on_stack_.insert(id);

  NodeOutcome result;
  Json& errors = result.reasons;
  const std::vector<std::string> no_custom;
  const std::vector<std::string>& custom = schema.custom_validation ? schema.custom_validation->inputs : no_custom;
  auto visit = [&](const InputSpec& spec, bool required) -> std::optional<PyException> {
    const std::string& x = spec.name;
    if (!inputs.contains(x)) {
      if (required) {
        errors.push_back(comfy_error("required_input_missing", "Required input is missing", x,
                                     Json{{"input_name", x}}));
      }
      return std::nullopt;
    }
    Json& val = inputs[x];
    if (!val.is_array()) {
      bool skip = std::find(custom.begin(), custom.end(), x) != custom.end();
      check_literal(x, spec, val, skip, errors);
      return std::nullopt;
    }
    Json config = input_config_json(spec);
    if (val.size() != 2) {
      errors.push_back(comfy_error("bad_linked_input",
                                   "Bad linked input, must be a length-2 list of [node_id, slot_index]", x,
                                   Json{{"input_name", x}, {"input_config", config}, {"received_value", val}}));
      return std::nullopt;
    }
    std::string received_type, o_id;
    if (auto ex = linked_type(val, &received_type, &o_id)) return ex;
    bool compatible = spec.type == "COMBO" ? received_type == "*" : types_compatible(received_type, spec.type);
    if (!compatible) {
      std::string input_type = spec.type == "COMBO" ? py::str(input_type_json(spec)) : spec.type;
      errors.push_back(comfy_error(
          "return_type_mismatch", "Return type mismatch between linked nodes",
          x + ", received_type(" + received_type + ") mismatch input_type(" + input_type + ")",
          Json{{"input_name", x}, {"input_config", config}, {"received_type", received_type}, {"linked_node", val}}));
      return std::nullopt;
    }
    if (on_stack_.count(o_id)) {
      errors.push_back(inner_validation_error(
          x, config, PyException{"graph.DependencyCycleError", "Dependency cycle detected"}, val));
      return std::nullopt;
    }
    if (auto ex = validate(o_id, depth + 1)) {
      result.valid = false;
      NodeOutcome inner;
      inner.valid = false;
      inner.reasons.push_back(inner_validation_error(x, config, *ex, val));
      record(o_id, std::move(inner));
    } else if (!outcome(o_id).valid) {
      result.valid = false;
    }
    return std::nullopt;
  };

  std::optional<PyException> raised;
  for (size_t i = 0; !raised && i < schema.required.size(); ++i) raised = visit(schema.required[i], true);
  for (size_t i = 0; !raised && i < schema.optional.size(); ++i) raised = visit(schema.optional[i], false);
  on_stack_.erase(id);
  if (raised) return raised;

  if (schema.custom_validation) custom_validation_errors(schema, inputs, custom, errors);
  if (!errors.empty()) result.valid = false;
  record(id, std::move(result));
  return std::nullopt;
}

Json failure_body(Json error, Json node_errors) {
  Json body = Json::object();
  body["error"] = std::move(error);
  body["node_errors"] = std::move(node_errors);
  return body;
}

}  // namespace

Json comfy_error(const std::string& type, const std::string& message, const std::string& details,
                 Json extra_info) {
  Json error = Json::object();
  error["type"] = type;
  error["message"] = message;
  error["details"] = details;
  error["extra_info"] = std::move(extra_info);
  return error;
}

bool types_compatible(const std::string& received_type, const std::string& input_type) {
  if (received_type == input_type) return true;
  if (received_type == "*" || input_type == "*") return true;
  std::vector<std::string> received = split_types(received_type);
  std::vector<std::string> accepted = split_types(input_type);
  std::set<std::string> accepted_set(accepted.begin(), accepted.end());
  for (const std::string& t : received) {
    if (accepted_set.count(t)) return true;
  }
  return false;
}

namespace {

// The output nodes of `prompt_json` to validate (those in `partial_targets` when given), in prompt order; or
// ComfyUI's error body when a node has no class_type or an unknown one, or there is no output.
std::optional<Json> find_outputs(const Json& prompt_json, const NodeRegistry& registry,
                                 const std::vector<std::string>* partial_targets, std::vector<std::string>& outputs) {
  for (auto it = prompt_json.begin(); it != prompt_json.end(); ++it) {
    const Json& node = it.value();
    std::string details = "Node ID '#" + it.key() + "'";
    if (!node.is_object() || !node.contains("class_type")) {
      return failure_body(
          comfy_error("invalid_prompt", "Cannot execute because a node is missing the class_type property.", details),
          Json::array());
    }
    const Json& class_type = node["class_type"];
    const NodeSchema* schema = class_type.is_string() ? registry.find(class_type.get<std::string>()) : nullptr;
    if (schema == nullptr) {
      return failure_body(
          comfy_error("invalid_prompt", "Cannot execute because node " + py::str(class_type) + " does not exist.",
                      details),
          Json::array());
    }
    bool targeted = partial_targets == nullptr ||
                    std::find(partial_targets->begin(), partial_targets->end(), it.key()) != partial_targets->end();
    if (schema->output_node && targeted) outputs.push_back(it.key());
  }
  if (outputs.empty()) return failure_body(comfy_error("prompt_no_outputs", "Prompt has no outputs", ""), Json::array());
  return std::nullopt;
}

}  // namespace

ValidationResult validate_prompt(const Json& prompt_json, const NodeRegistry& registry,
                                 const std::vector<std::string>* partial_targets) {
  ValidationResult result;
  if (!prompt_json.is_object()) {
    result.error_body = failure_body(
        comfy_error("invalid_prompt", "Cannot execute because the prompt is not a JSON object.", ""), Json::array());
    return result;
  }
  std::vector<std::string> outputs;
  if (auto error = find_outputs(prompt_json, registry, partial_targets, outputs)) {
    result.error_body = std::move(*error);
    return result;
  }

  Json converted = prompt_json;
  Validator validator(converted, registry);
  std::vector<std::string> good_outputs;
  std::vector<std::pair<std::string, Json>> failed;
  Json node_errors = Json::object();
  for (const std::string& o : outputs) {
    Json reasons;
    bool valid = false;
    if (auto ex = validator.validate(o, 0)) {
      reasons = Json::array({comfy_error("exception_during_validation", "Exception when validating node",
                                         ex->message,
                                         Json{{"exception_type", ex->type}, {"traceback", Json::array()}})});
      NodeOutcome outcome;
      outcome.valid = false;
      outcome.reasons = reasons;
      validator.record(o, std::move(outcome));
    } else {
      valid = validator.outcome(o).valid;
      reasons = validator.outcome(o).reasons;
    }
    if (valid) {
      good_outputs.push_back(o);
      continue;
    }
    failed.emplace_back(o, reasons);
    for (const std::string& node_id : validator.order()) {
      const NodeOutcome& outcome = validator.outcome(node_id);
      if (outcome.valid || outcome.reasons.empty()) continue;
      if (!node_errors.contains(node_id)) {
        Json entry = Json::object();
        entry["errors"] = outcome.reasons;
        entry["dependent_outputs"] = Json::array();
        entry["class_type"] = converted[node_id]["class_type"];
        node_errors[node_id] = std::move(entry);
      }
      node_errors[node_id]["dependent_outputs"].push_back(o);
    }
  }

  if (good_outputs.empty()) {
    std::string details;
    for (const auto& [o, reasons] : failed) {
      for (const Json& error : reasons) {
        if (!details.empty()) details += "\n";
        details += error["message"].get<std::string>() + ": " + error["details"].get<std::string>();
      }
    }
    result.error_body = failure_body(
        comfy_error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
        std::move(node_errors));
    return result;
  }
  Result<Prompt> parsed = Prompt::parse(std::move(converted));
  ND_ASSERT(parsed.is_ok(), "a prompt that passed validation does not parse: " + parsed.status().to_string());
  PromptAnalysis analysis = PromptAnalysis::analyze(*parsed);
  result.validated = ValidatedPrompt{std::move(parsed).value(), std::move(good_outputs), std::move(node_errors), Json(),
                                     std::move(analysis)};
  return result;
}

}  // namespace netdist::graph
