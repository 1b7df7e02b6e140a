#include "nodes/mask_nodes.h"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/files.h"
#include "io/image_decode.h"
#include "io/sha256.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/ops_common.h"

namespace netdist::nodes {

namespace {

namespace fs = std::filesystem;
using graph::int_input;
using graph::link_input;
using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

constexpr int64_t kMaskMaxResolution = 16384;
constexpr const char* kMaskModule = "comfy_extras.nodes_mask";

Value mask_value(at::Tensor t) {
  auto out = std::make_shared<MaskObject>();
  out->mask = t.contiguous();
  return object(out);
}

Value mask_image_value(at::Tensor t) {
  auto out = std::make_shared<ImageObject>();
  out->images = t.contiguous();
  return object(out);
}

Result<at::Tensor> mask_input(const NodeInputs& in, const std::string& name, const std::string& class_type) {
  ND_ASSIGN_OR_RETURN(auto m, need<MaskObject>(in, name));
  return mask_rows(m->mask, class_type, name);
}

// nodes.py LoadImageMask: an input file (as LoadImage: any file under input_dir, headers checked at
// validation, IS_CHANGED = the file's SHA-256).
void add_load_image_mask(graph::NodeRegistry& r, const std::shared_ptr<NodeEnv>& env) {
  graph::InputSpec image = graph::combo_input("image", {});
  image.options_provider = [env] { return env->input_images(); };
  image.extra["image_upload"] = true;
  graph::NodeSchema s = make_schema("LoadImageMask", "Load Image (as Mask)", "mask",
                                    {image, graph::combo_input("channel", {"alpha", "red", "green", "blue"})}, {"MASK"});
  s.custom_validation = graph::CustomValidation{{"image"}, [env](const graph::Json& values) -> std::optional<std::string> {
    const graph::Json& v = values.value("image", graph::Json());
    const std::string name = v.is_string() ? v.get<std::string>() : "";
    std::error_code ec;
    const fs::path path = fs::path(env->options().input_dir) / name;
    if (name.empty() || name.find("..") != std::string::npos || name.front() == '/' || !fs::is_regular_file(path, ec))
      return "Invalid image file: " + name;
    Result<io::ImageHeader> header = io::read_image_file_header(path.string(), name);
    if (!header.is_ok()) return "Invalid image file: " + header.status().message();
    return std::nullopt;
  }};
  auto image_path = [env](const NodeInputs& in) -> Result<std::string> {
    const std::string name = in.get_string("image");
    if (name.find("..") != std::string::npos) return Status::invalid_argument("LoadImageMask: invalid image file: " + name);
    return (fs::path(env->options().input_dir) / name).string();
  };
  auto file_hash = [image_path](const NodeInputs& in) -> std::optional<std::string> {
    Result<std::string> path = image_path(in);
    Result<std::string> h = path.is_ok() ? io::file_sha256(*path) : path.status();
    return h.is_ok() ? std::optional<std::string>(*h) : std::nullopt;
  };
  add_hooked_node(r, s, [image_path](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
    ND_ASSIGN_OR_RETURN(const std::string path, image_path(in));
    ND_ASSIGN_OR_RETURN(std::string bytes, in_node(io::read_file(path), "LoadImageMask"));
    io::DecodeOptions options;
    options.all_frames = false;
    ND_ASSIGN_OR_RETURN(io::DecodedImage decoded, in_node(io::decode_image(bytes, path, options), "LoadImageMask"));
    const io::Image8& im = decoded.frames.at(0);
    const std::string channel = in.get_string("channel");
    at::Tensor px = at::from_blob(const_cast<uint8_t*>(im.pixels.data()), {im.height, im.width, im.channels}, at::kByte);
    at::Tensor mask;
    if (channel == "alpha") {
      // PIL's convert("RGBA") gives an opaque alpha band to an image without one: 1 - 255 / 255 = 0.
      mask = im.channels == 4 ? 1.0 - px.select(2, 3).to(at::kFloat) / 255.0 : at::zeros({im.height, im.width}, at::kFloat);
    } else {
      const int64_t c = channel == "red" ? 0 : channel == "green" ? 1 : 2;
      mask = px.select(2, c).to(at::kFloat) / 255.0;
    }
    return std::vector<Value>{mask_value(mask.unsqueeze(0))};
  }, file_hash);
}

void add_mask_conversions(graph::NodeRegistry& r) {
  add_ops_node(r, ops_schema("MaskToImage", "Convert Mask to Image", "mask", {link_input("mask", "MASK")}, {"IMAGE"},
                             kMaskModule),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto m, need<MaskObject>(in, "mask"));
                 ND_ASSIGN_OR_RETURN(at::Tensor rows, mask_rows(m->mask, "MaskToImage", "mask"));
                 return std::vector<Value>{mask_image_value(rows.unsqueeze(-1).expand({-1, -1, -1, 3}))};
               });
  add_ops_node(r, ops_schema("ImageToMask", "Convert Image to Mask", "mask",
                             {link_input("image", "IMAGE"), graph::combo_input("channel", {"red", "green", "blue", "alpha"})},
                             {"MASK"}, kMaskModule),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto im, need<ImageObject>(in, "image"));
                 ND_RETURN_IF_ERROR(check_image(im->images, "ImageToMask", "image"));
                 const std::string channel = in.get_string("channel");
                 const int64_t c = channel == "red" ? 0 : channel == "green" ? 1 : channel == "blue" ? 2 : 3;
                 if (c >= im->images.size(3))
                   return Status::invalid_argument("ImageToMask: channel '" + channel + "' is not in input 'image' (" +
                                                   std::to_string(im->images.size(3)) + " channels)");
                 return std::vector<Value>{mask_value(im->images.select(3, c))};
               });
  add_ops_node(r, ops_schema("SolidMask", "SolidMask", "mask",
                             {graph::float_input("value", 1.0, 0.0, 1.0, 0.01),
                              int_input("width", 512, 1, kMaskMaxResolution, 1),
                              int_input("height", 512, 1, kMaskMaxResolution, 1)},
                             {"MASK"}, kMaskModule),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 return std::vector<Value>{mask_value(
                     at::full({1, in.get_int("height"), in.get_int("width")}, in.get_float("value"), at::kFloat))};
               });
  add_ops_node(r, ops_schema("InvertMask", "InvertMask", "mask", {link_input("mask", "MASK")}, {"MASK"}, kMaskModule),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto m, need<MaskObject>(in, "mask"));
                 if (!m->mask.defined()) return Status::invalid_argument("InvertMask: input 'mask' is empty");
                 return std::vector<Value>{mask_value(1.0 - m->mask)};
               });
}

// One step of scipy.ndimage.grey_dilation (or, negated, grey_erosion) of [N, H, W] with a 3×3 footprint:
// the cross (tapered) or the full square. max_pool2d pads with -inf, which equals scipy's reflect mode here.
at::Tensor mask_dilate_once(const at::Tensor& m, bool tapered) {
  at::Tensor x = m.unsqueeze(1);
  if (!tapered) return at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1}).squeeze(1);
  at::Tensor v = at::max_pool2d(x, {3, 1}, {1, 1}, {1, 0});
  at::Tensor h = at::max_pool2d(x, {1, 3}, {1, 1}, {0, 1});
  return at::maximum(v, h).squeeze(1);
}

Result<std::vector<Value>> run_grow_mask(NodeContext& ctx, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(at::Tensor m, mask_input(in, "mask", "GrowMask"));
  const int64_t expand = in.get_int("expand");
  const bool tapered = in.get_bool("tapered_corners");
  at::Tensor out = m.to(at::kFloat).clone();
  for (int64_t i = 0; i < std::abs(expand); ++i) {
    if (ctx.interrupted()) return Status::cancelled("GrowMask: interrupted");
    out = expand < 0 ? -mask_dilate_once(-out, tapered) : mask_dilate_once(out, tapered);
  }
  return std::vector<Value>{mask_value(out)};
}

Result<std::vector<Value>> run_feather_mask(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(at::Tensor m, mask_input(in, "mask", "FeatherMask"));
  at::Tensor output = m.clone();
  const int64_t w = output.size(-1), h = output.size(-2);
  const int64_t left = std::min(in.get_int("left"), w), right = std::min(in.get_int("right"), w);
  const int64_t top = std::min(in.get_int("top"), h), bottom = std::min(in.get_int("bottom"), h);
  // output[:, :, -x] is column 0 for x = 0 (ComfyUI's indexing, kept).
  for (int64_t x = 0; x < left; ++x) output.select(2, x).mul_((x + 1.0) / static_cast<double>(left));
  for (int64_t x = 0; x < right; ++x) output.select(2, x == 0 ? 0 : w - x).mul_(static_cast<double>(x + 1) / right);
  for (int64_t y = 0; y < top; ++y) output.select(1, y).mul_(static_cast<double>(y + 1) / top);
  for (int64_t y = 0; y < bottom; ++y) output.select(1, y == 0 ? 0 : h - y).mul_(static_cast<double>(y + 1) / bottom);
  return std::vector<Value>{mask_value(output)};
}

Result<std::vector<Value>> run_mask_composite(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(at::Tensor destination, mask_input(in, "destination", "MaskComposite"));
  ND_ASSIGN_OR_RETURN(at::Tensor source, mask_input(in, "source", "MaskComposite"));
  if (source.size(0) != 1 && source.size(0) != destination.size(0))
    return Status::invalid_argument("MaskComposite: input 'source' has " + std::to_string(source.size(0)) +
                                    " masks and 'destination' " + std::to_string(destination.size(0)) +
                                    " (one source mask, or as many as the destination)");
  at::Tensor output = destination.clone();
  const int64_t left = in.get_int("x"), top = in.get_int("y");
  const int64_t right = std::min(left + source.size(-1), destination.size(-1));
  const int64_t bottom = std::min(top + source.size(-2), destination.size(-2));
  const int64_t visible_width = right - left, visible_height = bottom - top;
  at::Tensor source_portion = py_slice(py_slice(source, 1, std::nullopt, visible_height), 2, std::nullopt, visible_width);
  at::Tensor destination_portion = py_slice(py_slice(destination, 1, top, bottom), 2, left, right);
  const std::string op = in.get_string("operation");
  at::Tensor result;
  if (op == "multiply") {
    result = destination_portion * source_portion;
  } else if (op == "add") {
    result = destination_portion + source_portion;
  } else if (op == "subtract") {
    result = destination_portion - source_portion;
  } else {
    at::Tensor a = destination_portion.round().to(at::kBool), b = source_portion.round().to(at::kBool);
    result = (op == "and" ? at::bitwise_and(a, b) : op == "or" ? at::bitwise_or(a, b) : at::bitwise_xor(a, b)).to(at::kFloat);
  }
  py_slice(py_slice(output, 1, top, bottom), 2, left, right).copy_(result);
  return std::vector<Value>{mask_value(at::clamp(output, 0.0, 1.0))};
}

void add_mask_edits(graph::NodeRegistry& r) {
  const int64_t mr = kMaskMaxResolution;
  add_ops_node(r, ops_schema("GrowMask", "GrowMask", "mask",
                             {link_input("mask", "MASK"), int_input("expand", 0, -mr, mr, 1),
                              graph::bool_input("tapered_corners", true)},
                             {"MASK"}, kMaskModule),
               run_grow_mask);
  add_ops_node(r, ops_schema("FeatherMask", "FeatherMask", "mask",
                             {link_input("mask", "MASK"), int_input("left", 0, 0, mr, 1), int_input("top", 0, 0, mr, 1),
                              int_input("right", 0, 0, mr, 1), int_input("bottom", 0, 0, mr, 1)},
                             {"MASK"}, kMaskModule),
               run_feather_mask);
  add_ops_node(r, ops_schema("MaskComposite", "MaskComposite", "mask",
                             {link_input("destination", "MASK"), link_input("source", "MASK"), int_input("x", 0, 0, mr, 1),
                              int_input("y", 0, 0, mr, 1),
                              graph::combo_input("operation", {"multiply", "add", "subtract", "and", "or", "xor"})},
                             {"MASK"}, kMaskModule),
               run_mask_composite);
}

// LatentCompositeMasked / ImageCompositeMasked: destination, source, x, y (step 8 / 1), resize_source, mask?
graph::NodeSchema composite_masked_schema(const std::string& class_type, const std::string& type, int64_t step,
                                          const std::string& category) {
  graph::NodeSchema s = ops_schema(class_type, class_type, category,
                                   {link_input("destination", type), link_input("source", type),
                                    int_input("x", 0, 0, kMaskMaxResolution, step),
                                    int_input("y", 0, 0, kMaskMaxResolution, step), graph::bool_input("resize_source", false)},
                                   {type}, kMaskModule);
  s.optional = {link_input("mask", "MASK")};
  return s;
}

Result<std::optional<at::Tensor>> optional_mask(const NodeInputs& in, const std::string& class_type) {
  if (!in.has("mask")) return std::optional<at::Tensor>();
  ND_ASSIGN_OR_RETURN(at::Tensor m, mask_input(in, "mask", class_type));
  return std::optional<at::Tensor>(m);
}

void add_composite_masked(graph::NodeRegistry& r) {
  add_ops_node(r, composite_masked_schema("LatentCompositeMasked", "LATENT", 8, "latent"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto d, need<LatentObject>(in, "destination"));
                 ND_ASSIGN_OR_RETURN(auto s, need<LatentObject>(in, "source"));
                 ND_RETURN_IF_ERROR(check_latent(d->samples, "LatentCompositeMasked", "destination"));
                 ND_RETURN_IF_ERROR(check_latent(s->samples, "LatentCompositeMasked", "source"));
                 ND_ASSIGN_OR_RETURN(auto mask, optional_mask(in, "LatentCompositeMasked"));
                 auto out = std::make_shared<LatentObject>(*d);
                 ND_ASSIGN_OR_RETURN(out->samples, composite_masked(d->samples, s->samples, in.get_int("x"), in.get_int("y"),
                                                                    mask, 8, in.get_bool("resize_source")));
                 return std::vector<Value>{object(out)};
               });
  add_ops_node(r, composite_masked_schema("ImageCompositeMasked", "IMAGE", 1, "image"),
               [](NodeContext&, const NodeInputs& in) -> Result<std::vector<Value>> {
                 ND_ASSIGN_OR_RETURN(auto d, need<ImageObject>(in, "destination"));
                 ND_ASSIGN_OR_RETURN(auto s, need<ImageObject>(in, "source"));
                 ND_RETURN_IF_ERROR(check_image(d->images, "ImageCompositeMasked", "destination"));
                 ND_RETURN_IF_ERROR(check_image(s->images, "ImageCompositeMasked", "source"));
                 ND_ASSIGN_OR_RETURN(auto mask, optional_mask(in, "ImageCompositeMasked"));
                 ND_ASSIGN_OR_RETURN(at::Tensor out, composite_masked(d->images.movedim(-1, 1), s->images.movedim(-1, 1),
                                                                      in.get_int("x"), in.get_int("y"), mask, 1,
                                                                      in.get_bool("resize_source")));
                 return std::vector<Value>{mask_image_value(out.movedim(1, -1))};
               });
}

}  // namespace

void register_mask_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env) {
  add_load_image_mask(registry, env);
  add_composite_masked(registry);
  add_mask_conversions(registry);
  add_mask_edits(registry);
}

}  // namespace netdist::nodes
