#include "nodes/upscale_nodes.h"

#include <algorithm>

#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/upscale.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

constexpr int64_t kUpscaleMaxResolution = 16384;

const std::vector<std::string> kLatentMethods = {"nearest-exact", "bilinear", "area", "bicubic", "bislerp"};
const std::vector<std::string> kImageMethods = {"nearest-exact", "bilinear", "area", "bicubic", "lanczos"};
const std::vector<std::string> kCropMethods = {"disabled", "center"};

Result<std::vector<Value>> latent_out(const LatentObject& in, at::Tensor samples) {
  auto out = std::make_shared<LatentObject>(in);
  out->samples = std::move(samples);
  return std::vector<Value>{object(out)};
}

Result<std::vector<Value>> image_out(at::Tensor channels_first) {
  auto out = std::make_shared<ImageObject>();
  out->images = channels_first.movedim(1, -1).contiguous();
  return std::vector<Value>{object(out)};
}

}  // namespace

LatentSize latent_upscale_size(int64_t latent_h, int64_t latent_w, int64_t width, int64_t height) {
  if (width == 0) {
    height = std::max<int64_t>(64, height);
    width = std::max<int64_t>(
        64, py_round(static_cast<double>(latent_w) * height / static_cast<double>(latent_h)));
  } else if (height == 0) {
    width = std::max<int64_t>(64, width);
    height = std::max<int64_t>(
        64, py_round(static_cast<double>(latent_h) * width / static_cast<double>(latent_w)));
  } else {
    width = std::max<int64_t>(64, width);
    height = std::max<int64_t>(64, height);
  }
  return {width / 8, height / 8};
}

void register_upscale_nodes(graph::NodeRegistry& r) {
  add_fn_node(
      r,
      make_schema(
          "LatentUpscale", "Upscale Latent", "latent",
          {graph::link_input("samples", "LATENT"), graph::combo_input("upscale_method", kLatentMethods),
           graph::int_input("width", 512, 0, kUpscaleMaxResolution, 8),
           graph::int_input("height", 512, 0, kUpscaleMaxResolution, 8),
           graph::combo_input("crop", kCropMethods)},
          {"LATENT"}),
      [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
        const int64_t width = in.get_int("width"), height = in.get_int("height");
        if (width == 0 && height == 0) return std::vector<Value>{object(s)};
        LatentSize size = latent_upscale_size(s->samples.size(-2), s->samples.size(-1), width, height);
        ND_ASSIGN_OR_RETURN(at::Tensor up,
                            common_upscale(s->samples, size.width, size.height,
                                           in.get_string("upscale_method"), in.get_string("crop")));
        return latent_out(*s, std::move(up));
      });
  add_fn_node(r,
              make_schema("LatentUpscaleBy", "Upscale Latent By", "latent",
                          {graph::link_input("samples", "LATENT"),
                           graph::combo_input("upscale_method", kLatentMethods),
                           graph::float_input("scale_by", 1.5, 0.01, 8.0, 0.01)},
                          {"LATENT"}),
              [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "samples"));
                const double scale = in.get_float("scale_by");
                const int64_t width = py_round(static_cast<double>(s->samples.size(-1)) * scale);
                const int64_t height = py_round(static_cast<double>(s->samples.size(-2)) * scale);
                ND_ASSIGN_OR_RETURN(
                    at::Tensor up,
                    common_upscale(s->samples, width, height, in.get_string("upscale_method"), "disabled"));
                return latent_out(*s, std::move(up));
              });
  add_fn_node(
      r,
      make_schema("ImageScale", "Upscale Image", "image/upscaling",
                  {graph::link_input("image", "IMAGE"), graph::combo_input("upscale_method", kImageMethods),
                   graph::int_input("width", 512, 0, kUpscaleMaxResolution, 1),
                   graph::int_input("height", 512, 0, kUpscaleMaxResolution, 1),
                   graph::combo_input("crop", kCropMethods)},
                  {"IMAGE"}),
      [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
        int64_t width = in.get_int("width"), height = in.get_int("height");
        if (width == 0 && height == 0) return std::vector<Value>{object(image)};
        at::Tensor samples = image->images.movedim(-1, 1);
        if (width == 0) {
          width =
              std::max<int64_t>(1, py_round(static_cast<double>(samples.size(3)) * height / samples.size(2)));
        } else if (height == 0) {
          height =
              std::max<int64_t>(1, py_round(static_cast<double>(samples.size(2)) * width / samples.size(3)));
        }
        ND_ASSIGN_OR_RETURN(
            at::Tensor up,
            common_upscale(samples, width, height, in.get_string("upscale_method"), in.get_string("crop")));
        return image_out(std::move(up));
      });
  add_fn_node(
      r,
      make_schema("ImageScaleBy", "Upscale Image By", "image/upscaling",
                  {graph::link_input("image", "IMAGE"), graph::combo_input("upscale_method", kImageMethods),
                   graph::float_input("scale_by", 1.0, 0.01, 8.0, 0.01)},
                  {"IMAGE"}),
      [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
        ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
        at::Tensor samples = image->images.movedim(-1, 1);
        const double scale = in.get_float("scale_by");
        const int64_t width = py_round(static_cast<double>(samples.size(3)) * scale);
        const int64_t height = py_round(static_cast<double>(samples.size(2)) * scale);
        ND_ASSIGN_OR_RETURN(at::Tensor up, common_upscale(samples, width, height,
                                                          in.get_string("upscale_method"), "disabled"));
        return image_out(std::move(up));
      });
}

}  // namespace netdist::nodes
