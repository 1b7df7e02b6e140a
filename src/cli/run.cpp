// `netdist run WORKFLOW.json`: one process, no server. Validates and executes a ComfyUI API-format
// workflow with the core nodes and writes the outputs (SaveImage naming and metadata as ComfyUI).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/log_flags.h"
#include "cli/node_setup.h"
#include "core/log.h"
#include "graph/executor.h"
#include "graph/validate.h"
#include "io/png.h"

namespace netdist::cli {

namespace {

// Shows progress: each node as it starts, cached nodes and failures as log lines; sampler steps as one
// redrawn progress bar per sampler (steps, it/s, ETA) when stderr is a terminal, else as a log line every 5th
// step and at the last one, with the same figures.
class ConsoleSink : public graph::EventSink {
 public:
  explicit ConsoleSink(const graph::ValidatedPrompt& prompt) : prompt_(prompt), tty_(isatty(STDERR_FILENO) == 1) {}

  void event(const std::string& type, graph::Json data) override {
    if (type == "executing" && !data["node"].is_null()) {
      end_bar();
      const std::string node = data["node"].get<std::string>();
      log::info("node {} {}", node, class_of(node));
    } else if (type == "progress") {
      step(data["value"].get<int64_t>(), data["max"].get<int64_t>());
    } else if (type == "execution_cached" && !data["nodes"].empty()) {
      log::info("cached: {}", data["nodes"].dump());
    } else if (type == "execution_error") {
      end_bar();
      log::error("error in node {} ({}): {}", data["node_id"].get<std::string>(),
                 data["node_type"].get<std::string>(), data["exception_message"].get<std::string>());
    } else if (type == "execution_interrupted") {
      end_bar();
      log::warn("interrupted");
    }
  }

  ~ConsoleSink() override { end_bar(); }

 private:
  using Clock = std::chrono::steady_clock;

  void step(int64_t value, int64_t max) {
    const Clock::time_point now = Clock::now();
    if (value <= last_value_ || !started_) {  // a new sampler (or a new pass of one)
      end_bar();
      start_ = now;
      first_value_ = value;  // timed from the first step seen: the rate covers the steps after it
      started_ = true;
    }
    last_value_ = value;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 && value > first_value_ ? (value - first_value_) / seconds : 0;
    const double eta = rate > 0 ? (max - value) / rate : 0;
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = max > 0 ? static_cast<int>(kWidth * value / max) : 0;
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(kWidth - filled), '.');
      std::fprintf(stderr, "\r  [%s] %lld/%lld  %.2f it/s  ETA %.1f s ", bar.c_str(), static_cast<long long>(value),
                   static_cast<long long>(max), rate, eta);
      std::fflush(stderr);
      bar_open_ = true;
      if (value >= max) end_bar();
    } else if (value == max || value % 5 == 0) {
      log::info("step {}/{} ({:.2f} it/s, ETA {:.1f} s)", value, max, rate, eta);
    } else {
      log::debug("step {}/{}", value, max);
    }
  }

  void end_bar() {
    if (bar_open_) std::fputc('\n', stderr);
    bar_open_ = false;
    started_ = false;
    last_value_ = 0;
  }

  std::string class_of(const std::string& id) const {
    const auto* node = prompt_.prompt.find(id);
    return node ? node->class_type : "";
  }
  const graph::ValidatedPrompt& prompt_;
  const bool tty_;
  bool bar_open_ = false, started_ = false;
  int64_t last_value_ = 0, first_value_ = 0;
  Clock::time_point start_{};
};

int run_workflow(const std::string& workflow, const NodeSetupOptions& setup) {
  auto text = io::read_file(workflow);
  if (!text.is_ok()) {
    log::error("netdist run: {}", text.status().to_string());
    return 2;
  }
  graph::Json doc = graph::Json::parse(*text, nullptr, false);
  if (doc.is_discarded()) {
    log::error("netdist run: {}: not valid JSON", workflow);
    return 2;
  }
  graph::Json extra_data = graph::Json::object();
  if (doc.contains("prompt") && doc["prompt"].is_object()) {
    if (doc.contains("extra_data")) extra_data = doc["extra_data"];
    doc = doc["prompt"];
  }
  auto nodes = make_node_registry(setup);
  if (!nodes.is_ok()) {
    log::error("netdist run: {}", nodes.status().to_string());
    return 2;
  }
  graph::ValidationResult v = graph::validate_prompt(doc, *nodes->registry);
  if (!v.ok()) {
    log::error("netdist run: {}: the workflow is invalid:\n{}", workflow, v.error_body.dump(2));
    return 1;
  }
  graph::Executor executor(*nodes->registry);
  ConsoleSink sink(*v.validated);
  std::atomic<bool> interrupt{false};
  graph::ExecutionOutcome outcome = executor.execute(*v.validated, "run", extra_data, sink, interrupt);
  if (!outcome.success) {
    log::error("netdist run: {}", outcome.status.to_string());
    return 1;
  }
  for (auto it = outcome.outputs.begin(); it != outcome.outputs.end(); ++it) {
    for (const auto& img : it.value().value("images", graph::Json::array())) {
      const std::string type = img.value("type", "output");
      const std::string dir = type == "temp" ? setup.env.temp_dir : setup.env.output_dir;
      std::filesystem::path p = std::filesystem::path(dir) / img.value("subfolder", "") / img.value("filename", "");
      std::printf("%s\n", p.lexically_normal().string().c_str());
    }
  }
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto workflow = std::make_shared<std::string>();
  auto setup = std::make_shared<NodeSetupOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a ComfyUI API-format workflow in this process and write its images");
  cmd->add_option("workflow", *workflow, "workflow JSON (API format, or {\"prompt\": …})")->required();
  add_node_setup_options(*cmd, *setup);
  auto log_flags = std::make_shared<LogFlags>();
  add_log_flags(*cmd, *log_flags);
  cmd->callback([workflow, setup, log_flags] {
    if (!apply_log_flags(*log_flags, "netdist run")) return set_exit_code(2);
    set_exit_code(run_workflow(*workflow, *setup));
  });
}

}  // namespace netdist::cli
