// Runs validated prompts with ComfyUI's order, caching and events (execution.py PromptExecutor.execute).
//
// Events, in ComfyUI's order and with its fields (all carry prompt_id):
//   execution_start {prompt_id, timestamp}
//   execution_cached {nodes, prompt_id, timestamp}     prompt nodes whose outputs are cached, prompt order
//   per node that runs:   executing {node, display_node, prompt_id}, progress {value, max, prompt_id, node}*,
//                         executed {node, display_node, output, prompt_id} if it set a UI output
//   per cached node staged (output nodes always are): executed with the cached UI output, or null
//   execution_success {prompt_id, timestamp} | execution_error {prompt_id, node_id, node_type, executed,
//     exception_message, exception_type, traceback, current_inputs, current_outputs, timestamp}
//   | execution_interrupted {prompt_id, node_id, node_type, executed, timestamp}
// The server, not the executor, sends `status`, writes history, then sends the final
// `executing {node: null, prompt_id}`, and applies ComfyUI's routing (without a client_id only
// execution_interrupted and progress are broadcast; everything else is dropped).
//
// Caching is ComfyUI's default ("classic") cache: outputs and UI outputs keyed by input signature
// (cache_key.h), kept across prompts, and at the start of each prompt trimmed to the keys of that prompt's
// nodes. Resubmitting an identical prompt runs nothing: every node is in execution_cached and each output
// node gets `executed` with its cached UI.
// Interrupts: the flag is cleared when a prompt starts (an interrupt sent while idle is lost, as in ComfyUI)
// and checked before each node runs and in NodeContext::progress; the first check that sees it clears it.
// Differences from ComfyUI: no list mapping (INPUT_IS_LIST/OUTPUT_IS_LIST: one value per output), no lazy
// inputs, no node expansion, no ExecutionBlocker; `executed`/`current_outputs` lists are in execution and
// prompt order (Python sets there); traceback is []. A node's Status becomes exception_type ValueError
// (invalid argument), FileNotFoundError, OSError, NotImplementedError, torch.OutOfMemoryError or
// RuntimeError; a C++ exception escaping a node becomes RuntimeError.
// Thread-safety: one execute() at a time per Executor (it owns the caches); `interrupt` may be set from any
// thread. The sink is called on the executing thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "graph/node_registry.h"
#include "graph/validate.h"

namespace netdist::graph {

struct EventSink {
  virtual ~EventSink();
  virtual void event(const std::string& type, Json data) = 0;
};

struct ExecutionOutcome {
  bool success = false;           // history status: "success"/completed, else "error"/not completed
  Status status;                  // OK, kCancelled (interrupted) or the error of the node that failed, with its
                                  // code (an exception escaping a node is kInternal; an input of the wrong type,
                                  // a dependency cycle kInvalidArgument)
  Json outputs = Json::object();  // history "outputs": {node_id: ui} for every prompt node with a cached UI
  Json meta = Json::object();     // history "meta": {node_id: {node_id, display_node, parent_node, real_node_id}}
  Json messages = Json::array();  // history status.messages: [[type, data], ...] for the timestamped events
  std::vector<std::string> executed;  // nodes that ran (not cached), in order
  // For each node that ran (not cached), in order, the one that failed included: {"node": id, "class_type",
  // "seconds": wall-clock seconds of the node's function} (the history's netdist.nodes, issue #21).
  Json node_timings = Json::array();
};

class Executor {
 public:
  explicit Executor(const NodeRegistry& registry);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // `extra_data` is the prompt's extra_data (client_id, extra_pnginfo, ...).
  ExecutionOutcome execute(const ValidatedPrompt& prompt, const std::string& prompt_id, const Json& extra_data,
                           EventSink& sink, std::atomic<bool>& interrupt);

  // Drops every cached output and node object (POST /free {"free_memory": true}).
  void reset();
  // Milliseconds since the epoch for event timestamps; tests pin it.
  void set_clock(std::function<int64_t()> now_ms) { now_ms_ = std::move(now_ms); }
  size_t cached_output_count() const { return outputs_.size(); }

 private:
  struct UiEntry {
    Json output;
    Json meta;
  };
  class Run;

  const NodeRegistry& registry_;
  std::function<int64_t()> now_ms_;
  uint64_t unique_counter_ = 0;
  std::unordered_map<std::string, std::vector<Value>> outputs_;  // by cache key
  std::unordered_map<std::string, UiEntry> ui_;                  // by cache key
  std::map<std::pair<std::string, std::string>, std::unique_ptr<NodeImpl>> objects_;  // by (node id, class)
};

}  // namespace netdist::graph
