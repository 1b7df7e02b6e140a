// `netdist run WORKFLOW.json`: one process, no server. Validates and executes a ComfyUI API-format
// workflow with the core nodes and writes the outputs (SaveImage naming and metadata as ComfyUI).
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

// Logs progress: each node as it starts, every 5th step and the last (info), cached nodes and failures.
class ConsoleSink : public graph::EventSink {
 public:
  explicit ConsoleSink(const graph::ValidatedPrompt& prompt) : prompt_(prompt) {}

  void event(const std::string& type, graph::Json data) override {
    if (type == "executing" && !data["node"].is_null()) {
      const std::string node = data["node"].get<std::string>();
      log::info("node {} {}", node, class_of(node));
    } else if (type == "progress") {
      const int64_t value = data["value"], max = data["max"];
      if (value == max || value % 5 == 0) log::info("step {}/{}", value, max);
      else log::debug("step {}/{}", value, max);
    } else if (type == "execution_cached" && !data["nodes"].empty()) {
      log::info("cached: {}", data["nodes"].dump());
    } else if (type == "execution_error") {
      log::error("error in node {} ({}): {}", data["node_id"].get<std::string>(),
                 data["node_type"].get<std::string>(), data["exception_message"].get<std::string>());
    } else if (type == "execution_interrupted") {
      log::warn("interrupted");
    }
  }

 private:
  std::string class_of(const std::string& id) const {
    const auto* node = prompt_.prompt.find(id);
    return node ? node->class_type : "";
  }
  const graph::ValidatedPrompt& prompt_;
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
