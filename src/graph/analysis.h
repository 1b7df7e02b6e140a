// What a prompt's graph says about its batches, read from the prompt alone (no files, no models, no
// libtorch): which nodes make and take LATENT/IMAGE batches, the sizes of those batches where the literal
// inputs fix them, and which sampler nodes can be split and how. The queue policy and the cost model
// (server/prompt_cost.h), the cluster's planner and its whole-prompt detection (cluster/shard.h) all ask
// this one analysis; nothing else reads batch sizes out of prompt JSON.
//
// Sizes follow netdist's node implementations (src/nodes/), which follow ComfyUI's nodes.py:
//   EmptyLatentImage     [batch_size, 4, height/8, width/8]
//   LatentFromBatch      rows [min(n−1, batch_index), +length) of its input (n = input batch); with the input
//                        batch unknown, 1 row when length is 1, else unknown
//   RepeatLatentBatch    input batch × amount
//   LatentUpscale        input batch; width/8 × height/8 with each side at least 64 px, a side given as 0
//                        taken from the input's aspect ratio (round half to even), both 0 = the input
//   LatentUpscaleBy      input batch; round(side × scale_by) latent units
//   KSampler, KSamplerAdvanced                         their latent_image
//   NetdistShardKSampler(Advanced)                     their latent_image's rows [row_begin, row_end)
//   VAEEncode            batch of its pixels, height/8 × width/8 (channels: the VAE's, unknown)
//   LoadLatentNumpy, LoadLatentUrl                     a latent of unknown size
//   LoadImage            one frame of unknown size; LoadImageUrl, FetchRemote: an image of unknown size
//   VAEDecode, VAEDecodeTiled                          batch of its samples, 8 × the latent's sides, 3 channels
//   ImageScale, ImageScaleBy                           input batch; sides as the node computes them
//   ImageBatch           image1's rows + image2's, image1's size
//   CombineImageBatch    images_a's rows + images_b's when their sizes are known equal, images_a alone when
//                        known different, else unknown
// Any other class makes no batch the analysis knows of (its outputs are not followed). A link to a missing
// node, to another output slot than 0, a cycle or a chain deeper than kMaxAnalysisDepth gives unknown
// sizes, never an error: the analysis is total, also for prompts that did not validate.
// Thread-safety: a PromptAnalysis is an immutable value; analyze() is reentrant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/prompt.h"

namespace netdist::graph {

inline constexpr int kMaxAnalysisDepth = 1000;

enum class BatchKind { latent, image };

// A LATENT batch [batch, channels, height, width] in latent units (pixels / 8), or an IMAGE batch [batch,
// height, width, channels] in pixels. nullopt = not fixed by the prompt (a file, a model, an unknown node).
struct BatchShape {
  BatchKind kind = BatchKind::latent;
  std::optional<int64_t> batch, channels, height, width;
  bool operator==(const BatchShape&) const = default;
};

struct NodeAnalysis {
  std::string id;
  std::string class_type;
  // The batch the node outputs at slot 0, for the classes listed above; nullopt for any other class.
  std::optional<BatchShape> output;
  // Inputs, in prompt order, linked to slot 0 of a node that outputs a batch: the batches it takes.
  std::vector<std::string> batch_inputs;
  bool produces_batch() const { return output.has_value(); }
  bool consumes_batch() const { return !batch_inputs.empty(); }
};

// How a sampler's work may be spread over workers. batch_rows: any contiguous run of its latent's rows is
// a shard that gives exactly those rows of the unsplit result (KSampler, KSamplerAdvanced). none: it runs
// as one piece (the shard samplers, which already are one run of rows).
enum class SplitKind { none, batch_rows };
// How a node class's sampling splits; none for a class that is no sampler too.
SplitKind split_kind(const std::string& class_type);

struct SamplerAnalysis {
  std::string id;
  std::string class_type;
  SplitKind split = SplitKind::none;
  // Steps it samples: "steps" (KSamplerAdvanced: min(end_at_step, steps) − start_at_step, at least 0); a
  // missing or non-number literal counts as ComfyUI's default (steps 20, start 0, end 10000).
  int64_t steps = 0;
  BatchShape latent;  // its latent_image input; unknown sizes when that is not a known batch
};

class PromptAnalysis {
 public:
  PromptAnalysis() = default;  // an empty prompt
  static PromptAnalysis analyze(const Prompt& prompt);
  // The analysis of prompt JSON that may not parse: an unparsable one analyzes as an empty prompt.
  static PromptAnalysis analyze_json(const Json& prompt);

  const std::vector<NodeAnalysis>& nodes() const { return nodes_; }  // in prompt order
  const NodeAnalysis* find(const std::string& id) const;
  const std::vector<SamplerAnalysis>& samplers() const { return samplers_; }  // in prompt order
  const SamplerAnalysis* sampler(const std::string& id) const;

  // Ids of the samplers with split == batch_rows, in prompt order.
  std::vector<std::string> splittable_samplers() const;
  // True when row splitting gains nothing: every splittable sampler's latent has a known batch of 1 (or
  // there is none). A coordinator then sends the prompt whole to one worker.
  bool runs_whole() const;

 private:
  std::vector<NodeAnalysis> nodes_;
  std::vector<SamplerAnalysis> samplers_;
  std::unordered_map<std::string, size_t> node_index_, sampler_index_;
};

}  // namespace netdist::graph
