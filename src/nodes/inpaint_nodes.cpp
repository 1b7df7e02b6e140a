#include "nodes/inpaint_nodes.h"

#include "engine/inpaint.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {

using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

std::string inpaint_node_shape(const at::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

// Runs torch ops of a node, a libtorch failure becoming invalid_argument naming the node.
template <typename Fn>
auto inpaint_guard(const std::string& class_type, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return Status::invalid_argument(class_type + ": " + e.what_without_backtrace());
  }
}

Result<std::vector<Value>> set_latent_noise_mask(NodeContext&, const NodeInputs& in) {
  ND_ASSIGN_OR_RETURN(auto samples, need<LatentObject>(in, "samples"));
  ND_ASSIGN_OR_RETURN(auto mask, need<MaskObject>(in, "mask"));
  ND_RETURN_IF_ERROR(inpaint::check_mask(mask->mask, "mask").with_context("SetLatentNoiseMask"));
  auto out = std::make_shared<LatentObject>(*samples);
  out->noise_mask = mask->mask.reshape({-1, 1, mask->mask.size(-2), mask->mask.size(-1)});
  return std::vector<Value>{object(out)};
}

Result<std::vector<Value>> vae_encode_for_inpaint(NodeContext&, const NodeInputs& in) {
  const std::string cls = "VAEEncodeForInpaint";
  ND_ASSIGN_OR_RETURN(auto px, need<ImageObject>(in, "pixels"));
  ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
  ND_ASSIGN_OR_RETURN(auto mask, need<MaskObject>(in, "mask"));
  ND_ASSIGN_OR_RETURN(InpaintPixels p, inpaint_pixels(px->images, mask->mask, cls));
  auto out = std::make_shared<LatentObject>();
  ND_ASSIGN_OR_RETURN(out->samples, in_node(encode(*vae->model, p.pixels), cls));
  ND_ASSIGN_OR_RETURN(out->noise_mask, inpaint_guard(cls, [&]() -> Result<at::Tensor> {
                        return grow_mask(p.mask, in.get_int("grow_mask_by"));
                      }));
  return std::vector<Value>{object(out)};
}

std::shared_ptr<ConditioningObject> inpaint_with_concat(const ConditioningObject& c, const at::Tensor& latent,
                                                const at::Tensor& mask) {
  auto out = std::make_shared<ConditioningObject>(c);
  for (CondEntry& e : out->conditioning) {
    e.concat_latent_image = latent;
    e.concat_mask = mask;
  }
  return out;
}

Result<std::vector<Value>> inpaint_model_conditioning(NodeContext&, const NodeInputs& in) {
  const std::string cls = "InpaintModelConditioning";
  ND_ASSIGN_OR_RETURN(auto positive, need<ConditioningObject>(in, "positive"));
  ND_ASSIGN_OR_RETURN(auto negative, need<ConditioningObject>(in, "negative"));
  ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
  ND_ASSIGN_OR_RETURN(auto px, need<ImageObject>(in, "pixels"));
  ND_ASSIGN_OR_RETURN(auto mask, need<MaskObject>(in, "mask"));
  ND_ASSIGN_OR_RETURN(InpaintPixels p, inpaint_pixels(px->images, mask->mask, cls));
  ND_ASSIGN_OR_RETURN(at::Tensor concat_latent, in_node(encode(*vae->model, p.pixels), cls));
  auto latent = std::make_shared<LatentObject>();
  ND_ASSIGN_OR_RETURN(latent->samples, in_node(encode(*vae->model, px->images), cls));
  if (in.get_bool("noise_mask")) latent->noise_mask = p.mask;
  return std::vector<Value>{object(inpaint_with_concat(*positive, concat_latent, p.mask)),
                            object(inpaint_with_concat(*negative, concat_latent, p.mask)), object(latent)};
}

}  // namespace

Result<InpaintPixels> inpaint_pixels(const at::Tensor& pixels, const at::Tensor& mask, const std::string& class_type) {
  ND_RETURN_IF_ERROR(inpaint::check_mask(mask, "mask").with_context(class_type));
  if (!pixels.defined() || pixels.dim() != 4 || pixels.size(0) < 1 || pixels.size(3) < 3) {
    return Status::invalid_argument(class_type + ": pixels is " +
                                    (pixels.defined() ? inpaint_node_shape(pixels) : std::string("empty")) +
                                    ", not [N, H, W, 3]");
  }
  const int64_t h = pixels.size(1) / 8 * 8, w = pixels.size(2) / 8 * 8;
  if (h == 0 || w == 0) {
    return Status::invalid_argument(class_type + ": pixels " + inpaint_node_shape(pixels) +
                                    " is smaller than one latent cell (8×8 pixels)");
  }
  const int64_t rows = mask.numel() / (mask.size(-2) * mask.size(-1));
  if (rows != 1 && rows != pixels.size(0)) {
    return Status::invalid_argument(class_type + ": mask has " + std::to_string(rows) + " rows for " +
                                    std::to_string(pixels.size(0)) + " images (pixels " +
                                    inpaint_node_shape(pixels) + "); give one mask or one per image");
  }
  return inpaint_guard(class_type, [&]() -> Result<InpaintPixels> {
    at::Tensor m = at::upsample_bilinear2d(mask.to(at::kFloat).reshape({-1, 1, mask.size(-2), mask.size(-1)}),
                                           {pixels.size(1), pixels.size(2)}, false);
    at::Tensor p = pixels.to(at::kFloat).clone();
    if (pixels.size(1) != h || pixels.size(2) != w) {
      const int64_t y0 = (pixels.size(1) % 8) / 2, x0 = (pixels.size(2) % 8) / 2;
      p = p.slice(1, y0, y0 + h).slice(2, x0, x0 + w);
      m = m.slice(2, y0, y0 + h).slice(3, x0, x0 + w);
    }
    const at::Tensor keep = (1.0 - m.round()).squeeze(1);
    for (int64_t c = 0; c < 3; ++c) {
      at::Tensor ch = p.select(3, c);
      ch.sub_(0.5);
      ch.mul_(keep);
      ch.add_(0.5);
    }
    return InpaintPixels{p, m};
  });
}

at::Tensor grow_mask(const at::Tensor& mask, int64_t grow) {
  at::Tensor grown = mask;
  if (grow > 0) {
    const at::Tensor kernel = at::ones({1, 1, grow, grow}, mask.options());
    const int64_t padding = (grow - 1 + 1) / 2;  // ceil((grow − 1) / 2)
    grown = at::clamp(at::conv2d(mask.round(), kernel, {}, 1, padding), 0, 1);
  }
  return grown.slice(2, 0, mask.size(2)).slice(3, 0, mask.size(3)).round();
}

void register_inpaint_nodes(graph::NodeRegistry& r) {
  using graph::link_input;
  graph::NodeSchema set = make_schema("SetLatentNoiseMask", "Set Latent Noise Mask", "latent/inpaint",
                                      {link_input("samples", "LATENT"), link_input("mask", "MASK")}, {"LATENT"});
  add_fn_node(r, set, set_latent_noise_mask);
  graph::NodeSchema enc = make_schema("VAEEncodeForInpaint", "VAE Encode (for Inpainting)", "latent/inpaint",
                                      {link_input("pixels", "IMAGE"), link_input("vae", "VAE"),
                                       link_input("mask", "MASK"), graph::int_input("grow_mask_by", 6, 0, 64, 1)},
                                      {"LATENT"});
  add_fn_node(r, enc, vae_encode_for_inpaint);
  graph::InputSpec noise_mask = graph::bool_input("noise_mask", true);
  noise_mask.tooltip =
      "Add a noise mask to the latent so sampling will only happen within the mask. Might improve results or "
      "completely break things depending on the model.";
  graph::NodeSchema cond = make_schema(
      "InpaintModelConditioning", "InpaintModelConditioning", "conditioning/inpaint",
      {link_input("positive", "CONDITIONING"), link_input("negative", "CONDITIONING"), link_input("vae", "VAE"),
       link_input("pixels", "IMAGE"), link_input("mask", "MASK"), noise_mask},
      {"CONDITIONING", "CONDITIONING", "LATENT"});
  cond.output_names = {"positive", "negative", "latent"};
  add_fn_node(r, cond, inpaint_model_conditioning);
}

}  // namespace netdist::nodes
