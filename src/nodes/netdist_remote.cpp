#include "nodes/netdist_remote.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <random>
#include <set>
#include <thread>

namespace netdist::nodes {

namespace {

constexpr std::chrono::milliseconds kPoll{100};        // NetDist polls every 0.5 s
constexpr std::chrono::milliseconds kShortTimeout{4000};  // NetDist's timeout for every control call
constexpr int kMaxFailedPolls = 3;                      // NetDist gives up after the 4th failed /history
constexpr int kQueueCheckEvery = 5;                     // polls between "is it still queued?" checks

bool is_link(const Json& v) { return v.is_array() && !v.empty() && v[0].is_string(); }

std::string percent_encode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string short_body(const std::string& body) { return body.size() > 600 ? body.substr(0, 600) + "..." : body; }

// The exception_message of an execution_error in a failed history entry, or "".
std::string remote_error_message(const Json& entry) {
  const Json status = entry.value("status", Json::object());
  if (!status.is_object() || !status.contains("messages") || !status["messages"].is_array()) return "";
  for (const Json& m : status["messages"]) {
    if (m.is_array() && m.size() == 2 && m[0] == "execution_error" && m[1].is_object()) {
      return m[1].value("node_type", std::string("?")) + " (node " + m[1].value("node_id", std::string("?")) +
             "): " + m[1].value("exception_message", std::string());
    }
  }
  return "";
}

// Whether `queue` (GET /queue) lists prompt `prompt_id` as running or pending.
bool queue_has(const Json& queue, const std::string& prompt_id) {
  for (const char* key : {"queue_running", "queue_pending"}) {
    if (!queue.contains(key) || !queue[key].is_array()) continue;
    for (const Json& item : queue[key]) {
      if (item.is_array() && item.size() > 1 && item[1].is_string() && item[1] == prompt_id) return true;
    }
  }
  return false;
}

}  // namespace

Result<std::string> clean_remote_url(const std::string& raw) {
  std::string s = raw;
  for (char& c : s) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') c = ',';
  }
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string part = s.substr(start, end - start);
    if (!part.empty()) {
      while (!part.empty() && part.back() == '/') part.pop_back();
      return part;
    }
    start = end + 1;
  }
  return Status::invalid_argument("remote_url '" + raw + "' holds no URL");
}

const std::string& netdist_client_id() {
  static const std::string id = [] {
    static const char kLetters[] = "abcdefghijklmnopqrstupvxyz";  // the plugin's alphabet (sic)
    std::random_device rd;
    std::string gid;
    for (int i = 0; i < 5; ++i) gid += kLetters[rd() % 26];
    return "netdist-" + gid;
  }();
  return id;
}

std::string new_job_id() {
  static std::atomic<int64_t> last{0};
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  int64_t prev = last.load();
  int64_t next = 0;
  do {
    next = std::max(now, prev + 1);
  } while (!last.compare_exchange_weak(prev, next));
  return netdist_client_id() + "-" + std::to_string(next);
}

Result<Json> build_remote_prompt(const Json& prompt, const std::string& remote_url, const std::string& outputs,
                                 const std::string& remote_os) {
  if (!prompt.is_object()) return Status::invalid_argument("NetDist: the prompt to dispatch is not a JSON object");
  Json p = prompt;
  std::string output_src;
  for (auto it = p.begin(); it != p.end(); ++it) {
    Json& node = it.value();
    const std::string cls = node.value("class_type", std::string());
    if (cls.rfind("RemoteQueue", 0) != 0) continue;
    const Json url = node["inputs"].value("remote_url", Json());
    if (!url.is_string())
      return Status::invalid_argument("NetDist: node " + it.key() + " (" + cls + ") has no literal remote_url");
    ND_ASSIGN_OR_RETURN(std::string clean, clean_remote_url(url.get<std::string>()));
    if (clean == remote_url) {
      node["inputs"]["enabled"] = "remote";
      output_src = it.key();
    } else {
      node["inputs"]["enabled"] = "false";
    }
  }

  std::set<std::string> to_delete;
  Json output;
  for (auto it = p.begin(); it != p.end(); ++it) {
    const std::string cls = it.value().value("class_type", std::string());
    const Json& inputs = it.value().contains("inputs") ? it.value()["inputs"] : Json();
    if (cls == "FetchRemote") {
      const Json info = inputs.is_object() ? inputs.value("remote_info", Json()) : Json();
      if (is_link(info) && info[0] == output_src && !output_src.empty()) {
        output = Json{{"inputs", {{"images", inputs.value("final_image", Json())}}},
                      {"class_type", "PreviewImage"},
                      {"final_output", true}};
      }
      to_delete.insert(it.key());
    }
    if (outputs != "any" && (cls == "PreviewImage" || cls == "SaveImage")) to_delete.insert(it.key());
  }
  // Everything downstream of a deleted node goes too (NetDist's recursive_node_deletion).
  for (bool grew = true; grew;) {
    grew = false;
    for (auto it = p.begin(); it != p.end(); ++it) {
      if (to_delete.count(it.key()) || !it.value().contains("inputs") || !it.value()["inputs"].is_object()) continue;
      for (const auto& [name, v] : it.value()["inputs"].items()) {
        if (is_link(v) && to_delete.count(v[0].get<std::string>())) {
          to_delete.insert(it.key());
          grew = true;
          break;
        }
      }
    }
  }
  if (!output.is_null()) {
    int64_t max_id = 0;
    for (auto it = p.begin(); it != p.end(); ++it) {
      const std::string& k = it.key();
      if (!k.empty() && k.size() < 18 && std::all_of(k.begin(), k.end(), ::isdigit)) max_id = std::max<int64_t>(max_id, std::stoll(k));
    }
    std::string id = std::to_string(max_id + 1);
    while (p.contains(id) && !to_delete.count(id)) id = std::to_string(++max_id + 1);
    p[id] = output;
    to_delete.erase(id);
  }
  for (const std::string& id : to_delete) p.erase(id);

  if (remote_os == "nt") {
    static const std::vector<std::pair<std::string, std::string>> kPathInputs = {
        {"CheckpointLoaderSimple", "ckpt_name"}, {"CheckpointLoader", "ckpt_name"},
        {"LoraLoader", "lora_name"}, {"LoraLoaderModelOnly", "lora_name"}, {"VAELoader", "vae_name"}};
    for (auto it = p.begin(); it != p.end(); ++it) {
      const std::string cls = it.value().value("class_type", std::string());
      for (const auto& [c, key] : kPathInputs) {
        if (cls != c || !it.value()["inputs"].contains(key) || !it.value()["inputs"][key].is_string()) continue;
        std::string v = it.value()["inputs"][key].get<std::string>();
        std::replace(v.begin(), v.end(), '/', '\\');
        it.value()["inputs"][key] = v;
      }
    }
  }
  return p;
}

std::vector<RemoteImageRef> job_output_images(const Json& entry) {
  std::vector<RemoteImageRef> out;
  const Json outputs = entry.value("outputs", Json::object());
  if (!outputs.is_object() || outputs.empty()) return out;
  std::string output_id = (--outputs.end()).key();
  const Json& prompt = entry.value("prompt", Json::array());
  if (prompt.is_array() && prompt.size() > 2 && prompt[2].is_object()) {
    for (auto it = prompt[2].begin(); it != prompt[2].end(); ++it) {
      if (it.value().is_object() && it.value().value("final_output", false) == true && outputs.contains(it.key())) {
        output_id = it.key();
        break;
      }
    }
  }
  const Json images = outputs[output_id].value("images", Json::array());
  for (const Json& img : images) {
    if (!img.is_object()) continue;
    out.push_back({img.value("filename", std::string()), img.value("subfolder", std::string()),
                   img.value("type", std::string("output"))});
  }
  return out;
}

std::string view_url(const std::string& remote_url, const RemoteImageRef& ref) {
  return remote_url + "/view?filename=" + percent_encode(ref.filename) + "&subfolder=" + percent_encode(ref.subfolder) +
         "&type=" + percent_encode(ref.type);
}

Result<std::string> RemoteClient::get(const std::string& url, std::chrono::milliseconds timeout) const {
  HttpRequest r;
  r.url = url;
  r.timeout = timeout;
  ND_ASSIGN_OR_RETURN(HttpResponse reply, http_(r));
  if (reply.status < 200 || reply.status >= 300)
    return Status::unavailable("GET " + url + " answered HTTP " + std::to_string(reply.status) + ": " +
                               short_body(reply.body));
  return std::move(reply.body);
}

Result<std::string> RemoteClient::post(const std::string& url, const std::string& body, const std::string& content_type,
                                       std::chrono::milliseconds timeout) const {
  HttpRequest r;
  r.method = "POST";
  r.url = url;
  r.body = body;
  r.content_type = content_type;
  r.timeout = timeout;
  ND_ASSIGN_OR_RETURN(HttpResponse reply, http_(r));
  if (reply.status < 200 || reply.status >= 300)
    return Status::unavailable("POST " + url + " answered HTTP " + std::to_string(reply.status) + ": " +
                               short_body(reply.body));
  return std::move(reply.body);
}

Result<Json> RemoteClient::get_json(const std::string& url, std::chrono::milliseconds timeout) const {
  ND_ASSIGN_OR_RETURN(std::string body, get(url, timeout));
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded()) return Status::unavailable("GET " + url + " did not answer JSON: " + short_body(body));
  return j;
}

Status RemoteClient::clear_queue(const std::string& remote_url, const std::string& own_prompt_id) const {
  ND_ASSIGN_OR_RETURN(Json queue, get_json(remote_url + "/queue", kShortTimeout));
  if (!own_prompt_id.empty() && queue.contains("queue_running") && queue["queue_running"].is_array()) {
    for (const Json& item : queue["queue_running"]) {
      if (item.is_array() && item.size() > 1 && item[1] == own_prompt_id)
        return Status::invalid_argument(
            "NetDist: remote_url " + remote_url +
            " is this server itself (it is running this prompt): the remote job would wait behind the prompt that "
            "waits for it. Point remote_url at another server, or drop the RemoteQueue node and run `netdist "
            "serve --enable-distributed` so that the scheduler splits the batch.");
    }
  }
  const std::string& client_id = netdist_client_id();
  auto ours = [&](const Json& item) {
    return item.is_array() && item.size() > 3 && item[3].is_object() && item[3].value("client_id", Json()) == client_id;
  };
  Json to_cancel = Json::array();
  if (queue.contains("queue_pending") && queue["queue_pending"].is_array()) {
    for (const Json& item : queue["queue_pending"]) {
      if (ours(item)) to_cancel.push_back(item[1]);
    }
  }
  ND_RETURN_IF_ERROR(post(remote_url + "/queue", Json{{"delete", to_cancel}}.dump(), "application/json", kShortTimeout)
                         .status());
  if (queue.contains("queue_running") && queue["queue_running"].is_array()) {
    for (const Json& item : queue["queue_running"]) {
      if (ours(item)) return post(remote_url + "/interrupt", "{}", "application/json", kShortTimeout).status();
    }
  }
  return Status::ok();
}

Result<std::string> RemoteClient::remote_os(const std::string& remote_url) const {
  ND_ASSIGN_OR_RETURN(Json stats, get_json(remote_url + "/system_stats", kShortTimeout));
  if (!stats.contains("system") || !stats["system"].is_object() || !stats["system"].contains("os") ||
      !stats["system"]["os"].is_string())
    return Status::unavailable("GET " + remote_url + "/system_stats has no system.os");
  return stats["system"]["os"].get<std::string>();
}

Result<std::string> RemoteClient::post_prompt(const std::string& remote_url, const Json& prompt,
                                              const std::string& job_id) const {
  const Json body = {{"prompt", prompt}, {"client_id", netdist_client_id()}, {"extra_data", {{"job_id", job_id}}}};
  ND_ASSIGN_OR_RETURN(std::string reply, post(remote_url + "/prompt", body.dump(), "application/json", kShortTimeout));
  Json j = Json::parse(reply, nullptr, false);
  if (!j.is_object() || !j.contains("prompt_id") || !j["prompt_id"].is_string())
    return Status::unavailable("POST " + remote_url + "/prompt answered no prompt_id: " + short_body(reply));
  return j["prompt_id"].get<std::string>();
}

Result<std::vector<RemoteImageRef>> RemoteClient::wait_for_job(const std::string& remote_url,
                                                              const std::string& prompt_id, const std::string& job_id,
                                                              const std::function<bool()>& cancelled) const {
  int failures = 0;
  int missing = 0;
  Status last_failure = Status::ok();
  const auto deadline = std::chrono::steady_clock::now() + job_timeout_;
  for (int poll = 0;; ++poll) {
    if (cancelled && cancelled()) return Status::cancelled("NetDist: interrupted while waiting for " + remote_url);
    if (std::chrono::steady_clock::now() > deadline)
      return Status::unavailable("NetDist: the remote job " + job_id + " (prompt " + prompt_id + ") on " + remote_url +
                                 " did not finish within " + std::to_string(job_timeout_.count() / 1000) +
                                 " s; it is left there");
    auto history = get_json(remote_url + "/history/" + prompt_id, kShortTimeout);
    if (!history.is_ok()) {
      last_failure = history.status();
      if (++failures > kMaxFailedPolls)
        return Status::unavailable("NetDist: lost the remote job " + job_id + " on " + remote_url + ": " +
                                   last_failure.message());
      std::this_thread::sleep_for(kPoll);
      continue;
    }
    if (history->contains(prompt_id)) {
      const Json& entry = (*history)[prompt_id];
      const Json status = entry.value("status", Json::object());
      if (status.is_object() && status.value("status_str", std::string()) == "error") {
        return Status::unavailable("NetDist: the remote job " + job_id + " failed on " + remote_url + ": " +
                                   remote_error_message(entry));
      }
      return job_output_images(entry);
    }
    if (poll % kQueueCheckEvery == kQueueCheckEvery - 1) {
      // NetDist's todo ("check if it's actually in the queue to avoid waiting forever"): a job neither queued
      // nor in history (queue read first, history after it) was deleted, or the remote restarted.
      auto queue = get_json(remote_url + "/queue", kShortTimeout);
      if (queue.is_ok() && !queue_has(*queue, prompt_id)) {
        auto again = get_json(remote_url + "/history/" + prompt_id, kShortTimeout);
        if (again.is_ok() && !again->contains(prompt_id) && ++missing >= 2)
          return Status::unavailable("NetDist: the remote job " + job_id + " (prompt " + prompt_id + ") on " +
                                     remote_url + " is neither queued nor in its history: it was deleted or the "
                                     "remote restarted");
        if (again.is_ok() && again->contains(prompt_id)) continue;
      } else {
        missing = 0;
      }
    }
    std::this_thread::sleep_for(kPoll);
  }
}

}  // namespace netdist::nodes
