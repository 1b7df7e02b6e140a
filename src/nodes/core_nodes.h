// ComfyUI's core node classes, with its exact class names, inputs, defaults and ranges
// (reference: ComfyUI nodes.py), implemented on the netdist engine.
#pragma once

#include <memory>

#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

// Registers every core node class into `registry`. The classes keep `env` alive.
void register_core_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

// The node classes a cluster worker runs shards with (not listed by plain servers):
//   NetdistShardKSampler / NetdistShardKSamplerAdvanced: KSampler / KSamplerAdvanced plus INT inputs
//     row_begin, row_end; the output LATENT holds only rows [row_begin, row_end) of the batch, each
//     bit-identical to that row of the unsplit sampler's output (engine.h, SampleRequest rows).
//   NetdistShardLatentOutput: output node; UI output {"netdist_latent": [base64 of a safetensors file
//     holding one F32 tensor "samples" [rows, C, h, w]]}.
inline constexpr const char* kShardKSampler = "NetdistShardKSampler";
inline constexpr const char* kShardKSamplerAdvanced = "NetdistShardKSamplerAdvanced";
inline constexpr const char* kShardLatentOutput = "NetdistShardLatentOutput";
void register_shard_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
