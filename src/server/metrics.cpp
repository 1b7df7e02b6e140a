#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "server/routes.h"
#include "server/server_state.h"

namespace netdist::server {

namespace {

using nlohmann::ordered_json;

void metrics_family(std::ostringstream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << ' ' << help << '\n' << "# TYPE " << name << ' ' << type << '\n';
}

int64_t metrics_whole_second(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Gauges read at scrape time: the queue and the devices the backend reports.
void metrics_scrape_gauges(ServerState& state, std::ostringstream& out) {
  PromptQueue& queue = state.queue();
  const int64_t running = int64_t(queue.running_prompt_ids().size());
  const int64_t pending = std::max<int64_t>(0, queue.tasks_remaining() - running);
  metrics_family(out, "netdist_queue_length", "gauge", "Prompts waiting in the queue (pending, not running).");
  out << "netdist_queue_length " << pending << '\n';
  metrics_family(out, "netdist_prompts", "gauge", "Prompts by state now: pending, running, history (entries kept).");
  out << "netdist_prompts{state=\"pending\"} " << pending << '\n';
  out << "netdist_prompts{state=\"running\"} " << running << '\n';
  out << "netdist_prompts{state=\"history\"} " << queue.history_size() << '\n';

  const ordered_json devices = state.backend().system_stats_devices();
  if (!devices.is_array()) return;
  metrics_family(out, "netdist_device_memory_total_bytes", "gauge", "Memory of each device the backend uses.");
  std::ostringstream free_lines;
  for (const auto& d : devices) {
    if (!d.is_object()) continue;
    const std::string name = d.contains("name") && d["name"].is_string() ? d["name"].get<std::string>() : "?";
    const std::string labels = "{device=\"" + prometheus_label(name) + "\"}";
    if (d.contains("vram_total") && d["vram_total"].is_number())
      out << "netdist_device_memory_total_bytes" << labels << ' ' << prometheus_number(d["vram_total"].get<double>()) << '\n';
    if (d.contains("vram_free") && d["vram_free"].is_number())
      free_lines << "netdist_device_memory_free_bytes" << labels << ' ' << prometheus_number(d["vram_free"].get<double>()) << '\n';
  }
  metrics_family(out, "netdist_device_memory_free_bytes", "gauge", "Free memory of each device the backend uses.");
  out << free_lines.str();
}

}  // namespace

std::string prometheus_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prometheus_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return std::to_string(int64_t(value));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", value);
  return buf;
}

std::string ServerMetrics::route_label(const std::string& raw_path) {
  const std::string path = strip_api_prefix(raw_path);
  if (path == "/" || path == "/index.html") return "/";
  if (path.rfind("/dashboard/", 0) == 0) return "/dashboard";
  static const char* const kRoutes[] = {"/metrics",      "/prompt",      "/queue",       "/history",
                                        "/interrupt",    "/free",        "/view",        "/upload/image",
                                        "/upload/mask",  "/object_info", "/system_stats", "/features",
                                        "/embeddings",   "/extensions",  "/models",      "/ws"};
  for (const char* r : kRoutes) {
    const std::string route = r;
    if (path == route || path.rfind(route + "/", 0) == 0) return route;
  }
  static const char* const kCluster[] = {"capabilities", "shard", "prompt",   "tile",   "status", "interrupt",
                                         "models",       "pull",  "progress", "result", "group",  "join",
                                         "cluster"};
  const std::string v1 = "/netdist/v1/";
  if (path.rfind(v1, 0) == 0) {
    const std::string rest = path.substr(v1.size());
    const std::string first = rest.substr(0, rest.find('/'));
    for (const char* c : kCluster)
      if (first == c) return v1 + c;
  }
  return "other";
}

void ServerMetrics::observe_request(const std::string& method, const std::string& path, int status, double seconds) {
  static const char* const kMethods[] = {"GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"};
  std::string m = "other";
  for (const char* k : kMethods)
    if (method == k) m = k;
  const std::string route = route_label(path);
  std::lock_guard lock(mutex_);
  Histogram& h = latency_[{m, route}];
  size_t i = 0;
  while (i < kLatencyBuckets.size() && seconds > kLatencyBuckets[i]) ++i;
  if (i < kLatencyBuckets.size()) ++h.buckets[i];
  ++h.count;
  h.sum += seconds;
  ++responses_[std::to_string(status)];
}

void ServerMetrics::observe_step() {
  const int64_t now = metrics_whole_second(std::chrono::steady_clock::now());
  std::lock_guard lock(mutex_);
  ++steps_;
  if (step_seconds_.empty() || step_seconds_.back().first != now) step_seconds_.emplace_back(now, 0);
  ++step_seconds_.back().second;
  while (!step_seconds_.empty() && step_seconds_.front().first <= now - kStepWindowSeconds - 1) step_seconds_.pop_front();
}

void ServerMetrics::observe_plan(const std::string& mode) {
  std::lock_guard lock(mutex_);
  if (plans_.size() < 64 || plans_.count(mode)) ++plans_[mode];  // modes are few; bound the label set anyway
}

void ServerMetrics::observe_prompt(const std::string& outcome, double seconds) {
  std::lock_guard lock(mutex_);
  ++prompts_[outcome];
  prompt_seconds_ += seconds;
}

double ServerMetrics::steps_per_second_locked(std::chrono::steady_clock::time_point now) const {
  const int64_t second = metrics_whole_second(now);
  uint64_t steps = 0;
  for (const auto& [s, n] : step_seconds_)
    if (s >= second - kStepWindowSeconds && s < second) steps += n;  // the last whole seconds, not this one
  return double(steps) / kStepWindowSeconds;
}

std::string ServerMetrics::text() const {
  std::ostringstream out;
  std::lock_guard lock(mutex_);
  metrics_family(out, "netdist_prompts_finished_total", "counter", "Prompts the queue worker finished, by outcome.");
  for (const char* outcome : {"success", "error", "interrupted"}) {
    const auto it = prompts_.find(outcome);
    out << "netdist_prompts_finished_total{outcome=\"" << outcome << "\"} " << (it == prompts_.end() ? 0 : it->second) << '\n';
  }
  metrics_family(out, "netdist_prompt_plans_total", "counter",
                 "Prompts a coordinator ran on its workers, by plan mode (whole, rows, cfg, tiles; joined by +).");
  for (const auto& [mode, n] : plans_) out << "netdist_prompt_plans_total{mode=\"" << prometheus_label(mode) << "\"} " << n << '\n';
  metrics_family(out, "netdist_prompt_seconds_total", "counter", "Seconds spent running prompts (all outcomes).");
  out << "netdist_prompt_seconds_total " << prometheus_number(prompt_seconds_) << '\n';
  metrics_family(out, "netdist_sampler_steps_total", "counter", "Sampler steps of the prompts this server ran.");
  out << "netdist_sampler_steps_total " << steps_ << '\n';
  metrics_family(out, "netdist_sampler_steps_per_second", "gauge",
                 "Sampler steps per second over the last 10 whole seconds.");
  out << "netdist_sampler_steps_per_second " << prometheus_number(steps_per_second_locked(std::chrono::steady_clock::now()))
      << '\n';
  metrics_family(out, "netdist_http_responses_total", "counter", "HTTP responses by status code.");
  for (const auto& [code, n] : responses_) out << "netdist_http_responses_total{code=\"" << code << "\"} " << n << '\n';
  metrics_family(out, "netdist_http_request_duration_seconds", "histogram",
                 "Time from a request's headers to its response, by method and route.");
  for (const auto& [key, h] : latency_) {
    const std::string labels = "method=\"" + key.first + "\",route=\"" + prometheus_label(key.second) + "\"";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i) {
      cumulative += h.buckets[i];
      out << "netdist_http_request_duration_seconds_bucket{" << labels << ",le=\"" << prometheus_number(kLatencyBuckets[i])
          << "\"} " << cumulative << '\n';
    }
    out << "netdist_http_request_duration_seconds_bucket{" << labels << ",le=\"+Inf\"} " << h.count << '\n';
    out << "netdist_http_request_duration_seconds_sum{" << labels << "} " << prometheus_number(h.sum) << '\n';
    out << "netdist_http_request_duration_seconds_count{" << labels << "} " << h.count << '\n';
  }
  return out.str();
}

std::optional<Response> route_metrics(ServerState& state, const Request& request, const std::string& path) {
  if (path != "/metrics") return std::nullopt;
  if (request.method != "GET") return error_response(405, "method_not_allowed", "/metrics answers GET only");
  std::ostringstream out;
  metrics_scrape_gauges(state, out);
  std::string text = out.str() + state.metrics().text();
  if (state.options().extra_metrics) text += state.options().extra_metrics();
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(text);
  return r;
}

}  // namespace netdist::server
