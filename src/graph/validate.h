// Prompt validation with ComfyUI's semantics and error JSON (pinned ComfyUI execution.py validate_prompt /
// validate_inputs): which outputs run, how widget values are converted (int(), float(), str(), bool() —
// the converted values are what history and PNG metadata store), and the exact error objects.
//
// Deliberate differences, each where ComfyUI's own behaviour is accidental:
//  - ComfyUI walks inputs and outputs in Python set order (random per process); here inputs go in schema
//    order (required, then optional) and outputs in prompt order, so node_errors is deterministic.
//  - A dependency cycle makes ComfyUI overflow its recursion and answer with empty details; here the node
//    whose input closes the cycle gets an exception_during_inner_validation error "Dependency cycle
//    detected" (exception_type "graph.DependencyCycleError").
//  - "*" matches any type on either side, as the AnyType(str) idiom of custom nodes does in ComfyUI.
//  - Link chains deeper than kMaxValidationDepth fail as Python's RecursionError would, but at a fixed depth.
// Thread-safety: validate_prompt is reentrant; the registry is only read.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/analysis.h"
#include "graph/node_registry.h"
#include "graph/prompt.h"

namespace netdist::graph {

inline constexpr int kMaxValidationDepth = 1000;

struct ValidatedPrompt {
  Prompt prompt;                     // values converted by validation; insertion order kept
  std::vector<std::string> outputs;  // output node ids to execute, in prompt order
  Json node_errors;                  // errors of outputs that were dropped ({} if none): POST /prompt's 200 reply
  // What the hidden PROMPT input shows nodes (PNG metadata) when it is not prompt.json(): a worker that ran
  // a coordinator's prompt with its input files installed under other names shows the names the client
  // wrote (ShardRunner::run_prompt). Null: prompt.json().
  Json shown_prompt;
  // Batches, latent sizes and splittable samplers of `prompt` (analysis.h), computed once here for the queue
  // policy, the cost model and the planner.
  PromptAnalysis analysis;
};

struct ValidationResult {
  std::optional<ValidatedPrompt> validated;  // set when at least one output validated
  Json error_body;                           // else the 400 body {"error": {...}, "node_errors": ...}
  bool ok() const { return validated.has_value(); }
};

// `partial_targets`, if given, limits the outputs to those ids (a newer ComfyUI's
// partial_execution_targets); outputs not in it are neither validated nor run.
ValidationResult validate_prompt(const Json& prompt, const NodeRegistry& registry,
                                 const std::vector<std::string>* partial_targets = nullptr);

// {"type", "message", "details", "extra_info"}: ComfyUI's error object.
Json comfy_error(const std::string& type, const std::string& message, const std::string& details,
                 Json extra_info = Json::object());

// ComfyUI's validate_node_input (non-strict) plus the "*" wildcard: comma-separated type lists match when
// they share a type.
bool types_compatible(const std::string& received_type, const std::string& input_type);

}  // namespace netdist::graph
