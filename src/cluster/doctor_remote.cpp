// check_remote (doctor.h): a running server or cluster, seen from outside through its HTTP API only.
#include <chrono>
#include <map>
#include <random>
#include <set>

#include "cluster/doctor.h"
#include "cluster/http_client.h"
#include "cluster/protocol.h"

namespace netdist::cluster {

namespace {

using DoctorJson = nlohmann::json;  // (not Json: the cluster's Json is ordered_json)
using DoctorClock = std::chrono::steady_clock;
using protocol::Capabilities;
using protocol::ModelEntry;

struct Prober {
  const RemoteOptions& options;
  std::shared_ptr<const TlsClientContext> tls;
  DoctorReport& report;

  Result<HttpReply> get(const std::string& url, const std::string& target, bool with_token = true) const {
    HttpCall call;
    call.target = target;
    call.auth_token = with_token ? options.auth_token : "";
    call.timeout = options.timeout;
    call.tls = tls;
    return http_call(url, call);
  }
};

std::string doctor_header(const HttpReply& reply, const std::string& name) {
  for (const auto& [k, v] : reply.headers)
    if (k == name) return v;
  return "";
}

DoctorJson doctor_json(const HttpReply& reply) {
  DoctorJson j = DoctorJson::parse(reply.body, nullptr, false);
  return j.is_discarded() ? DoctorJson() : j;
}

std::string doctor_connect_fix(const Status& s, const std::string& url) {
  const std::string& m = s.message();
  if (m.find("certificate") != std::string::npos || m.find("handshake") != std::string::npos ||
      m.find("hostname") != std::string::npos)
    return "the certificate of " + url + " is not trusted here: pass --tls-ca with the CA that signed it, and use a "
           "host name or address that the certificate names";
  return "is netdist running at " + url + "? check the address, the port and the firewall (and that it listens on "
         "an address this machine can reach: --listen)";
}

void doctor_token_fail(Prober& p, const std::string& area) {
  if (p.options.auth_token.empty())
    p.report.fail(area, "token", "the server requires a token (401)", "pass the cluster's token: --auth-token TOKEN");
  else
    p.report.fail(area, "token", "the server refused the token (401)",
                  "use the token the server was started with (--auth-token / NETDIST_AUTH_TOKEN)");
}

// Reachable, token, TLS and clock of one server; false when it cannot be used further.
bool doctor_check_server(Prober& p, const std::string& area, const std::string& url) {
  auto r = p.get(url, "/system_stats");
  if (!r.is_ok()) {
    p.report.fail(area, "reachable", r.status().message(), doctor_connect_fix(r.status(), url));
    return false;
  }
  if (r->status == 401) {
    doctor_token_fail(p, area);
    return false;
  }
  if (r->status != 200) {
    p.report.fail(area, "reachable", "GET /system_stats answered HTTP " + std::to_string(r->status),
                  "is this a netdist (or ComfyUI) server? check the URL and its base path");
    return false;
  }
  const DoctorJson stats = doctor_json(*r);
  std::string version = "an unknown version";
  if (stats.is_object() && stats.contains("system") && stats["system"].is_object()) {
    const DoctorJson& sys = stats["system"];
    if (sys.contains("netdist_version") && sys["netdist_version"].is_string())
      version = "netdist " + sys["netdist_version"].get<std::string>();
    else if (sys.contains("comfyui_version") && sys["comfyui_version"].is_string())
      version = "ComfyUI " + sys["comfyui_version"].get<std::string>();
  }
  p.report.ok(area, "reachable", url + " answers (" + version + ")");
  if (url.rfind("https://", 0) == 0)
    p.report.ok(area, "tls", "certificate verified against " + (p.tls ? p.tls->trust() : std::string("the system CA store")));
  else
    p.report.warn(area, "tls", "plain http: the token and images cross the network unencrypted",
                  "serve over TLS (--tls-cert/--tls-key) when the machines are not on a private network");
  if (!p.options.auth_token.empty()) {
    auto open = p.get(url, "/system_stats", /*with_token=*/false);
    if (open.is_ok() && open->status == 200)
      p.report.warn(area, "token", "answers without a token: anyone who reaches it can queue work and read images",
                    "start it with --auth-token");
    else
      p.report.ok(area, "token", "accepted (and required)");
  }
  p.report.add(clock_skew_check(area, doctor_header(*r, "date"), std::time(nullptr), p.options.max_clock_skew_s));
  return true;
}

// name → sha256 → who has it, for the hash comparison across members.
using ModelOwners = std::map<std::string, std::map<std::string, std::set<std::string>>>;

void doctor_collect_models(const std::vector<ModelEntry>& models, const std::string& who, ModelOwners& owners) {
  for (const ModelEntry& m : models)
    if (m.sha256 && !m.fetch) owners[(m.kind.empty() ? "checkpoint" : m.kind) + " " + m.name][*m.sha256].insert(who);
}

// A one-step 64² render on the worker through POST /netdist/v1/prompt, with its first checkpoint.
void doctor_bench(Prober& p, const std::string& area, const std::string& url, const Capabilities& caps) {
  std::string ckpt;
  for (const ModelEntry& m : caps.models)
    if ((m.kind.empty() || m.kind == "checkpoint") && !m.fetch) {
      ckpt = m.name;
      break;
    }
  if (ckpt.empty()) {
    p.report.warn(area, "one-step render", "the worker lists no checkpoint to render with",
                  "put a checkpoint in its --models-dir (or give it a model source: --models-from / --join)");
    return;
  }
  const std::string id = "doctor-" + std::to_string(std::random_device{}());
  DoctorJson prompt = {
      {"1", {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", ckpt}}}}},
      {"2", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", "a red heart"}, {"clip", {"1", 1}}}}}},
      {"3", {{"class_type", "EmptyLatentImage"}, {"inputs", {{"width", 64}, {"height", 64}, {"batch_size", 1}}}}},
      {"4",
       {{"class_type", "KSampler"},
        {"inputs", {{"seed", 1}, {"steps", 1}, {"cfg", 1.0}, {"sampler_name", "euler"}, {"scheduler", "normal"},
                    {"denoise", 1.0}, {"model", {"1", 0}}, {"positive", {"2", 0}}, {"negative", {"2", 0}},
                    {"latent_image", {"3", 0}}}}}},
      {"5", {{"class_type", "VAEDecode"}, {"inputs", {{"samples", {"4", 0}}, {"vae", {"1", 2}}}}}},
      {"6", {{"class_type", "PreviewImage"}, {"inputs", {{"images", {"5", 0}}}}}}};
  HttpCall call;
  call.method = "POST";
  call.target = "/netdist/v1/prompt";
  call.body = DoctorJson{{"task_id", id}, {"prompt_id", id}, {"prompt", prompt}, {"extra_data", DoctorJson::object()},
                   {"outputs_to_execute", {"6"}}}.dump();
  call.auth_token = p.options.auth_token;
  call.timeout = p.options.bench_timeout;
  call.tls = p.tls;
  const auto start = DoctorClock::now();
  auto r = http_call(url, call);
  const double s = std::chrono::duration<double>(DoctorClock::now() - start).count();
  const DoctorJson reply = r.is_ok() ? doctor_json(*r) : DoctorJson();
  const bool done = r.is_ok() && r->status == 200 && reply.is_object() && reply.contains("status") &&
                    reply["status"].is_object() && reply["status"].value("code", -1) == 0;
  if (done) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "1 step at 64x64 with %s in %.2f s (load included)", ckpt.c_str(), s);
    p.report.ok(area, "one-step render", buf);
    return;
  }
  std::string why = !r.is_ok() ? r.status().message() : "HTTP " + std::to_string(r->status) + ": " + r->body.substr(0, 300);
  if (r.is_ok() && r->status == 200 && reply.is_object() && reply.contains("status") && reply["status"].is_object())
    why = reply["status"].value("message", why);
  p.report.fail(area, "one-step render", "rendering 1 step with " + ckpt + " failed: " + why,
                "read the worker's log; run `netdist doctor` on that machine for its device, models and vocabularies");
}

// A connect-out netdist worker: reachable, protocol version, models, the one-step render.
void doctor_check_netdist_worker(Prober& p, const std::string& url, ModelOwners& owners, bool server_checked) {
  if (!server_checked && !doctor_check_server(p, url, url)) return;
  auto r = p.get(url, "/netdist/v1/capabilities");
  if (!r.is_ok() || r->status != 200) {
    p.report.fail(url, "protocol", r.is_ok() ? "GET /netdist/v1/capabilities answered HTTP " + std::to_string(r->status)
                                             : r.status().message(),
                  "start it as `netdist worker` (a plain `serve` has no cluster routes)");
    return;
  }
  const DoctorJson caps_json = doctor_json(*r);
  Status version = protocol::check_version(caps_json, url);
  if (!version.is_ok()) {
    p.report.fail(url, "protocol", version.message(), "install the same netdist version on every machine");
    return;
  }
  p.report.ok(url, "protocol", "version " + std::to_string(protocol::kVersion));
  const Capabilities caps = protocol::capabilities_from_json(caps_json);
  doctor_collect_models(caps.models, url, owners);
  if (p.options.bench) doctor_bench(p, url, url, caps);
}

void doctor_check_worker_entry(Prober& p, const DoctorJson& w, ModelOwners& owners) {
  if (!w.is_object()) return;
  const std::string url = w.value("url", "");
  const std::string id = w.contains("worker_id") && w["worker_id"].is_string() ? w["worker_id"].get<std::string>() : "";
  const std::string area = url.empty() ? id : url;
  const bool alive = w.value("alive", false), dial_in = w.value("dial_in", false);
  const std::string kind = w.value("kind", "netdist");
  const std::string error = w.contains("error") && w["error"].is_string() ? w["error"].get<std::string>() : "";
  if (!alive) {
    p.report.fail(area, "health", error.empty() ? "not answering the coordinator" : error,
                  dial_in ? "restart the worker (`netdist worker --join ...`); check its log and its network"
                          : "start `netdist worker` there with the cluster's --auth-token, or remove it from --workers");
    return;
  }
  p.report.ok(area, "health", std::string(dial_in ? "dial-in " : "") + kind + " worker, alive, " +
                                  std::to_string(w.value("prompts_done", 0) + w.value("shards_done", 0)) +
                                  " tasks done, " + std::to_string(w.value("failures", 0)) + " failures");
  if (dial_in) return;  // it has no open port: the coordinator's view above is all there is
  if (kind == "comfy") {
    std::string base = url.rfind("comfy+", 0) == 0 ? url.substr(6) : url;
    doctor_check_server(p, area, base);
    return;
  }
  if (!url.empty()) doctor_check_netdist_worker(p, url, owners, /*server_checked=*/false);
}

void doctor_compare_models(DoctorReport& report, const ModelOwners& owners) {
  size_t same = 0;
  for (const auto& [name, by_hash] : owners) {
    if (by_hash.size() == 1) {
      ++same;
      continue;
    }
    // append(), not " " + s: GCC 12 at -O3 reports a false -Wstringop-overflow on that in this unity TU.
    std::string detail = name;
    detail.append(" differs between members:");
    for (const auto& [sha, who] : by_hash) {
      detail.append(" ").append(sha, 0, 12).append(" on");
      for (const std::string& w : who) detail.append(" ").append(w);
      detail.append(";");
    }
    detail.pop_back();
    report.fail("cluster", "model " + name, detail,
                "copy the same file to every machine (or let workers fetch the coordinator's: --share-models on the "
                "coordinator, --join or --models-from on workers): split batches need the same weights everywhere");
  }
  if (!owners.empty())
    report.ok("cluster", "model hashes", std::to_string(same) + " of " + std::to_string(owners.size()) +
                                             " model names have the same SHA-256 on every member that has them");
}

}  // namespace

void check_remote(const RemoteOptions& options, DoctorReport& report) {
  const std::string& url = options.url;
  auto parsed = parse_http_url(url);
  if (!parsed.is_ok()) {
    report.fail("coordinator", "url", parsed.status().message(), "use http://host:port or https://host:port");
    return;
  }
  Prober p{options, nullptr, report};
  if (!options.tls_ca.empty()) {
    auto tls = TlsClientContext::create(options.tls_ca);
    if (!tls.is_ok()) {
      report.fail("local", "--tls-ca", tls.status().message(), "pass a PEM file with the CA certificate");
      return;
    }
    p.tls = *tls;
  }
  if (!doctor_check_server(p, url, url)) return;
  ModelOwners owners;
  auto cluster = p.get(url, "/netdist/v1/cluster");
  if (!cluster.is_ok() || cluster->status == 404) {
    auto caps = p.get(url, "/netdist/v1/capabilities");
    if (caps.is_ok() && caps->status == 200) {
      report.ok(url, "role", "a netdist worker");
      doctor_check_netdist_worker(p, url, owners, /*server_checked=*/true);
    } else {
      report.ok(url, "role", "a server without cluster routes (`netdist serve`)");
    }
    return;
  }
  const DoctorJson body = doctor_json(*cluster);
  if (cluster->status != 200 || !body.is_object() || !body.contains("workers") || !body["workers"].is_array()) {
    report.fail(url, "cluster", "GET /netdist/v1/cluster answered HTTP " + std::to_string(cluster->status),
                "is this a netdist coordinator of the same version? (`netdist serve --enable-distributed`)");
    return;
  }
  const DoctorJson& workers = body["workers"];
  report.add({url, "role", workers.empty() ? CheckLevel::warn : CheckLevel::ok,
              "coordinator with " + std::to_string(workers.size()) + " worker(s)",
              workers.empty() ? "start workers: `netdist worker --join " + url + " --auth-token TOKEN`, or --workers"
                              : ""});
  auto shared = p.get(url, "/netdist/v1/models");
  if (shared.is_ok() && shared->status == 200) {
    auto list = protocol::model_list_from_json(doctor_json(*shared));
    if (list.is_ok()) doctor_collect_models(list->models, "coordinator", owners);
  }
  for (const DoctorJson& w : workers) doctor_check_worker_entry(p, w, owners);
  doctor_compare_models(report, owners);
}

}  // namespace netdist::cluster
