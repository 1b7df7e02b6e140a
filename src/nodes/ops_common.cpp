#include "nodes/ops_common.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <utility>

#include <c10/util/Exception.h>

#include "nodes/node_util.h"

namespace netdist::nodes {

namespace {

// Python's normalisation of one slice bound against a dimension of `size`.
int64_t ops_slice_bound(std::optional<int64_t> v, int64_t size, int64_t fallback) {
  if (!v) return fallback;
  int64_t b = *v;
  if (b < 0) b += size;
  return std::clamp<int64_t>(b, 0, size);
}

std::string ops_shape(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

class OpsNode : public graph::NodeImpl {
 public:
  OpsNode(std::string class_type, OpsRunFn fn) : class_type_(std::move(class_type)), fn_(std::move(fn)) {}
  Result<std::vector<graph::Value>> run(graph::NodeContext& ctx, const graph::NodeInputs& in) override {
    try {
      return fn_(ctx, in);
    } catch (const c10::Error& e) {
      return Status::invalid_argument(class_type_ + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      return Status::invalid_argument(class_type_ + ": " + e.what());
    }
  }

 private:
  std::string class_type_;
  OpsRunFn fn_;
};

}  // namespace

at::Tensor py_slice(const at::Tensor& t, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop) {
  const int64_t size = t.size(dim);
  const int64_t b = ops_slice_bound(start, size, 0);
  const int64_t e = ops_slice_bound(stop, size, size);
  return t.narrow(dim, b, std::max<int64_t>(0, e - b));
}

int64_t py_floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

at::Tensor repeat_to_batch_size(const at::Tensor& t, int64_t batch) {
  const int64_t n = t.size(0);
  if (n > batch) return t.narrow(0, 0, batch);
  if (n < batch) {
    std::vector<int64_t> reps(t.dim(), 1);
    reps[0] = (batch + n - 1) / n;
    return t.repeat(reps).narrow(0, 0, batch);
  }
  return t;
}

Result<at::Tensor> composite_masked(const at::Tensor& destination_in, const at::Tensor& source_in, int64_t x, int64_t y,
                                    const std::optional<at::Tensor>& mask_in, int64_t multiplier, bool resize_source) {
  at::Tensor destination = destination_in.clone();
  at::Tensor source = source_in;
  if (resize_source) {
    source = at::upsample_bilinear2d(source, {destination.size(2), destination.size(3)}, false);
  }
  source = repeat_to_batch_size(source, destination.size(0));
  x = std::max(-source.size(3) * multiplier, std::min(x, destination.size(3) * multiplier));
  y = std::max(-source.size(2) * multiplier, std::min(y, destination.size(2) * multiplier));
  const int64_t left = py_floordiv(x, multiplier), top = py_floordiv(y, multiplier);
  const int64_t right = left + source.size(3), bottom = top + source.size(2);
  at::Tensor mask;
  if (!mask_in) {
    mask = at::ones_like(source);
  } else {
    mask = mask_in->reshape({-1, 1, mask_in->size(-2), mask_in->size(-1)}).clone();
    mask = at::upsample_bilinear2d(mask, {source.size(2), source.size(3)}, false);
    mask = repeat_to_batch_size(mask, source.size(0));
  }
  const int64_t visible_width = destination.size(3) - left + std::min<int64_t>(0, x);
  const int64_t visible_height = destination.size(2) - top + std::min<int64_t>(0, y);
  mask = py_slice(py_slice(mask, 2, std::nullopt, visible_height), 3, std::nullopt, visible_width);
  at::Tensor inverse_mask = at::ones_like(mask) - mask;
  at::Tensor source_portion =
      mask * py_slice(py_slice(source, 2, std::nullopt, visible_height), 3, std::nullopt, visible_width);
  at::Tensor region = py_slice(py_slice(destination, 2, top, bottom), 3, left, right);
  at::Tensor destination_portion = inverse_mask * region;
  region.copy_(source_portion + destination_portion);
  return destination;
}

Result<at::Tensor> mask_rows(const at::Tensor& mask, const std::string& class_type, const std::string& input) {
  if (!mask.defined() || mask.dim() < 2 || mask.numel() == 0)
    return Status::invalid_argument(class_type + ": input '" + input + "' is not a mask of [N, H, W] values (got " +
                                    (mask.defined() ? ops_shape(mask) : std::string("none")) + ")");
  return mask.reshape({-1, mask.size(-2), mask.size(-1)});
}

Status check_image(const at::Tensor& images, const std::string& class_type, const std::string& input) {
  if (!images.defined() || images.dim() != 4 || images.numel() == 0)
    return Status::invalid_argument(class_type + ": input '" + input + "' is not an image batch [N, H, W, C] (got " +
                                    (images.defined() ? ops_shape(images) : std::string("none")) + ")");
  return Status::ok();
}

Status check_latent(const at::Tensor& samples, const std::string& class_type, const std::string& input) {
  if (!samples.defined() || samples.dim() != 4 || samples.numel() == 0)
    return Status::invalid_argument(class_type + ": input '" + input + "' is not a latent batch [N, C, h, w] (got " +
                                    (samples.defined() ? ops_shape(samples) : std::string("none")) + ")");
  return Status::ok();
}

void add_ops_node(graph::NodeRegistry& registry, graph::NodeSchema schema, OpsRunFn fn) {
  std::string class_type = schema.class_type;
  registry.add(std::move(schema), [class_type, fn] { return std::make_unique<OpsNode>(class_type, fn); });
}

graph::NodeSchema ops_schema(std::string class_type, std::string display, std::string category,
                             std::vector<graph::InputSpec> required, std::vector<std::string> outputs,
                             std::string module) {
  graph::NodeSchema s = make_schema(std::move(class_type), std::move(display), std::move(category),
                                    std::move(required), std::move(outputs));
  s.python_module = std::move(module);
  return s;
}

}  // namespace netdist::nodes
