// `netdist run WORKFLOW.json`: one process, no server. Validates and executes a ComfyUI API-format
// workflow with the core nodes and writes the outputs (SaveImage naming and metadata as ComfyUI).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/node_setup.h"
#include "graph/executor.h"
#include "graph/validate.h"
#include "io/png.h"

namespace netdist::cli {

namespace {

// Prints progress: a redrawn bar on a terminal, one line per event otherwise.
class ConsoleSink : public graph::EventSink {
 public:
  explicit ConsoleSink(const graph::ValidatedPrompt& prompt) : prompt_(prompt), tty_(::isatty(STDERR_FILENO)) {}

  void event(const std::string& type, graph::Json data) override {
    if (type == "executing" && !data["node"].is_null()) {
      node_ = data["node"].get<std::string>();
      end_bar();
      std::fprintf(stderr, "%s %s\n", node_.c_str(), class_of(node_).c_str());
    } else if (type == "progress") {
      const int64_t value = data["value"], max = data["max"];
      if (tty_) {
        const int width = 30, filled = static_cast<int>(width * value / std::max<int64_t>(1, max));
        std::fprintf(stderr, "\r  [%s%s] %lld/%lld", std::string(filled, '#').c_str(),
                     std::string(width - filled, '.').c_str(), (long long)value, (long long)max);
        bar_open_ = true;
      } else if (value == max || value % 5 == 0) {
        std::fprintf(stderr, "  step %lld/%lld\n", (long long)value, (long long)max);
      }
    } else if (type == "execution_cached" && !data["nodes"].empty()) {
      std::fprintf(stderr, "cached: %s\n", data["nodes"].dump().c_str());
    } else if (type == "execution_error") {
      end_bar();
      std::fprintf(stderr, "error in node %s (%s): %s\n", data["node_id"].get<std::string>().c_str(),
                   data["node_type"].get<std::string>().c_str(), data["exception_message"].get<std::string>().c_str());
    } else if (type == "execution_interrupted") {
      end_bar();
      std::fprintf(stderr, "interrupted\n");
    }
  }

  void end_bar() {
    if (bar_open_) std::fputc('\n', stderr);
    bar_open_ = false;
  }

 private:
  std::string class_of(const std::string& id) const {
    const auto* node = prompt_.prompt.find(id);
    return node ? node->class_type : "";
  }
  const graph::ValidatedPrompt& prompt_;
  bool tty_;
  bool bar_open_ = false;
  std::string node_;
};

int run_workflow(const std::string& workflow, const NodeSetupOptions& setup) {
  auto text = io::read_file(workflow);
  if (!text.is_ok()) {
    std::fprintf(stderr, "netdist run: %s\n", text.status().to_string().c_str());
    return 2;
  }
  graph::Json doc = graph::Json::parse(*text, nullptr, false);
  if (doc.is_discarded()) {
    std::fprintf(stderr, "netdist run: %s: not valid JSON\n", workflow.c_str());
    return 2;
  }
  graph::Json extra_data = graph::Json::object();
  if (doc.contains("prompt") && doc["prompt"].is_object()) {
    if (doc.contains("extra_data")) extra_data = doc["extra_data"];
    doc = doc["prompt"];
  }
  auto nodes = make_node_registry(setup);
  if (!nodes.is_ok()) {
    std::fprintf(stderr, "netdist run: %s\n", nodes.status().to_string().c_str());
    return 2;
  }
  graph::ValidationResult v = graph::validate_prompt(doc, *nodes->registry);
  if (!v.ok()) {
    std::fprintf(stderr, "netdist run: %s: the workflow is invalid:\n%s\n", workflow.c_str(), v.error_body.dump(2).c_str());
    return 1;
  }
  graph::Executor executor(*nodes->registry);
  ConsoleSink sink(*v.validated);
  std::atomic<bool> interrupt{false};
  graph::ExecutionOutcome outcome = executor.execute(*v.validated, "run", extra_data, sink, interrupt);
  sink.end_bar();
  if (!outcome.success) {
    std::fprintf(stderr, "netdist run: %s\n", outcome.status.to_string().c_str());
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
  cmd->callback([workflow, setup] { set_exit_code(run_workflow(*workflow, *setup)); });
}

}  // namespace netdist::cli
