// POST/GET /prompt, /queue, /history, /history/{id}, POST /interrupt, /free (ComfyUI server.py).
#include <cmath>
#include <random>

#include "server/routes.h"

namespace netdist::server {

namespace {

using nlohmann::ordered_json;

const char* const kSensitiveExtraDataKeys[] = {"auth_token_comfy_org", "api_key_comfy_org"};

std::string uuid4() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffull) | 0x0000000000004000ull;
  lo = (lo & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffull));
  return buf;
}

bool truthy(const ordered_json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0.0;
  if (v.is_string() || v.is_array() || v.is_object()) return !v.empty();
  return true;
}

std::string id_string(const ordered_json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

Response bad_json(const Status& status) { return error_response(400, "invalid_json", status.message()); }

Result<ordered_json> json_object_body(const Request& request) {
  ND_ASSIGN_OR_RETURN(ordered_json body, parse_json_body(request.body));
  if (!body.is_object()) return Status::invalid_argument("request body must be a JSON object, got " + std::string(body.type_name()));
  return body;
}

Response post_prompt(ServerState& state, const Request& request) {
  auto parsed = json_object_body(request);
  if (!parsed.is_ok()) return bad_json(parsed.status());
  ordered_json& body = *parsed;

  ordered_json number;
  if (body.contains("number")) {
    const ordered_json& n = body["number"];
    double value = NAN;
    if (n.is_number()) {
      value = n.get<double>();
    } else if (n.is_string()) {
      try {
        value = std::stod(n.get<std::string>());
      } catch (...) {
      }
    }
    if (std::isnan(value)) return error_response(400, "invalid_number", "\"number\" must be a number, got " + n.dump());
    number = value;
  } else {
    number = state.queue().take_number(body.contains("front") && truthy(body["front"]));
  }

  if (!body.contains("prompt")) {
    return json_response({{"error", {{"type", "no_prompt"}, {"message", "No prompt provided"},
                                     {"details", "No prompt provided"}, {"extra_info", ordered_json::object()}}},
                          {"node_errors", ordered_json::object()}},
                         400);
  }
  const ordered_json& prompt = body["prompt"];
  const std::string prompt_id = body.contains("prompt_id") && !body["prompt_id"].is_null() ? id_string(body["prompt_id"]) : uuid4();

  ValidationOutcome outcome = state.backend().validate(prompt);
  if (!outcome.ok) {
    ordered_json error_body = outcome.error_body;
    if (!error_body.is_object()) error_body = ordered_json::object();
    if (!error_body.contains("error")) error_body["error"] = {{"type", "invalid_prompt"}, {"message", "Invalid prompt"},
                                                              {"details", ""}, {"extra_info", ordered_json::object()}};
    if (!error_body.contains("node_errors")) error_body["node_errors"] = ordered_json::object();
    return json_response(error_body, 400);
  }

  ordered_json extra_data = body.contains("extra_data") && body["extra_data"].is_object() ? body["extra_data"] : ordered_json::object();
  auto settings = parse_queue_settings(extra_data);
  Status settings_ok = settings.is_ok() ? check_queue_settings(*settings, state.queue().policy_name()) : settings.status();
  if (!settings_ok.is_ok()) return error_response(400, "invalid_queue_settings", settings_ok.message());
  if (body.contains("client_id")) extra_data["client_id"] = body["client_id"];
  ordered_json sensitive = ordered_json::object();
  for (const char* key : kSensitiveExtraDataKeys) {
    if (extra_data.contains(key)) {
      sensitive[key] = extra_data[key];
      extra_data.erase(key);
    }
  }

  QueueItem item;
  item.number = number;
  item.prompt_id = prompt_id;
  item.prompt = outcome.prompt.is_null() ? prompt : outcome.prompt;
  item.extra_data = std::move(extra_data);
  item.outputs_to_execute = ordered_json::array();
  for (const auto& id : outcome.outputs) item.outputs_to_execute.push_back(id);
  item.sensitive = std::move(sensitive);
  item.validated = std::move(outcome.validated);  // travels with the prompt to execution
  // With --data-dir the prompt is accepted only once it is on disk: a prompt the store could not record is
  // refused (507 for a full disk, 500 otherwise, the message naming the database file), never run unrecorded.
  Status accepted = state.queue().accept(std::move(item));
  if (!accepted.is_ok()) {
    const bool full = accepted.message().find("disk full") != std::string::npos;
    return error_response(full ? 507 : 500, "prompt_not_recorded",
                          "the prompt was not queued: " + accepted.message());
  }

  ordered_json node_errors = outcome.node_errors.is_null() ? ordered_json::object() : outcome.node_errors;
  return json_response({{"prompt_id", prompt_id}, {"number", number}, {"node_errors", node_errors}});
}

Result<std::optional<int64_t>> int_param(const Request& request, const std::string& name) {
  const auto value = request.query_value(name);
  if (!value) return std::optional<int64_t>();
  try {
    size_t used = 0;
    const long long v = std::stoll(*value, &used);
    if (used != value->size()) throw std::invalid_argument(name);
    return std::optional<int64_t>(v);
  } catch (...) {
    return Status::invalid_argument("query parameter " + name + " must be an integer, got '" + *value + "'");
  }
}

Response get_history(ServerState& state, const Request& request) {
  auto max_items = int_param(request, "max_items");
  if (!max_items.is_ok()) return error_response(400, "invalid_query", max_items.status().message());
  auto offset = int_param(request, "offset");
  if (!offset.is_ok()) return error_response(400, "invalid_query", offset.status().message());
  return json_response(state.queue().get_history(*max_items, offset->value_or(-1)));
}

Response post_queue(ServerState& state, const Request& request) {
  auto parsed = json_object_body(request);
  if (!parsed.is_ok()) return bad_json(parsed.status());
  const ordered_json& body = *parsed;
  if (body.contains("clear") && truthy(body["clear"])) state.queue().wipe_queue();
  if (body.contains("delete") && body["delete"].is_array()) {
    for (const auto& id : body["delete"]) state.queue().delete_queue_item(id_string(id));
  }
  return empty_response(200);
}

Response post_history(ServerState& state, const Request& request) {
  auto parsed = json_object_body(request);
  if (!parsed.is_ok()) return bad_json(parsed.status());
  const ordered_json& body = *parsed;
  if (body.contains("clear") && truthy(body["clear"])) state.queue().wipe_history();
  if (body.contains("delete") && body["delete"].is_array()) {
    for (const auto& id : body["delete"]) state.queue().delete_history_item(id_string(id));
  }
  return empty_response(200);
}

Response post_interrupt(ServerState& state, const Request& request) {
  ordered_json body = ordered_json::parse(request.body, nullptr, false);
  std::optional<std::string> prompt_id;
  if (body.is_object() && body.contains("prompt_id") && truthy(body["prompt_id"])) prompt_id = id_string(body["prompt_id"]);
  state.interrupt(prompt_id);
  return empty_response(200);
}

Response post_free(ServerState& state, const Request& request) {
  auto parsed = json_object_body(request);
  if (!parsed.is_ok()) return bad_json(parsed.status());
  const ordered_json& body = *parsed;
  const ordered_json unload = body.value("unload_models", ordered_json(false));
  const ordered_json free = body.value("free_memory", ordered_json(false));
  if (truthy(unload)) state.queue().set_flag("unload_models", unload);
  if (truthy(free)) state.queue().set_flag("free_memory", free);
  return empty_response(200);
}

}  // namespace

std::optional<Response> route_prompt(ServerState& state, const Request& request, const std::string& path) {
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  if (path == "/prompt") {
    if (get) return json_response(state.queue().queue_info_json());
    if (post) return post_prompt(state, request);
  } else if (path == "/queue") {
    if (get) return json_response(state.queue().queue_json());
    if (post) return post_queue(state, request);
  } else if (path == "/history") {
    if (get) return get_history(state, request);
    if (post) return post_history(state, request);
  } else if (get && path.rfind("/history/", 0) == 0 && path.size() > 9 && path.find('/', 9) == std::string::npos) {
    return json_response(state.queue().get_history_item(url_decode(path.substr(9), false)));
  } else if (post && path == "/interrupt") {
    return post_interrupt(state, request);
  } else if (post && path == "/free") {
    return post_free(state, request);
  }
  return std::nullopt;
}

}  // namespace netdist::server
