#include "cluster/comfy_worker.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "cluster/http_client.h"
#include "cluster/protocol.h"
#include "cluster/shard_inputs.h"
#include "core/base64.h"
#include "core/log.h"
#include "server/backend.h"

namespace netdist::cluster {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;

bool is_comfy_url(const std::string& url) { return url.rfind(std::string(kComfyUrlPrefix) + "http://", 0) == 0; }

std::string comfy_base_url(const std::string& url) {
  return is_comfy_url(url) ? url.substr(std::string(kComfyUrlPrefix).size()) : url;
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// The names of a COMBO input spec: [[names...], {...}] (classic) or ["COMBO", {"options": [...]}] (V3).
std::vector<std::string> combo_names(const Json& spec) {
  std::vector<std::string> out;
  const Json* list = nullptr;
  if (spec.is_array() && !spec.empty() && spec[0].is_array()) list = &spec[0];
  if (spec.is_array() && spec.size() >= 2 && spec[0] == "COMBO" && spec[1].is_object() &&
      spec[1].value("options", Json()).is_array())
    list = &spec[1]["options"];
  if (!list) return out;
  for (const Json& n : *list) {
    if (n.is_string()) out.push_back(n.get<std::string>());
  }
  return out;
}

}  // namespace

Result<Json> comfy_capabilities_from(const Json& object_info, const Json& system_stats) {
  if (!object_info.is_object()) return Status::corruption("/object_info is not a JSON object");
  if (!system_stats.is_object()) return Status::corruption("/system_stats is not a JSON object");
  std::vector<std::string> classes;
  for (auto it = object_info.begin(); it != object_info.end(); ++it) classes.push_back(it.key());
  std::vector<protocol::ModelEntry> models;
  if (object_info.contains("CheckpointLoaderSimple")) {
    const Json& info = object_info["CheckpointLoaderSimple"];
    const Json spec = info.is_object() && info.value("input", Json()).is_object()
                          ? info["input"].value("required", Json::object()).value("ckpt_name", Json())
                          : Json();
    if (!spec.is_array())
      return Status::corruption("/object_info CheckpointLoaderSimple has no input.required.ckpt_name list");
    for (const std::string& name : combo_names(spec)) models.push_back(protocol::ModelEntry{"", name, std::nullopt, 0, false});
  }
  const Json system = system_stats.value("system", Json::object());
  const Json devices = system_stats.value("devices", Json::array());
  Json device = {{"name", nullptr}, {"type", nullptr}, {"vram_total", nullptr}, {"vram_free", nullptr}};
  if (devices.is_array() && !devices.empty() && devices[0].is_object()) {
    for (const char* key : {"name", "type", "vram_total", "vram_free"}) device[key] = devices[0].value(key, Json());
  }
  const Json version = system.is_object() ? system.value("comfyui_version", Json()) : Json();
  Json reply{{"kind", "comfy"},
             {"engine_version", version.is_string() ? "ComfyUI " + version.get<std::string>() : "ComfyUI"},
             {"device", device}};
  protocol::put_capabilities(reply, classes, models, std::nullopt);
  return reply;
}

namespace {

Result<Json> get_json(const std::string& base_url, const std::string& target, const std::string& auth_token,
                      std::chrono::milliseconds timeout) {
  HttpCall call;
  call.target = target;
  call.auth_token = auth_token;
  call.timeout = timeout;
  ND_ASSIGN_OR_RETURN(HttpReply reply, http_call(base_url, call));
  if (reply.status != 200)
    return Status::unavailable(base_url + target + " answered " + std::to_string(reply.status));
  Json body = Json::parse(reply.body, nullptr, false);
  if (body.is_discarded()) return Status::unavailable(base_url + target + " answered something that is not JSON");
  return body;
}

}  // namespace

Result<Json> fetch_comfy_capabilities(const std::string& base_url, const std::string& auth_token,
                                      std::chrono::milliseconds timeout) {
  ND_ASSIGN_OR_RETURN(Json stats, get_json(base_url, "/system_stats", auth_token, timeout));
  ND_ASSIGN_OR_RETURN(Json info, get_json(base_url, "/object_info", auth_token, timeout));
  auto caps = comfy_capabilities_from(info, stats);
  if (!caps.is_ok()) return caps.status().with_context(base_url);
  return caps;
}

Status probe_comfy_worker(const std::string& base_url, const std::string& auth_token,
                          std::chrono::milliseconds timeout) {
  ND_ASSIGN_OR_RETURN(Json stats, get_json(base_url, "/system_stats", auth_token, timeout));
  if (!stats.is_object()) return Status::unavailable(base_url + "/system_stats is not a JSON object");
  return Status::ok();
}

bool comfy_error_is_worker_fault(const Json& execution_error) {
  if (!execution_error.is_object()) return false;
  const auto text = [&](const char* key) {
    const Json& v = execution_error.value(key, Json());
    return v.is_string() ? lower(v.get<std::string>()) : std::string();
  };
  const std::string what = text("exception_type") + "\n" + text("exception_message");
  for (const char* marker : {"outofmemory", "out of memory", "memoryerror", "cuda error", "cudaerror", "hip error",
                             "cudnn_status", "cublas_status", "device-side assert", "no space left on device"}) {
    if (what.find(marker) != std::string::npos) return true;
  }
  return false;
}

// ---- WebSocket client --------------------------------------------------------------------------------------

struct ComfyEventStream::Impl {
  net::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buffer;
  bool reading = false, done = false, closed = false;
  beast::error_code ec;
  std::string url;

  // Runs the io_context until `flag` or `deadline`.
  void run_until(const bool& flag, std::chrono::steady_clock::time_point deadline) {
    while (!flag && std::chrono::steady_clock::now() < deadline) {
      ioc.restart();
      ioc.run_for(std::chrono::milliseconds(20));
    }
  }
};

ComfyEventStream::ComfyEventStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ComfyEventStream::~ComfyEventStream() {
  if (!impl_) return;
  beast::error_code ignored;
  beast::get_lowest_layer(impl_->ws).socket().close(ignored);
  impl_->ioc.restart();
  impl_->ioc.run_for(std::chrono::milliseconds(50));  // lets a pending read finish with its error
}

Result<std::unique_ptr<ComfyEventStream>> ComfyEventStream::open(const std::string& base_url,
                                                                  const std::string& client_id,
                                                                  const std::string& auth_token,
                                                                  std::chrono::milliseconds timeout) {
  ND_ASSIGN_OR_RETURN(HttpUrl u, parse_http_url(base_url));
  auto impl = std::make_unique<Impl>();
  impl->url = base_url + "/ws";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  try {
    net::ip::tcp::resolver resolver(impl->ioc);
    beast::error_code ec;
    auto endpoints = resolver.resolve(u.host, u.port, ec);
    if (ec) return Status::unavailable(impl->url + ": cannot resolve " + u.host + ": " + ec.message());
    auto& tcp = beast::get_lowest_layer(impl->ws);
    tcp.expires_after(timeout);
    bool done = false;
    tcp.async_connect(endpoints, [&](beast::error_code e, const auto&) {
      ec = e;
      done = true;
    });
    impl->run_until(done, deadline);
    if (!done || ec) return Status::unavailable(impl->url + ": cannot connect: " + (done ? ec.message() : "timed out"));
    impl->ws.set_option(websocket::stream_base::decorator([auth_token](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "netdist-cluster");
      if (!auth_token.empty()) req.set(beast::http::field::authorization, "Bearer " + auth_token);
    }));
    done = false;
    impl->ws.async_handshake(u.host + ":" + u.port, u.base_path + "/ws?clientId=" + url_encode(client_id),
                             [&](beast::error_code e) {
                               ec = e;
                               done = true;
                             });
    impl->run_until(done, deadline);
    if (!done || ec)
      return Status::unavailable(impl->url + ": WebSocket handshake failed: " + (done ? ec.message() : "timed out"));
    tcp.expires_never();
    impl->ws.read_message_max(64ull << 20);
  } catch (const std::exception& e) {
    return Status::unavailable(impl->url + ": " + e.what());
  }
  return std::unique_ptr<ComfyEventStream>(new ComfyEventStream(std::move(impl)));
}

Result<std::optional<ComfyMessage>> ComfyEventStream::next(std::chrono::milliseconds wait) {
  Impl& s = *impl_;
  if (s.closed) return Status::unavailable(s.url + ": closed: " + s.ec.message());
  if (!s.reading) {
    s.reading = true;
    s.done = false;
    s.ws.async_read(s.buffer, [&s](beast::error_code e, std::size_t) {
      s.ec = e;
      s.done = true;
    });
  }
  s.run_until(s.done, std::chrono::steady_clock::now() + wait);
  if (!s.done) return std::optional<ComfyMessage>();
  s.reading = false;
  if (s.ec) {
    s.closed = true;
    return Status::unavailable(s.url + ": closed: " + s.ec.message());
  }
  ComfyMessage m;
  const std::string bytes = beast::buffers_to_string(s.buffer.data());
  s.buffer.consume(s.buffer.size());
  if (!s.ws.got_text()) {
    m.is_binary = true;
    m.binary = bytes;
    return std::optional<ComfyMessage>(std::move(m));
  }
  Json j = Json::parse(bytes, nullptr, false);
  if (!j.is_object() || !j.value("type", Json()).is_string()) return std::optional<ComfyMessage>();
  m.type = j["type"].get<std::string>();
  m.data = j.value("data", Json::object());
  return std::optional<ComfyMessage>(std::move(m));
}

// ---- running a prompt ----------------------------------------------------------------------------------------

namespace {

struct Runner {
  explicit Runner(const ComfyRun& r) : run(r) {}
  const ComfyRun& run;
  std::string remote_id;
  bool cancel_sent = false;

  std::string who() const { return "ComfyUI worker " + run.label; }

  Result<HttpReply> call(const std::string& method, const std::string& target, std::string body = "",
                         const std::string& content_type = "application/json") const {
    HttpCall c;
    c.method = method;
    c.target = target;
    c.body = std::move(body);
    c.content_type = content_type;
    c.auth_token = run.auth_token;
    c.timeout = std::chrono::seconds(30);
    auto r = http_call(run.base_url, c);
    if (!r.is_ok()) return r.status().with_context(who());
    if (r->status == 401 || r->status == 403)
      return Status::unauthenticated(who() + ": " + method + " " + target + " refused (" + std::to_string(r->status) +
                                     "): check --auth-token");
    return r;
  }

  // Uploads every file the prompt's LoadImage nodes read and points the nodes at the uploaded names.
  Result<Json> upload_inputs(Json prompt) const {
    Json inputs = run.inputs;
    if (!inputs.is_object()) {
      ND_ASSIGN_OR_RETURN(inputs, collect_shard_inputs(prompt, run.input_dir));
    }
    std::map<std::string, std::string> uploaded;  // name in the prompt → name on the worker
    for (auto it = inputs.begin(); it != inputs.end(); ++it) {
      ND_ASSIGN_OR_RETURN(protocol::InputFile file, protocol::input_file_from_json(it.key(), it.value()));
      ND_ASSIGN_OR_RETURN(std::string bytes, base64_decode(file.data));
      const std::string& sha = file.sha256;
      const std::string name = "netdist-" + sha.substr(0, 16) + std::filesystem::path(it.key()).extension().string();
      const std::string boundary = "netdist-" + sha.substr(0, 24);
      std::string body;
      const auto field = [&](const std::string& key, const std::string& value) {
        body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + key + "\"\r\n\r\n" + value + "\r\n";
      };
      body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"" + name +
              "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + bytes + "\r\n";
      field("type", "input");
      field("overwrite", "true");
      body += "--" + boundary + "--\r\n";
      ND_ASSIGN_OR_RETURN(HttpReply r,
                          call("POST", "/upload/image", std::move(body), "multipart/form-data; boundary=" + boundary));
      if (r.status != 200)
        return Status::unavailable(who() + ": POST /upload/image of '" + it.key() + "' answered " +
                                   std::to_string(r.status) + ": " + r.body);
      Json reply = Json::parse(r.body, nullptr, false);
      if (!reply.is_object() || !reply.value("name", Json()).is_string())
        return Status::unavailable(who() + ": POST /upload/image answered without a \"name\"");
      const std::string sub = reply.value("subfolder", "");
      uploaded[it.key()] = (sub.empty() ? "" : sub + "/") + reply["name"].get<std::string>();
    }
    for (auto node = prompt.begin(); node != prompt.end(); ++node) {
      if (!node.value().is_object() || !reads_input_file(node.value().value("class_type", ""))) continue;
      Json& in = node.value()["inputs"];
      if (!in.is_object() || !in.value("image", Json()).is_string()) continue;
      auto hit = uploaded.find(in["image"].get<std::string>());
      if (hit != uploaded.end()) in["image"] = hit->second;
    }
    return prompt;
  }

  // The prompt's entry of GET /history/{id}; null while the worker has none.
  Result<Json> history() const {
    ND_ASSIGN_OR_RETURN(HttpReply r, call("GET", "/history/" + url_encode(remote_id)));
    if (r.status != 200)
      return Status::unavailable(who() + ": GET /history/" + remote_id + " answered " + std::to_string(r.status));
    Json h = Json::parse(r.body, nullptr, false);
    if (!h.is_object()) return Status::unavailable(who() + ": GET /history/" + remote_id + " is not a JSON object");
    return h.contains(remote_id) ? h[remote_id] : Json();
  }

  // "running", "pending" or "" from GET /queue.
  Result<std::string> queue_state() const {
    ND_ASSIGN_OR_RETURN(HttpReply r, call("GET", "/queue"));
    Json q = Json::parse(r.body, nullptr, false);
    if (r.status != 200 || !q.is_object())
      return Status::unavailable(who() + ": GET /queue answered " + std::to_string(r.status));
    for (const char* key : {"queue_running", "queue_pending"}) {
      for (const Json& item : q.value(key, Json::array())) {
        if (item.is_array() && item.size() > 1 && item[1] == remote_id)
          return std::string(key == std::string("queue_running") ? "running" : "pending");
      }
    }
    return std::string();
  }

  // Withdraws the remote prompt: deleted while pending, interrupted (by id) while running.
  void withdraw() {
    if (cancel_sent || remote_id.empty()) return;
    cancel_sent = true;
    (void)call("POST", "/queue", Json{{"delete", Json::array({remote_id})}}.dump());
    auto state = queue_state();
    if (state.is_ok() && *state == "running")
      (void)call("POST", "/interrupt", Json{{"prompt_id", remote_id}}.dump());
  }

  // An event payload with the remote prompt id replaced by the coordinator's.
  Json local(Json data) const {
    if (data.is_object() && data.contains("prompt_id")) data["prompt_id"] = run.prompt_id;
    return data;
  }

  bool for_us(const Json& data) const {
    if (!data.is_object() || !data.contains("prompt_id")) return true;  // older ComfyUI: progress has no id
    return data["prompt_id"] == remote_id;
  }

  Result<PromptReply> go();

 private:
  // The event stream (null: polling /history only); a terminal event came (the history entry follows soon),
  // the prompt's execution_error and execution_interrupted, the nodes whose `executed` came.
  std::unique_ptr<ComfyEventStream> events;
  bool finished = false, interrupted = false;
  Json error_event;
  std::set<std::string> executed_nodes;
  // POST /prompt: true once queued (remote_id set), false when refused (reply.status says why); follow it
  // until its history entry is there (cancel and timeout withdraw it); its outcome (an error for the
  // worker's fault, else reply.status); its outputs and the files they name (GET /view).
  Result<bool> post(const Json& prompt, PromptReply& reply);
  Result<Json> follow(PromptReply& reply);
  void on_message(const ComfyMessage& m, PromptReply& reply);
  Status outcome(const Json& entry, PromptReply& reply);
  Status fetch_outputs(const Json& entry, PromptReply& reply);
};

std::string node_errors_text(const Json& node_errors) {
  std::string out;
  if (!node_errors.is_object()) return out;
  for (auto it = node_errors.begin(); it != node_errors.end(); ++it) {
    const Json& n = it.value();
    std::string line = "node " + it.key();
    if (n.is_object() && n.value("class_type", Json()).is_string()) line += " (" + n["class_type"].get<std::string>() + ")";
    for (const Json& e : n.is_object() ? n.value("errors", Json::array()) : Json::array()) {
      if (!e.is_object()) continue;
      line += ": " + e.value("message", std::string());
      const std::string details = e.value("details", std::string());
      if (!details.empty()) line += " (" + details + ")";
    }
    out += "; " + line;
  }
  return out;
}

Result<PromptReply> Runner::go() {
  ND_ASSIGN_OR_RETURN(Json prompt, upload_inputs(run.prompt));
  // The socket first, so no event of the prompt is missed; without one the history poll alone follows it.
  auto ws = ComfyEventStream::open(run.base_url, run.client_id, run.auth_token, std::chrono::seconds(10));
  if (ws.is_ok())
    events = std::move(*ws);
  else
    log::warn("cluster: {}: no WebSocket ({}); following the prompt by polling /history", who(), ws.status().to_string());
  PromptReply reply;
  ND_ASSIGN_OR_RETURN(bool posted, post(prompt, reply));
  if (!posted) return reply;  // refused: the prompt's own error
  ND_ASSIGN_OR_RETURN(Json entry, follow(reply));
  ND_RETURN_IF_ERROR(outcome(entry, reply));
  if (reply.status.is_ok()) ND_RETURN_IF_ERROR(fetch_outputs(entry, reply));
  return reply;
}

Result<bool> Runner::post(const Json& prompt, PromptReply& reply) {
  Json extra = run.extra_data.is_object() ? run.extra_data : Json::object();
  extra.erase("client_id");
  ND_ASSIGN_OR_RETURN(HttpReply posted,
                      call("POST", "/prompt",
                           Json{{"prompt", prompt}, {"client_id", run.client_id}, {"extra_data", extra}}.dump()));
  Json body = Json::parse(posted.body, nullptr, false);
  if (posted.status == 400) {
    const Json err = body.is_object() ? body.value("error", Json()) : Json();
    std::string message = err.is_object() ? err.value("message", std::string()) : posted.body;
    const std::string details = err.is_object() ? err.value("details", std::string()) : std::string();
    if (!details.empty()) message += ": " + details;
    message += node_errors_text(body.is_object() ? body.value("node_errors", Json()) : Json());
    reply.status = Status::invalid_argument(who() + " refused the prompt: " + message);
    return false;
  }
  if (posted.status != 200 || !body.is_object() || !body.value("prompt_id", Json()).is_string())
    return Status::unavailable(who() + ": POST /prompt answered " + std::to_string(posted.status) + ": " +
                               posted.body.substr(0, 500));
  remote_id = body["prompt_id"].get<std::string>();
  return true;
}

Result<Json> Runner::follow(PromptReply& reply) {
  const auto started = std::chrono::steady_clock::now();
  auto last_poll = started;
  for (;;) {
    if (run.cancelled && run.cancelled()) {
      withdraw();
      return Status::cancelled(who() + ": prompt " + run.prompt_id + " (remote " + remote_id + ") interrupted");
    }
    if (std::chrono::steady_clock::now() - started > run.timeout) {
      withdraw();
      char limit[32];
      std::snprintf(limit, sizeof limit, "%.1f", double(run.timeout.count()) / 1000.0);
      return Status::unavailable(who() + ": prompt " + run.prompt_id + " (remote " + remote_id +
                                 ") did not finish within " + limit + " s (--shard-timeout)");
    }
    if (events) {
      auto got = events->next(std::chrono::milliseconds(100));
      if (!got.is_ok()) {
        log::warn("cluster: {}: WebSocket lost ({}); polling /history", who(), got.status().to_string());
        events.reset();
      } else if (got->has_value()) {
        on_message(**got, reply);
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const auto poll_every = finished ? std::chrono::milliseconds(50)
                            : events ? std::chrono::milliseconds(1000)
                                     : std::chrono::milliseconds(250);
    if (std::chrono::steady_clock::now() - last_poll < poll_every) continue;
    last_poll = std::chrono::steady_clock::now();
    ND_ASSIGN_OR_RETURN(Json entry, history());
    if (entry.is_object()) return entry;
    ND_ASSIGN_OR_RETURN(std::string state, queue_state());
    if (state.empty()) {  // neither queued nor running nor in history: look once more (a finish in between)
      ND_ASSIGN_OR_RETURN(entry, history());
      if (entry.is_object()) return entry;
      return Status::unavailable(who() + ": prompt " + run.prompt_id + " (remote " + remote_id +
                                 ") vanished from the worker's queue and history (did it restart?)");
    }
  }
}

void Runner::on_message(const ComfyMessage& m, PromptReply& reply) {
  if (m.is_binary) {
    // ComfyUI preview frame: u32 event 1 (PREVIEW_IMAGE), u32 format (1 JPEG, 2 PNG), the image.
    if (m.binary.size() > 8 && run.relay && uint8_t(m.binary[3]) == 1 && m.binary[0] == 0) {
      const std::string image = m.binary.substr(8);
      Json data = {{"format", uint8_t(m.binary[7]) == 2 ? "PNG" : "JPEG"},
                   {"image", Json::binary(std::vector<uint8_t>(image.begin(), image.end()))}};
      run.relay(server::kPreviewEvent, data);
    }
    return;
  }
  if (!for_us(m.data)) return;
  const std::string& t = m.type;
  if (t == "executed") {
    if (m.data.is_object() && m.data.value("node", Json()).is_string())
      executed_nodes.insert(m.data["node"].get<std::string>());
    reply.events.push_back(Json::array({t, local(m.data)}));
  } else if (t == "execution_error") {
    error_event = m.data;
    finished = true;
  } else if (t == "execution_interrupted") {
    interrupted = true;
    finished = true;
  } else if (t == "execution_success") {
    finished = true;
  } else if (t == "executing" && m.data.is_object() && m.data.value("node", Json()).is_null()) {
    if (m.data.contains("prompt_id")) finished = true;
  } else if ((t == "execution_start" || t == "execution_cached" || t == "executing" || t == "progress" ||
              t == "progress_state") &&
             run.relay) {
    run.relay(t, local(m.data));
  }
}

Status Runner::outcome(const Json& entry, PromptReply& reply) {
  // The outcome from the history entry (the socket may have missed the end).
  const Json status = entry.value("status", Json::object());
  for (const Json& msg : status.is_object() ? status.value("messages", Json::array()) : Json::array()) {
    if (!msg.is_array() || msg.size() != 2 || !msg[0].is_string()) continue;
    if (msg[0] == "execution_error" && error_event.is_null()) error_event = msg[1];
    if (msg[0] == "execution_interrupted") interrupted = true;
  }
  const bool success = status.is_object() && status.value("status_str", Json()) == "success";
  if (!success && error_event.is_object()) {
    const std::string message = error_event.value("exception_type", std::string()) + ": " +
                                error_event.value("exception_message", std::string());
    const std::string node = error_event.value("node_id", Json()).is_string()
                                 ? " in node " + error_event["node_id"].get<std::string>() + " (" +
                                       error_event.value("node_type", std::string()) + ")"
                                 : std::string();
    if (comfy_error_is_worker_fault(error_event))
      return Status::unavailable(who() + ": prompt " + run.prompt_id + " failed" + node + " for the worker's sake: " +
                                 message);
    reply.status = Status::internal(who() + ": prompt " + run.prompt_id + " failed" + node + ": " + message);
    reply.events.push_back(Json::array({"execution_error", local(error_event)}));
    return Status::ok();
  }
  if (!success && interrupted)
    return Status::unavailable(who() + ": prompt " + run.prompt_id + " (remote " + remote_id +
                               ") was interrupted on the worker, not by the coordinator");
  if (!success)
    return Status::unavailable(who() + ": prompt " + run.prompt_id + " (remote " + remote_id +
                               ") ended without success: " + status.dump());
  return Status::ok();
}

Status Runner::fetch_outputs(const Json& entry, PromptReply& reply) {
  reply.outputs = entry.value("outputs", Json::object());
  if (!reply.outputs.is_object()) return Status::unavailable(who() + ": history outputs are not an object");
  for (auto node = reply.outputs.begin(); node != reply.outputs.end(); ++node) {
    if (!node.value().is_object()) continue;
    if (!executed_nodes.count(node.key())) {  // the socket missed it: rebuild it from the history
      reply.events.push_back(Json::array(
          {"executed", {{"node", node.key()}, {"display_node", node.key()}, {"output", node.value()},
                        {"prompt_id", run.prompt_id}}}));
    }
    for (auto list = node.value().begin(); list != node.value().end(); ++list) {
      if (!list.value().is_array()) continue;
      for (const Json& f : list.value()) {
        if (!f.is_object() || !f.value("filename", Json()).is_string()) continue;
        const std::string type = f.value("type", "output");
        if (type != "output" && type != "temp") continue;
        PromptFile file{type, f.value("subfolder", ""), f["filename"].get<std::string>(), {}};
        const std::string target = "/view?filename=" + url_encode(file.filename) +
                                   "&subfolder=" + url_encode(file.subfolder) + "&type=" + type;
        ND_ASSIGN_OR_RETURN(HttpReply got, call("GET", target));
        if (got.status != 200)
          return Status::unavailable(who() + ": GET " + target + " answered " + std::to_string(got.status));
        file.bytes = std::move(got.body);
        reply.files.push_back(std::move(file));
      }
    }
  }
  return Status::ok();
}

}  // namespace

Result<PromptReply> run_comfy_prompt(const ComfyRun& run) {
  Runner r(run);
  return r.go();
}

}  // namespace netdist::cluster
