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
//   NetdistShardVAEDecode: VAEDecode of rows [row_begin, row_begin + N) of a batch of batch_size images
//     (engine.h decode_rows: bit-identical to those rows of VAEDecode of the whole batch).
//   NetdistShardLatentOutput: output node; UI output {"netdist_latent": [base64 of a safetensors file
//     holding the F32 tensor "samples" [rows, C, h, w], and "images" [rows, H, W, 3] when its optional
//     input images is linked]}.
inline constexpr const char* kShardKSampler = "NetdistShardKSampler";
inline constexpr const char* kShardKSamplerAdvanced = "NetdistShardKSamplerAdvanced";
inline constexpr const char* kShardVAEDecode = "NetdistShardVAEDecode";
inline constexpr const char* kShardLatentOutput = "NetdistShardLatentOutput";
void register_shard_nodes(graph::NodeRegistry& registry);

// The signature of the VAE that VAEDecode node `decode_id` of `prompt` uses: the class and inputs of every
// node upstream of its "vae" input, as one string ("" when there is no such link). Two prompts with equal
// signatures decode with the same VAE.
std::string decode_source_key(const graph::Json& prompt, const std::string& decode_id);

}  // namespace netdist::nodes
