// ControlNet loading (comfy/controlnet.py load_controlnet_state_dict, ldm layouts) and the per-call
// residuals (ControlNet.get_control, control_merge, broadcast_image_to, percent_to_sigma).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <torch/torch.h>

#include "core/log.h"
#include "engine/control/controlnet.h"
#include "engine/model.h"
#include "engine/runtime/tensor_io.h"

namespace netdist::control {

namespace {

std::string controlnet_shape_text(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t controlnet_count_blocks(const runtime::WeightMap& w, const std::string& head) {
  int64_t n = 0;
  for (;; ++n) {
    const std::string p = head + std::to_string(n) + ".";
    bool found = false;
    for (const auto& [k, v] : w) {
      if (k.compare(0, p.size(), p) == 0) {
        found = true;
        break;
      }
    }
    if (!found) return n;
  }
}

// Depth, context width and projection kind of the SpatialTransformer at `block` + "1." (depth 0: none).
struct ControlnetTransformer {
  int64_t depth = 0, context_dim = 0;
  bool linear = false;
};

ControlnetTransformer controlnet_transformer(const runtime::WeightMap& w, const std::string& block) {
  ControlnetTransformer t;
  auto k = w.find(block + "1.transformer_blocks.0.attn2.to_k.weight");
  auto p = w.find(block + "1.proj_in.weight");
  if (k == w.end() || p == w.end()) return t;
  t.depth = controlnet_count_blocks(w, block + "1.transformer_blocks.");
  t.context_dim = k->second.size(1);
  t.linear = p->second.dim() == 2;
  return t;
}

// comfy.utils.common_upscale(hint, width, height, "nearest-exact", "center").
at::Tensor controlnet_upscale(const at::Tensor& s, int64_t width, int64_t height) {
  const double old_w = static_cast<double>(s.size(3)), old_h = static_cast<double>(s.size(2));
  const double old_aspect = old_w / old_h,
               new_aspect = static_cast<double>(width) / static_cast<double>(height);
  int64_t x = 0, y = 0;
  if (old_aspect > new_aspect) {
    x = static_cast<int64_t>(std::nearbyint((old_w - old_w * (new_aspect / old_aspect)) / 2));
  } else if (old_aspect < new_aspect) {
    y = static_cast<int64_t>(std::nearbyint((old_h - old_h * (old_aspect / new_aspect)) / 2));
  }
  at::Tensor c = s.narrow(2, y, s.size(2) - 2 * y).narrow(3, x, s.size(3) - 2 * x);
  return at::_upsample_nearest_exact2d(c, {height, width});
}

}  // namespace

Result<unet::UNetConfig> detect_controlnet_config(const runtime::WeightMap& w, const std::string& prefix) {
  const runtime::WeightMap keys = runtime::strip_prefix(w, prefix);
  auto conv_in = keys.find("input_blocks.0.0.weight");
  auto hint = keys.find("input_hint_block.0.weight");
  if (conv_in == keys.end() || hint == keys.end() || conv_in->second.dim() != 4) {
    return Status::invalid_argument("no ControlNet input blocks / hint block under '" + prefix + "'");
  }
  unet::UNetConfig c;
  c.model_channels = conv_in->second.size(0);
  c.in_channels = conv_in->second.size(1);
  if (auto adm = keys.find("label_emb.0.0.weight"); adm != keys.end())
    c.adm_in_channels = adm->second.size(1);
  c.channel_mult.clear();
  int64_t res = 0, mult = 0, context = 0;
  bool linear = false;
  const int64_t count = controlnet_count_blocks(keys, "input_blocks.");
  for (int64_t i = 1; i < count; ++i) {
    const std::string block = "input_blocks." + std::to_string(i) + ".";
    if (keys.count(block + "0.op.weight")) {
      c.num_res_blocks.push_back(res);
      c.channel_mult.push_back(mult);
      res = 0;
      continue;
    }
    auto out = keys.find(block + "0.out_layers.3.weight");
    if (out == keys.end())
      return Status::invalid_argument("ControlNet input block " + block + " is not a ResBlock");
    ++res;
    mult = out->second.size(0) / c.model_channels;
    const ControlnetTransformer t = controlnet_transformer(keys, block);
    c.transformer_depth.push_back(t.depth);
    if (t.depth > 0 && context == 0) {
      context = t.context_dim;
      linear = t.linear;
    }
  }
  c.num_res_blocks.push_back(res);
  c.channel_mult.push_back(mult);
  const ControlnetTransformer mid = controlnet_transformer(keys, "middle_block.");
  c.transformer_depth_middle = keys.count("middle_block.2.in_layers.0.weight") ? mid.depth : -1;
  if (context == 0) {
    context = mid.context_dim;
    linear = mid.linear;
  }
  c.context_dim = context;
  c.use_linear_in_transformer = linear;
  const int64_t res_total = static_cast<int64_t>(c.transformer_depth.size());
  c.transformer_depth_output.assign(
      static_cast<size_t>(res_total + static_cast<int64_t>(c.num_res_blocks.size())), 0);
  const bool sd1_shape = c.context_dim == 768 && !c.use_linear_in_transformer && c.adm_in_channels == 0;
  c.num_heads = sd1_shape ? 8 : -1;
  c.num_head_channels = sd1_shape ? -1 : 64;
  ND_RETURN_IF_ERROR(c.validate().with_context("ControlNet weights under '" + prefix + "'"));
  return c;
}

double percent_to_sigma(const sampling::ModelSampling& ms, double percent) {
  if (ms.schedule() != sampling::ScheduleKind::kDiscrete) {
    if (percent <= 0.0) return 1.0;
    if (percent >= 1.0) return 0.0;
    const double t = 1.0 - percent, a = ms.shift();
    if (ms.schedule() == sampling::ScheduleKind::kDiscreteFlow) return a * t / (1 + (a - 1) * t);
    return ms.sigma(at::scalar_tensor(t, at::kFloat)).item<double>();
  }
  if (percent <= 0.0) return 999999999.9;
  if (percent >= 1.0) return 0.0;
  const at::Tensor t = at::scalar_tensor((1.0 - percent) * 999.0, at::kFloat);
  return ms.sigma(t).item<double>();
}

Status check_fits(const ControlNet& net, const unet::UNetConfig& u, const std::string& model_path) {
  const unet::UNetConfig& c = net.model_->config();
  std::vector<int64_t> skips = {u.model_channels};
  int64_t ch = u.model_channels;
  for (size_t level = 0; level < u.channel_mult.size(); ++level) {
    for (int64_t r = 0; r < u.num_res_blocks[level]; ++r)
      skips.push_back(ch = u.channel_mult[level] * u.model_channels);
    if (level + 1 != u.channel_mult.size()) skips.push_back(ch);
  }
  if (c.context_dim != u.context_dim || c.adm_in_channels != u.adm_in_channels ||
      skips != net.model_->skip_channels()) {
    return Status::invalid_argument(
        "ControlNet '" + net.path_ + "' (context " + std::to_string(c.context_dim) + ", adm " +
        std::to_string(c.adm_in_channels) + ", model_channels " + std::to_string(c.model_channels) +
        ") is for another model family than '" + model_path + "' (context " + std::to_string(u.context_dim) +
        ", adm " + std::to_string(u.adm_in_channels) + ", model_channels " +
        std::to_string(u.model_channels) + ")");
  }
  return Status::ok();
}

at::Tensor hint_rows(const ControlApply& apply, int64_t row_begin, int64_t images, int64_t blocks, int64_t h,
                     int64_t w, const at::TensorOptions& options) {
  const int64_t m = apply.hint.size(0);
  at::Tensor index = (at::arange(row_begin, row_begin + images, at::kLong) % m);
  at::Tensor rows = apply.hint.index_select(0, index).to(at::kFloat);
  rows = controlnet_upscale(rows, w * 8, h * 8).to(options);
  return blocks > 1 ? rows.repeat({blocks, 1, 1, 1}) : rows;
}

std::optional<unet::UNetControl> chain_control(const ControlApply& apply, const sampling::ModelSampling& ms,
                                               const at::Tensor& x, const at::Tensor& t,
                                               const at::Tensor& context, const at::Tensor& y, double sigma,
                                               int64_t row_begin, int64_t images) {
  std::optional<unet::UNetControl> prev;
  if (apply.previous) prev = chain_control(*apply.previous, ms, x, t, context, y, sigma, row_begin, images);
  // ComfyUI compares the float32 sigma with the range: t[0] > range[0] or t[0] < range[1] → inactive.
  const float s = static_cast<float>(sigma);
  if (s > static_cast<float>(percent_to_sigma(ms, apply.start_percent)) ||
      s < static_cast<float>(percent_to_sigma(ms, apply.end_percent))) {
    return prev;
  }
  ControlNet& net = *apply.net;
  const int64_t blocks = x.size(0) / images;
  at::Tensor hint = hint_rows(apply, row_begin, images, blocks, x.size(2), x.size(3),
                              at::TensorOptions().dtype(net.dtype_).device(x.device()));
  unet::UNetControl out = net.model_->forward(
      x.to(net.dtype_), hint, t, context.to(net.dtype_),
      y.defined() && net.model_->config().adm_in_channels > 0 ? y.to(net.dtype_) : at::Tensor());
  for (auto* list : {&out.middle, &out.output}) {
    for (at::Tensor& o : *list) {
      if (net.global_average_pooling_) o = o.mean({2, 3}, true).repeat({1, 1, o.size(2), o.size(3)});
      o = o * apply.strength;
    }
  }
  if (!prev) return out;
  auto merge = [](std::vector<at::Tensor>& o, const std::vector<at::Tensor>& p) {
    for (size_t i = 0; i < p.size(); ++i) {
      if (i >= o.size()) {
        o.push_back(p[i]);
      } else if (p[i].defined()) {
        o[i] = o[i].defined() ? p[i] + o[i] : p[i];
      }
    }
  };
  merge(out.input, prev->input);
  merge(out.middle, prev->middle);
  merge(out.output, prev->output);
  return out;
}

Status check_chain(const ControlApply& apply, const unet::UNetConfig& config, const at::Device& device,
                   const std::string& model_path) {
  for (const ControlApply* a = &apply; a != nullptr; a = a->previous.get()) {
    if (!a->net) return Status::invalid_argument("control_net holds no ControlNet");
    const ControlNet& net = *a->net;
    ND_RETURN_IF_ERROR(check_fits(net, config, model_path));
    if (net.device_ != device) {
      return Status::invalid_argument("ControlNet '" + net.path_ + "' is on " + net.device_.str() +
                                      ", the model '" + model_path + "' on " + device.str());
    }
    const at::Tensor& h = a->hint;
    if (!h.defined() || h.dim() != 4 || h.size(1) != net.model_->hint_channels() || h.size(0) < 1 ||
        h.size(2) < 1 || h.size(3) < 1 || !at::isFloatingType(h.scalar_type())) {
      return Status::invalid_argument(
          "image (ControlNet hint) is " +
          (h.defined() ? controlnet_shape_text(h.sizes()) : std::string("empty")) +
          " channels-first; ControlNet '" + net.path_ + "' takes [N, " +
          std::to_string(net.model_->hint_channels()) + ", H, W] float images (an IMAGE [N, H, W, " +
          std::to_string(net.model_->hint_channels()) + "])");
    }
  }
  return Status::ok();
}

bool any_control(const std::vector<cond::CondRow>& positive, const std::vector<cond::CondRow>& negative) {
  for (const auto* list : {&positive, &negative}) {
    for (const cond::CondRow& r : *list) {
      if (r.control) return true;
    }
  }
  return false;
}

void append_call_control(const ControlApply& apply, const sampling::ModelSampling& ms, const at::Tensor& x,
                         std::vector<at::Tensor>& inputs, const at::Tensor& sigma, int64_t row_begin,
                         int64_t images) {
  const double s = sigma.reshape({-1})[0].item<double>();
  const at::Tensor y = inputs.size() > 3 ? inputs[3] : at::Tensor();
  std::optional<unet::UNetControl> c =
      chain_control(apply, ms, x, inputs[1], inputs[2], y, s, row_begin, images);
  if (!c) return;
  inputs.push_back(at::scalar_tensor(static_cast<int64_t>(c->middle.size()), at::kLong));
  for (const at::Tensor& t : c->middle) inputs.push_back(t);
  for (const at::Tensor& t : c->output) inputs.push_back(t);
}

std::optional<unet::UNetControl> call_control_from(const std::vector<at::Tensor>& inputs, size_t base) {
  if (inputs.size() <= base) return std::nullopt;
  unet::UNetControl c;
  const size_t middle = static_cast<size_t>(inputs[base].item<int64_t>());
  c.middle.assign(inputs.begin() + static_cast<std::ptrdiff_t>(base + 1),
                  inputs.begin() + static_cast<std::ptrdiff_t>(base + 1 + middle));
  c.output.assign(inputs.begin() + static_cast<std::ptrdiff_t>(base + 1 + middle), inputs.end());
  return c;
}

}  // namespace netdist::control

namespace netdist {

namespace {

// The ldm prefix of a ControlNet state dict, as load_controlnet_state_dict tells them apart.
Result<std::string> controlnet_prefix(const runtime::WeightMap& w, const std::string& path) {
  if (w.count("control_model.zero_convs.0.0.weight")) return std::string("control_model.");
  if (w.count("zero_convs.0.0.weight")) return std::string("");
  if (w.count("lora_controlnet"))
    return Status::unsupported("'" + path + "' is a control-lora file; not supported yet");
  if (w.count("controlnet_cond_embedding.conv_in.weight"))
    return Status::unsupported("'" + path + "' is a diffusers-layout ControlNet; not supported yet");
  for (const char* k : {"body.0.block1.weight", "adapter.body.0.resnets.0.block1.weight", "conv_in.weight",
                        "body.0.in_conv.weight"}) {
    if (w.count(k)) return Status::unsupported("'" + path + "' is a T2I adapter; not supported yet");
  }
  for (const char* k :
       {"controlnet_blocks.0.weight", "controlnet_blocks.0.linear.weight", "after_proj_list.18.bias"}) {
    if (w.count(k))
      return Status::unsupported("'" + path + "' is an SD3/Flux/HunyuanDiT ControlNet; not supported");
  }
  return Status::invalid_argument("'" + path + "' does not contain ControlNet or T2I adapter data");
}

}  // namespace

Result<std::shared_ptr<ControlNet>> load_controlnet(const std::string& path, const EngineOptions& options,
                                                    const Model* diff_base) {
  ND_ASSIGN_OR_RETURN(runtime::WeightMap w, runtime::load_safetensors(path));
  ND_ASSIGN_OR_RETURN(std::string prefix, controlnet_prefix(w, path));
  auto detected = control::detect_controlnet_config(w, prefix);
  if (!detected.is_ok()) return detected.status().with_context("ControlNet '" + path + "'");
  const unet::UNetConfig config = *detected;
  const int64_t hint_channels = w.at(prefix + "input_hint_block.0.weight").size(1);
  ND_ASSIGN_OR_RETURN(at::Device device, parse_device(options.device));
  auto net = std::make_shared<ControlNet>();
  net->path_ = path;
  net->device_ = device;
  const std::string stem = std::filesystem::path(path).stem().string();
  auto ends_with = [&](const std::string& e) {
    return stem.size() >= e.size() && stem.compare(stem.size() - e.size(), e.size(), e) == 0;
  };
  net->global_average_pooling_ = ends_with("_shuffle") || ends_with("_shuffle_fp16");
  const Precision p =
      options.precision.value_or(device.is_cuda() ? Precision::kFloat16 : Precision::kFloat32);
  net->dtype_ = p == Precision::kFloat16 ? at::kHalf : p == Precision::kBFloat16 ? at::kBFloat16 : at::kFloat;
  const bool difference = w.count("difference") > 0;
  w.erase("difference");
  if (difference && !prefix.empty()) {
    if (diff_base == nullptr || diff_base->unet_.is_empty()) {
      log::warn("diff ControlNet '{}' loaded without a model; it will very likely not work", path);
    } else {
      const runtime::WeightMap base = runtime::module_weights(*diff_base->unet_, "");
      for (auto& [k, v] : w) {
        if (k.compare(0, prefix.size(), prefix) != 0) continue;
        auto b = base.find(k.substr(prefix.size()));
        if (b != base.end()) v = v + b->second.to(v.device(), v.scalar_type());
      }
    }
  }
  Status s = guard_torch("loading ControlNet " + path, [&] {
    net->model_ = control::ControlNetModel(config, hint_channels,
                                           at::TensorOptions().dtype(net->dtype_).device(device));
    runtime::LoadOptions lo;
    lo.ignore_unexpected = {""};  // ComfyUI loads with strict=False: extra tensors are ignored
    ND_RETURN_IF_ERROR(runtime::load_module_weights(*net->model_, w, prefix, path, lo));
    net->model_->eval();
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return net;
}

ControlNetInfo controlnet_info(const ControlNet& net) {
  const unet::UNetConfig& c = net.model_->config();
  return {net.path_, c.context_dim, c.adm_in_channels, c.model_channels, net.model_->hint_channels()};
}

}  // namespace netdist
