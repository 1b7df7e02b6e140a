#include "nodes/image_ops_nodes.h"

#include <algorithm>
#include <string>
#include <vector>

#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/ops_common.h"
#include "nodes/upscale.h"

namespace netdist::nodes {

namespace {

using graph::float_input;
using graph::int_input;
using graph::link_input;
using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

constexpr int64_t kImageOpsMaxResolution = 16384;
constexpr const char* kPostProcessingModule = "comfy_extras.nodes_post_processing";

Result<at::Tensor> image_ops_input(const NodeInputs& in, const std::string& name, const std::string& class_type) {
  ND_ASSIGN_OR_RETURN(auto im, need<ImageObject>(in, name));
  ND_RETURN_IF_ERROR(check_image(im->images, class_type, name));
  return im->images;
}

Value image_ops_value(const at::Tensor& t) {
  auto out = std::make_shared<ImageObject>();
  out->images = t.contiguous();
  return object(out);
}

// nodes_post_processing.gaussian_kernel.
at::Tensor image_ops_gaussian_kernel(int64_t kernel_size, double sigma) {
  std::vector<at::Tensor> xy = at::meshgrid({at::linspace(-1, 1, kernel_size, at::kFloat),
                                             at::linspace(-1, 1, kernel_size, at::kFloat)}, "ij");
  at::Tensor d = at::sqrt(xy[0] * xy[0] + xy[1] * xy[1]);
  at::Tensor g = at::exp(-(d * d) / (2.0 * sigma * sigma));
  return g / g.sum();
}

// The depthwise convolution ImageBlur and ImageSharpen share: reflect padding by `radius`, conv2d with
// padding kernel_size // 2, the padded border cut off again.
Result<at::Tensor> image_ops_filter(const at::Tensor& image, const at::Tensor& kernel2d, int64_t radius,
                                    const std::string& class_type, const std::string& radius_input) {
  if (radius >= image.size(1) || radius >= image.size(2))
    return Status::invalid_argument(class_type + ": " + radius_input + " " + std::to_string(radius) +
                                    " needs an image larger than that in both directions (reflect padding); 'image' is " +
                                    std::to_string(image.size(2)) + "×" + std::to_string(image.size(1)));
  const int64_t channels = image.size(3), kernel_size = radius * 2 + 1;
  at::Tensor kernel = kernel2d.repeat({channels, 1, 1}).unsqueeze(1);
  at::Tensor x = image.permute({0, 3, 1, 2});
  at::Tensor padded = at::reflection_pad2d(x, {radius, radius, radius, radius});
  at::Tensor out = at::conv2d(padded, kernel, {}, 1, kernel_size / 2, 1, channels);
  out = out.slice(2, radius, out.size(2) - radius).slice(3, radius, out.size(3) - radius);
  return out.permute({0, 2, 3, 1});
}

Result<std::vector<Value>> run_image_blur(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(at::Tensor image, image_ops_input(in, "image", "ImageBlur"));
  const int64_t radius = in.get_int("blur_radius");
  if (radius == 0) return std::vector<Value>{image_ops_value(image)};
  at::Tensor kernel = image_ops_gaussian_kernel(radius * 2 + 1, in.get_float("sigma"));
  ND_ASSIGN_OR_RETURN(at::Tensor out, image_ops_filter(image, kernel, radius, "ImageBlur", "blur_radius"));
  return std::vector<Value>{image_ops_value(out)};
}

Result<std::vector<Value>> run_image_sharpen(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(at::Tensor image, image_ops_input(in, "image", "ImageSharpen"));
  const int64_t radius = in.get_int("sharpen_radius");
  if (radius == 0) return std::vector<Value>{image_ops_value(image)};
  const int64_t kernel_size = radius * 2 + 1, center = kernel_size / 2;
  at::Tensor kernel = image_ops_gaussian_kernel(kernel_size, in.get_float("sigma")) * -(in.get_float("alpha") * 10);
  at::Tensor c = kernel.select(0, center).select(0, center);
  c.copy_(c - kernel.sum() + 1.0);
  ND_ASSIGN_OR_RETURN(at::Tensor out, image_ops_filter(image, kernel, radius, "ImageSharpen", "sharpen_radius"));
  return std::vector<Value>{image_ops_value(at::clamp(out, 0, 1))};
}

at::Tensor image_ops_blend_mode(const at::Tensor& img1, const at::Tensor& img2, const std::string& mode) {
  if (mode == "multiply") return img1 * img2;
  if (mode == "screen") return 1 - (1 - img1) * (1 - img2);
  if (mode == "overlay") return at::where(img1 <= 0.5, 2 * img1 * img2, 1 - 2 * (1 - img1) * (1 - img2));
  if (mode == "soft_light") {
    at::Tensor g = at::where(img1 <= 0.25, ((16 * img1 - 12) * img1 + 4) * img1, at::sqrt(img1));
    return at::where(img2 <= 0.5, img1 - (1 - 2 * img2) * img1 * (1 - img1), img1 + (2 * img2 - 1) * (g - img1));
  }
  if (mode == "difference") return img1 - img2;
  return img2;  // normal (the combo allows nothing else)
}

Result<std::vector<Value>> run_image_blend(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(at::Tensor image1, image_ops_input(in, "image1", "ImageBlend"));
  ND_ASSIGN_OR_RETURN(at::Tensor image2, image_ops_input(in, "image2", "ImageBlend"));
  const double blend_factor = in.get_float("blend_factor");
  if (image1.sizes() != image2.sizes()) {
    ND_ASSIGN_OR_RETURN(at::Tensor up, in_node(common_upscale(image2.permute({0, 3, 1, 2}), image1.size(2), image1.size(1),
                                                              "bicubic", "center"), "ImageBlend"));
    image2 = up.permute({0, 2, 3, 1});
  }
  at::Tensor blended = image_ops_blend_mode(image1, image2, in.get_string("blend_mode"));
  blended = image1 * (1 - blend_factor) + blended * blend_factor;
  return std::vector<Value>{image_ops_value(at::clamp(blended, 0, 1))};
}

Result<std::vector<Value>> run_pad_for_outpaint(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(at::Tensor image, image_ops_input(in, "image", "ImagePadForOutpaint"));
  const int64_t left = in.get_int("left"), top = in.get_int("top"), right = in.get_int("right"),
                bottom = in.get_int("bottom"), feathering = in.get_int("feathering");
  const int64_t d1 = image.size(0), d2 = image.size(1), d3 = image.size(2), d4 = image.size(3);
  at::Tensor new_image = at::ones({d1, d2 + top + bottom, d3 + left + right, d4}, at::kFloat) * 0.5;
  new_image.slice(1, top, top + d2).slice(2, left, left + d3).copy_(image);
  at::Tensor mask = at::ones({d2 + top + bottom, d3 + left + right}, at::kFloat);
  at::Tensor t = at::zeros({d2, d3}, at::kFloat);
  if (feathering > 0 && feathering * 2 < d2 && feathering * 2 < d3) {
    float* tp = t.data_ptr<float>();
    for (int64_t i = 0; i < d2; ++i) {
      for (int64_t j = 0; j < d3; ++j) {
        const int64_t dt = top != 0 ? i : d2, db = bottom != 0 ? d2 - i : d2;
        const int64_t dl = left != 0 ? j : d3, dr = right != 0 ? d3 - j : d3;
        const int64_t d = std::min({dt, db, dl, dr});
        if (d >= feathering) continue;
        const double v = static_cast<double>(feathering - d) / static_cast<double>(feathering);
        tp[i * d3 + j] = static_cast<float>(v * v);
      }
    }
  }
  mask.slice(0, top, top + d2).slice(1, left, left + d3).copy_(t);
  auto m = std::make_shared<MaskObject>();
  m->mask = mask.unsqueeze(0).contiguous();
  return std::vector<Value>{image_ops_value(new_image), object(m)};
}

void add_image_basics(graph::NodeRegistry& r) {
  const int64_t mr = kImageOpsMaxResolution;
  add_ops_node(r, ops_schema("ImageCrop", "Image Crop", "image/transform",
                             {link_input("image", "IMAGE"), int_input("width", 512, 1, mr, 1), int_input("height", 512, 1, mr, 1),
                              int_input("x", 0, 0, mr, 1), int_input("y", 0, 0, mr, 1)},
                             {"IMAGE"}, "comfy_extras.nodes_images"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(at::Tensor image, image_ops_input(in, "image", "ImageCrop"));
                 const int64_t x = std::min(in.get_int("x"), image.size(2) - 1);
                 const int64_t y = std::min(in.get_int("y"), image.size(1) - 1);
                 at::Tensor img = py_slice(py_slice(image, 1, y, in.get_int("height") + y), 2, x, in.get_int("width") + x);
                 return std::vector<Value>{image_ops_value(img)};
               });
  add_ops_node(r, ops_schema("ImageInvert", "Invert Image", "image", {link_input("image", "IMAGE")}, {"IMAGE"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(at::Tensor image, image_ops_input(in, "image", "ImageInvert"));
                 return std::vector<Value>{image_ops_value(1.0 - image)};
               });
  graph::InputSpec color = int_input("color", 0, 0, 0xFFFFFF, 1);
  color.extra["display"] = "color";
  add_ops_node(r, ops_schema("EmptyImage", "EmptyImage", "image",
                             {int_input("width", 512, 1, mr, 1), int_input("height", 512, 1, mr, 1),
                              int_input("batch_size", 1, 1, 4096), color},
                             {"IMAGE"}, "nodes"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 const int64_t b = in.get_int("batch_size"), h = in.get_int("height"), w = in.get_int("width");
                 const int64_t c = in.get_int("color");
                 std::vector<at::Tensor> planes;
                 for (int shift : {16, 8, 0})
                   planes.push_back(at::full({b, h, w, 1}, static_cast<double>((c >> shift) & 0xFF) / 0xFF, at::kFloat));
                 return std::vector<Value>{image_ops_value(at::cat(planes, -1))};
               });
  add_ops_node(r, ops_schema("ImagePadForOutpaint", "Pad Image for Outpainting", "image",
                             {link_input("image", "IMAGE"), int_input("left", 0, 0, mr, 8), int_input("top", 0, 0, mr, 8),
                              int_input("right", 0, 0, mr, 8), int_input("bottom", 0, 0, mr, 8),
                              int_input("feathering", 40, 0, mr, 1)},
                             {"IMAGE", "MASK"}, "nodes"),
               run_pad_for_outpaint);
}

}  // namespace

void register_image_ops_nodes(graph::NodeRegistry& r) {
  add_image_basics(r);
  add_ops_node(r, ops_schema("ImageBlend", "Image Blend", "image/postprocessing",
                             {link_input("image1", "IMAGE"), link_input("image2", "IMAGE"),
                              float_input("blend_factor", 0.5, 0.0, 1.0, 0.01),
                              graph::combo_input("blend_mode", {"normal", "multiply", "screen", "overlay", "soft_light",
                                                                "difference"})},
                             {"IMAGE"}, kPostProcessingModule),
               run_image_blend);
  add_ops_node(r, ops_schema("ImageBlur", "Image Blur", "image/postprocessing",
                             {link_input("image", "IMAGE"), int_input("blur_radius", 1, 1, 31, 1),
                              float_input("sigma", 1.0, 0.1, 10.0, 0.1)},
                             {"IMAGE"}, kPostProcessingModule),
               run_image_blur);
  add_ops_node(r, ops_schema("ImageSharpen", "Image Sharpen", "image/postprocessing",
                             {link_input("image", "IMAGE"), int_input("sharpen_radius", 1, 1, 31, 1),
                              float_input("sigma", 1.0, 0.1, 10.0, 0.01), float_input("alpha", 1.0, 0.0, 5.0, 0.01)},
                             {"IMAGE"}, kPostProcessingModule),
               run_image_sharpen);
}

}  // namespace netdist::nodes
