// Shards: what a worker runs for one slice of a sampler's batch, and what it needs to run it; and which
// prompts run whole on one worker instead (is_whole_prompt).
//
// A shard of sampler node S covering batch rows [a, b) is a self-contained API-format workflow: S and
// every node S depends on (copied from the prompt with their ids), S's class renamed to its row variant
// (KSampler → NetdistShardKSampler, KSamplerAdvanced → NetdistShardKSamplerAdvanced, with row_begin = a,
// row_end = b) and one NetdistShardLatentOutput node (id kShardOutputId) fed by S. A worker executes it
// with its ordinary graph executor; the latent rows come back as a safetensors body.
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "graph/analysis.h"

namespace netdist::cluster {

using Json = nlohmann::ordered_json;

inline constexpr const char* kShardOutputId = "netdist_shard_output";

// True for the sampler classes the planner splits by batch row (graph::split_kind is batch_rows).
bool is_splittable_sampler(const std::string& class_type);

// The workflow of the shard of `sampler_id` covering rows [row_begin, row_end). invalid_argument naming
// the node when the id is missing, not a splittable sampler, or a link points at a missing node.
Result<Json> shard_workflow(const Json& prompt, const std::string& sampler_id, int64_t row_begin,
                            int64_t row_end);

// What a worker must have to run the shard of `sampler_id`: node classes of the sampler and its
// ancestors, and the checkpoint names their loaders ask for (ckpt_name inputs).
struct Requirements {
  std::set<std::string> node_classes;
  std::set<std::string> checkpoints;
};
Requirements shard_requirements(const Json& prompt, const std::string& sampler_id);
// Adds the node classes of `ids` (nodes of `prompt`) and the checkpoints their ckpt_name inputs name.
void add_requirements(const Json& prompt, const std::set<std::string>& ids, Requirements& req);

// The shards of a sampler batch: contiguous runs of its micro-batches (`groups`, micro_batch_bounds of the
// batch), one run per entry of `speeds` (the eligible workers' relative speeds, fastest first), each run's
// rows as close as the groups allow to its worker's share of the batch (run k ends at the group boundary
// nearest the speeds' cumulative share, leaving at least one group for every later run). A worker runs its
// run's groups as overlapping UNet calls, which is why a worker gets one shard rather than one per group.
// Fewer runs than speeds when there are fewer groups; one run per group when `speeds` is empty. Returns
// bounds {0, ..., n}, a subsequence of `groups`.
std::vector<int64_t> shard_bounds(const std::vector<int64_t>& groups, const std::vector<double>& speeds);

// The ids of every splittable sampler in the prompt, in prompt order (graph::PromptAnalysis).
std::vector<std::string> splittable_samplers(const Json& prompt);

// What a worker must have to run the whole prompt: every node class and every ckpt_name.
Requirements prompt_requirements(const Json& prompt);

// The batch size of the latent (or image) a node outputs, when the prompt alone fixes it: the graph
// analysis's (graph/analysis.h, which lists every node class it follows). nullopt for anything else (other
// nodes, links to missing nodes, cycles, a prompt that does not parse).
std::optional<int64_t> static_batch_size(const Json& prompt, const std::string& node_id);

// True when a prompt gains nothing from row splitting, so a coordinator sends it whole to one worker:
// graph::PromptAnalysis::runs_whole (every splittable sampler's latent has a static batch size of 1, or there
// is no splittable sampler). False for a prompt that does not parse. The files its LoadImage nodes read
// travel with it (shard_inputs.h), as they do with row shards.
bool is_whole_prompt(const Json& prompt);
bool is_whole_prompt(const graph::PromptAnalysis& analysis);

// What `capabilities` (GET /netdist/v1/capabilities: {"node_classes": [...], "models": [{"name"...}]})
// lacks of `req`, as phrases: "checkpoint 'x.safetensors'", "node class 'Foo'". Empty = it can run it.
std::vector<std::string> missing_requirements(const Requirements& req, const Json& capabilities);

}  // namespace netdist::cluster
