// Tensor helpers shared by the pure operation nodes (mask_nodes.h, latent_ops_nodes.h, image_ops_nodes.h,
// conditioning_ops_nodes.h), written as ComfyUI writes them so that results match its node classes exactly.
// Layouts: MASK [N, H, W] (a [H, W] mask is taken as N = 1), IMAGE [N, H, W, C], LATENT samples [N, C, h, w];
// all float32 CPU. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "graph/node_registry.h"

namespace netdist::nodes {

// A Python slice t[start:stop] along `dim` (negative indices count from the end, both ends clipped to the
// size, an empty view when stop <= start after that): the same view the ComfyUI code's slicing takes.
at::Tensor py_slice(const at::Tensor& t, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop);

// Python's floor division a // b (b > 0).
int64_t py_floordiv(int64_t a, int64_t b);

// comfy.utils.repeat_to_batch_size: the first `batch` rows of t, repeated (ceil) when t has fewer.
at::Tensor repeat_to_batch_size(const at::Tensor& t, int64_t batch);

// comfy_extras.nodes_mask.composite (LatentCompositeMasked with multiplier 8, ImageCompositeMasked with 1):
// pastes `source` [B', C, h', w'] into a copy of `destination` [B, C, H, W] at (x, y) / multiplier, with
// `mask` (any [.., mh, mw], resized bilinearly to the source's size) or ones; resize_source first resizes
// the source bilinearly to the destination's size. Shape mismatches libtorch refuses are invalid_argument.
Result<at::Tensor> composite_masked(const at::Tensor& destination, const at::Tensor& source, int64_t x, int64_t y,
                                    const std::optional<at::Tensor>& mask, int64_t multiplier, bool resize_source);

// A MASK input as [N, H, W] (mask.reshape(-1, H, W)); invalid_argument naming class and input when it has
// fewer than 2 dimensions or no elements.
Result<at::Tensor> mask_rows(const at::Tensor& mask, const std::string& class_type, const std::string& input);

// Checks an IMAGE input is [N, H, W, C] with N, H, W, C >= 1; the error names class and input.
Status check_image(const at::Tensor& images, const std::string& class_type, const std::string& input);
// Checks a LATENT samples input is [N, C, h, w] with every size >= 1; the error names class and input.
Status check_latent(const at::Tensor& samples, const std::string& class_type, const std::string& input);

using OpsRunFn = std::function<Result<std::vector<graph::Value>>(graph::NodeContext&, const graph::NodeInputs&)>;

// Registers a stateless node whose run() is `fn`, with a libtorch exception (a shape the tensors cannot be
// combined in) turned into invalid_argument "<class_type>: <what>".
void add_ops_node(graph::NodeRegistry& registry, graph::NodeSchema schema, OpsRunFn fn);

// A schema with the fields every operation node sets; module = ComfyUI's python_module.
graph::NodeSchema ops_schema(std::string class_type, std::string display, std::string category,
                             std::vector<graph::InputSpec> required, std::vector<std::string> outputs,
                             std::string module);

}  // namespace netdist::nodes
