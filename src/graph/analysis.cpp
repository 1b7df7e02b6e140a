#include "graph/analysis.h"

#include <algorithm>
#include <cmath>

namespace netdist::graph {

namespace {

using Dim = std::optional<int64_t>;

// Literal inputs may be any JSON in a prompt that did not validate; numbers are clamped to ±2^31 so that
// products of a few of them stay far from int64 overflow.
constexpr double kInputLimit = 2147483648.0;

Dim literal(const PromptNode& node, const char* name) {
  const PromptInput* in = node.find_input(name);
  if (in == nullptr || in->link || !in->value.is_number()) return std::nullopt;
  const double v = in->value.get<double>();
  if (std::isnan(v)) return std::nullopt;
  if (in->value.is_number_integer() || in->value.is_number_unsigned())
    return static_cast<int64_t>(std::clamp(v, -kInputLimit, kInputLimit));
  return static_cast<int64_t>(std::clamp(std::trunc(v), -kInputLimit, kInputLimit));
}

std::optional<double> literal_float(const PromptNode& node, const char* name) {
  const PromptInput* in = node.find_input(name);
  if (in == nullptr || in->link || !in->value.is_number()) return std::nullopt;
  const double v = in->value.get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return std::clamp(v, -kInputLimit, kInputLimit);
}

Dim times(Dim a, Dim b) { return a && b ? Dim(*a * *b) : std::nullopt; }
Dim plus(Dim a, Dim b) { return a && b ? Dim(*a + *b) : std::nullopt; }
// Python's round() (half to even) of side × scale, as the upscale nodes compute it.
Dim scaled(Dim side, std::optional<double> scale) {
  if (!side || !scale) return std::nullopt;
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(*side) * *scale));
}
// round(other_out × side_in / other_in): a side given as 0, from the input's aspect ratio.
Dim aspect(Dim other_out, Dim side_in, Dim other_in) {
  if (!other_out || !side_in || !other_in || *other_in == 0) return std::nullopt;
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(*side_in) * *other_out / double(*other_in)));
}
Dim at_least(Dim v, int64_t floor) { return v ? Dim(std::max(floor, *v)) : std::nullopt; }
Dim div(Dim v, int64_t d) { return v ? Dim(*v / d) : std::nullopt; }

BatchShape unknown(BatchKind kind) { return BatchShape{kind, {}, {}, {}, {}}; }

bool is_splittable(const std::string& cls) { return cls == "KSampler" || cls == "KSamplerAdvanced"; }
bool is_shard_sampler(const std::string& cls) {
  return cls == "NetdistShardKSampler" || cls == "NetdistShardKSamplerAdvanced";
}

// Output shapes of every node, computed on demand with memoization. A node whose shape is being computed
// when it is asked again closes a cycle and gets unknown sizes.
class Walker {
 public:
  explicit Walker(const Prompt& prompt) : prompt_(prompt) {}
  std::optional<BatchShape> output(const std::string& id, int depth);
  // The batch a linked input carries: unknown when the link does not lead to slot 0 of a batch.
  std::optional<BatchShape> input(const PromptNode& node, const char* name, int depth);

 private:
  std::optional<BatchShape> compute(const PromptNode& node, int depth);
  std::optional<BatchShape> latent_rule(const PromptNode& node, int depth);
  std::optional<BatchShape> image_rule(const PromptNode& node, int depth);
  BatchShape latent_upscale(const PromptNode& node, int depth);
  BatchShape latent_from_batch(const PromptNode& node, int depth);
  BatchShape image_scale(const PromptNode& node, int depth);
  BatchShape image_pair(const PromptNode& node, const char* a, const char* b, bool equal_sizes_only, int depth);

  enum class State { running, done };
  struct Entry {
    State state = State::running;
    std::optional<BatchShape> shape;
  };
  const Prompt& prompt_;
  std::unordered_map<std::string, Entry> memo_;
};

std::optional<BatchShape> Walker::output(const std::string& id, int depth) {
  auto it = memo_.find(id);
  if (it != memo_.end()) return it->second.state == State::done ? it->second.shape : std::nullopt;
  const PromptNode* node = prompt_.find(id);
  if (node == nullptr) return std::nullopt;
  if (depth > kMaxAnalysisDepth) return std::nullopt;  // not memoized: a shallower path may still succeed
  memo_[id] = Entry{};
  std::optional<BatchShape> shape = compute(*node, depth);
  memo_[id] = Entry{State::done, shape};
  return shape;
}

std::optional<BatchShape> Walker::input(const PromptNode& node, const char* name, int depth) {
  const PromptInput* in = node.find_input(name);
  if (in == nullptr || !in->link || in->link->output_index != 0) return std::nullopt;
  return output(in->link->node_id, depth + 1);
}

std::optional<BatchShape> Walker::compute(const PromptNode& node, int depth) {
  if (auto latent = latent_rule(node, depth)) return latent;
  return image_rule(node, depth);
}

std::optional<BatchShape> Walker::latent_rule(const PromptNode& node, int depth) {
  const std::string& cls = node.class_type;
  auto in = [&](const char* name) { return input(node, name, depth).value_or(unknown(BatchKind::latent)); };
  if (cls == "EmptyLatentImage")
    return BatchShape{BatchKind::latent, literal(node, "batch_size"), 4, div(literal(node, "height"), 8),
                      div(literal(node, "width"), 8)};
  if (cls == "LatentFromBatch") return latent_from_batch(node, depth);
  if (cls == "RepeatLatentBatch") {
    BatchShape s = in("samples");
    s.batch = times(s.batch, literal(node, "amount"));
    return s;
  }
  if (cls == "LatentUpscale") return latent_upscale(node, depth);
  if (cls == "LatentUpscaleBy") {
    BatchShape s = in("samples");
    const auto scale = literal_float(node, "scale_by");
    s.height = scaled(s.height, scale);
    s.width = scaled(s.width, scale);
    return s;
  }
  if (is_splittable(cls)) return in("latent_image");
  if (is_shard_sampler(cls)) {
    BatchShape s = in("latent_image");
    const Dim begin = literal(node, "row_begin"), end = literal(node, "row_end");
    s.batch = begin && end ? Dim(std::max<int64_t>(0, *end - *begin)) : std::nullopt;
    return s;
  }
  if (cls == "VAEEncode") {
    const BatchShape px = input(node, "pixels", depth).value_or(unknown(BatchKind::image));
    return BatchShape{BatchKind::latent, px.batch, std::nullopt, div(px.height, 8), div(px.width, 8)};
  }
  if (cls == "LoadLatentNumpy" || cls == "LoadLatentUrl") return unknown(BatchKind::latent);
  return std::nullopt;
}

std::optional<BatchShape> Walker::image_rule(const PromptNode& node, int depth) {
  const std::string& cls = node.class_type;
  if (cls == "LoadImage") return BatchShape{BatchKind::image, 1, std::nullopt, std::nullopt, std::nullopt};
  if (cls == "LoadImageUrl" || cls == "FetchRemote") return unknown(BatchKind::image);
  if (cls == "VAEDecode" || cls == "VAEDecodeTiled") {
    const BatchShape s = input(node, "samples", depth).value_or(unknown(BatchKind::latent));
    return BatchShape{BatchKind::image, s.batch, 3, times(s.height, 8), times(s.width, 8)};
  }
  if (cls == "ImageScale") return image_scale(node, depth);
  if (cls == "ImageScaleBy") {
    BatchShape s = input(node, "image", depth).value_or(unknown(BatchKind::image));
    const auto scale = literal_float(node, "scale_by");
    s.height = scaled(s.height, scale);
    s.width = scaled(s.width, scale);
    return s;
  }
  if (cls == "ImageBatch") return image_pair(node, "image1", "image2", false, depth);
  if (cls == "CombineImageBatch") return image_pair(node, "images_a", "images_b", true, depth);
  return std::nullopt;
}

BatchShape Walker::latent_from_batch(const PromptNode& node, int depth) {
  BatchShape s = input(node, "samples", depth).value_or(unknown(BatchKind::latent));
  const Dim index = literal(node, "batch_index"), length = literal(node, "length");
  if (s.batch && *s.batch >= 1 && index && length) {
    const int64_t start = std::min(*s.batch - 1, *index);
    s.batch = std::max<int64_t>(0, std::min(*s.batch - start, *length));
  } else {
    s.batch = length && *length == 1 ? Dim(1) : std::nullopt;
  }
  return s;
}

BatchShape Walker::latent_upscale(const PromptNode& node, int depth) {
  BatchShape s = input(node, "samples", depth).value_or(unknown(BatchKind::latent));
  const Dim width = literal(node, "width"), height = literal(node, "height");
  if (!width || !height) {
    s.height = s.width = std::nullopt;
    return s;
  }
  if (*width == 0 && *height == 0) return s;
  Dim w = width, h = height;
  if (*width == 0) {
    h = std::max<int64_t>(64, *height);
    w = at_least(aspect(h, s.width, s.height), 64);
  } else if (*height == 0) {
    w = std::max<int64_t>(64, *width);
    h = at_least(aspect(w, s.height, s.width), 64);
  } else {
    w = std::max<int64_t>(64, *width);
    h = std::max<int64_t>(64, *height);
  }
  s.width = div(w, 8);
  s.height = div(h, 8);
  return s;
}

BatchShape Walker::image_scale(const PromptNode& node, int depth) {
  BatchShape s = input(node, "image", depth).value_or(unknown(BatchKind::image));
  const Dim width = literal(node, "width"), height = literal(node, "height");
  if (!width || !height) {
    s.height = s.width = std::nullopt;
    return s;
  }
  if (*width == 0 && *height == 0) return s;
  Dim w = width, h = height;
  if (*width == 0) w = at_least(aspect(height, s.width, s.height), 1);
  if (*height == 0) h = at_least(aspect(width, s.height, s.width), 1);
  s.width = w;
  s.height = h;
  return s;
}

BatchShape Walker::image_pair(const PromptNode& node, const char* a, const char* b, bool equal_sizes_only,
                              int depth) {
  const BatchShape first = input(node, a, depth).value_or(unknown(BatchKind::image));
  const BatchShape second = input(node, b, depth).value_or(unknown(BatchKind::image));
  BatchShape s = first;
  if (!equal_sizes_only) {
    s.batch = plus(first.batch, second.batch);
    return s;
  }
  const bool known = first.height && first.width && second.height && second.width;
  if (!known) {
    s.batch = std::nullopt;
  } else if (*first.height == *second.height && *first.width == *second.width) {
    s.batch = plus(first.batch, second.batch);
  }
  return s;
}

int64_t sampler_steps(const PromptNode& node) {
  int64_t steps = std::max<int64_t>(0, literal(node, "steps").value_or(20));
  if (node.class_type == "KSamplerAdvanced" || node.class_type == "NetdistShardKSamplerAdvanced") {
    const int64_t end = std::min(steps, literal(node, "end_at_step").value_or(10000));
    steps = std::max<int64_t>(0, end - std::max<int64_t>(0, literal(node, "start_at_step").value_or(0)));
  }
  return steps;
}

}  // namespace

SplitKind split_kind(const std::string& class_type) {
  return is_splittable(class_type) ? SplitKind::batch_rows : SplitKind::none;
}

PromptAnalysis PromptAnalysis::analyze(const Prompt& prompt) {
  PromptAnalysis out;
  Walker walker(prompt);
  for (const PromptNode& node : prompt.nodes()) {
    NodeAnalysis n{node.id, node.class_type, walker.output(node.id, 0), {}};
    for (const PromptInput& in : node.inputs) {
      if (in.link && in.link->output_index == 0 && walker.output(in.link->node_id, 1)) n.batch_inputs.push_back(in.name);
    }
    out.node_index_[node.id] = out.nodes_.size();
    out.nodes_.push_back(std::move(n));
    if (is_splittable(node.class_type) || is_shard_sampler(node.class_type)) {
      SamplerAnalysis s;
      s.id = node.id;
      s.class_type = node.class_type;
      s.split = is_splittable(node.class_type) ? SplitKind::batch_rows : SplitKind::none;
      s.steps = sampler_steps(node);
      s.latent = walker.input(node, "latent_image", 0).value_or(unknown(BatchKind::latent));
      out.sampler_index_[node.id] = out.samplers_.size();
      out.samplers_.push_back(std::move(s));
    }
  }
  return out;
}

PromptAnalysis PromptAnalysis::analyze_json(const Json& prompt) {
  auto parsed = Prompt::parse(prompt);
  return parsed.is_ok() ? analyze(*parsed) : PromptAnalysis();
}

const NodeAnalysis* PromptAnalysis::find(const std::string& id) const {
  auto it = node_index_.find(id);
  return it == node_index_.end() ? nullptr : &nodes_[it->second];
}

const SamplerAnalysis* PromptAnalysis::sampler(const std::string& id) const {
  auto it = sampler_index_.find(id);
  return it == sampler_index_.end() ? nullptr : &samplers_[it->second];
}

std::vector<std::string> PromptAnalysis::splittable_samplers() const {
  std::vector<std::string> out;
  for (const SamplerAnalysis& s : samplers_) {
    if (s.split == SplitKind::batch_rows) out.push_back(s.id);
  }
  return out;
}

bool PromptAnalysis::runs_whole() const {
  return std::all_of(samplers_.begin(), samplers_.end(), [](const SamplerAnalysis& s) {
    return s.split != SplitKind::batch_rows || s.latent.batch == std::optional<int64_t>(1);
  });
}

}  // namespace netdist::graph
