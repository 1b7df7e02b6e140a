#include "cluster/cluster_metrics.h"

#include <sstream>
#include <vector>

#include "server/metrics.h"

namespace netdist::cluster {

namespace {

using nlohmann::ordered_json;
using server::prometheus_label;
using server::prometheus_number;

struct ClusterMetricsFamily {
  const char* name;
  const char* type;
  const char* help;
  const char* field;  // the worker's status field; "" = computed
};

const ClusterMetricsFamily kClusterWorkerFamilies[] = {
    {"netdist_worker_up", "gauge", "1 while the coordinator believes the worker alive.", "alive"},
    {"netdist_worker_busy", "gauge", "1 while the worker runs a task of this coordinator.", ""},
    {"netdist_worker_draining", "gauge", "1 while the worker is drained (takes no new task).", "draining"},
    {"netdist_worker_busy_seconds_total", "counter", "Seconds the worker spent running tasks.", "busy_seconds_total"},
    {"netdist_worker_tasks_total", "counter", "Tasks the worker finished: row shards, tile tasks and whole prompts.",
     "shards_done"},
    {"netdist_worker_rows_total", "counter", "Batch rows (row shards) and tiles (tile tasks) the worker rendered.",
     "rows_done"},
    {"netdist_worker_prompts_total", "counter", "Whole prompts the worker ran.", "prompts_done"},
    {"netdist_worker_failures_total", "counter",
     "Tasks that failed on the worker (a worker fault is retried on another worker).", "failures"},
    {"netdist_worker_seconds_per_unit", "gauge", "The cost model's seconds per unit of work (absent until known).",
     "seconds_per_unit"},
};

double cluster_metrics_value(const ordered_json& worker, const ClusterMetricsFamily& f, bool& present) {
  present = true;
  if (std::string(f.field).empty()) return worker.contains("task") && worker["task"].is_object() ? 1 : 0;
  if (!worker.contains(f.field)) return present = false, 0;
  const ordered_json& v = worker[f.field];
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  if (v.is_number()) return v.get<double>();
  present = false;
  return 0;
}

}  // namespace

std::string cluster_metrics_text(const ordered_json& status) {
  std::ostringstream out;
  const ordered_json empty = ordered_json::array();
  const ordered_json& workers = status.is_object() && status.contains("workers") && status["workers"].is_array()
                                    ? status["workers"] : empty;
  int alive = 0;
  for (const auto& w : workers)
    if (w.is_object() && w.value("alive", false)) ++alive;
  out << "# HELP netdist_cluster_workers Workers the coordinator knows, by state.\n"
      << "# TYPE netdist_cluster_workers gauge\n"
      << "netdist_cluster_workers{state=\"alive\"} " << alive << '\n'
      << "netdist_cluster_workers{state=\"dead\"} " << int(workers.size()) - alive << '\n';
  if (status.is_object() && status.contains("queued") && status["queued"].is_number()) {
    out << "# HELP netdist_cluster_tasks_queued Tasks (row shards, tile tasks, whole prompts) waiting for a worker.\n"
        << "# TYPE netdist_cluster_tasks_queued gauge\n"
        << "netdist_cluster_tasks_queued " << prometheus_number(status["queued"].get<double>()) << '\n';
  }
  for (const ClusterMetricsFamily& f : kClusterWorkerFamilies) {
    out << "# HELP " << f.name << ' ' << f.help << "\n# TYPE " << f.name << ' ' << f.type << '\n';
    for (const auto& w : workers) {
      if (!w.is_object()) continue;
      bool present = false;
      const double value = cluster_metrics_value(w, f, present);
      if (!present) continue;
      const std::string url = w.contains("url") && w["url"].is_string() ? w["url"].get<std::string>() : "?";
      const std::string kind = w.contains("kind") && w["kind"].is_string() ? w["kind"].get<std::string>() : "netdist";
      out << f.name << "{worker=\"" << prometheus_label(url) << "\",kind=\"" << prometheus_label(kind) << "\"} "
          << prometheus_number(value) << '\n';
    }
  }
  return out.str();
}

}  // namespace netdist::cluster
