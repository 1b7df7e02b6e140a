// encode_prompt, sample, decode and encode of include/netdist/engine.h, following ComfyUI's
// CLIPTextEncode, KSampler (comfy/samplers.py: CFGGuider, calc_cond_batch, KSAMPLER.sample) and VAE.
#include <torch/torch.h>

#include "core/log.h"
#include "engine/cfg_split.h"
#include "engine/row_group.h"
#include "engine/cond_batch.h"
#include "engine/cond_masks.h"
#include "engine/control/controlnet.h"
#include "engine/inpaint.h"
#include "engine/micro_batch.h"
#include "engine/model.h"
#include "engine/model_patches.h"
#include "engine/runtime/cuda_graphs.h"
#include "engine/runtime/device_memory.h"
#include "engine/sampling/noise.h"
#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"
#include "engine/text/text_encoder.h"
#include "engine/text/tokenize_prompt.h"
#include "engine/tiled_diffusion.h"
#include "engine/unet/sdxl_adm.h"

namespace netdist {

namespace {

// The x0 prediction of the UNet for one batch of conditioning rows (ComfyUI BaseModel._apply_model), with
// the UNet called once per micro-batch (micro_batch.h). The batch is k blocks (one per conditioning entry)
// of the same images; `groups` are the local image bounds of the micro-batches, and group g's call takes its
// images from every block. A row's result then depends only on its micro-batch, never on how the batch was
// split, so a split batch equals the unsplit one bit for bit (engine.h). The element-wise pre- and
// post-processing runs on the whole batch (element-wise kernels give every element the same value at any
// batch size); the calls go through `graphs` (runtime/cuda_graphs.h): CUDA graphs replayed on parallel
// streams. A batch that is not such blocks (area conditioning can make one) is a single call.
// `control`: the call's ControlNet chain (control/controlnet.h), its residuals computed per micro-batch call
// for the global rows row_begin + the group's rows, and passed to the UNet after its inputs.
at::Tensor apply_model(Model& model, runtime::GraphedCalls& graphs, const at::Tensor& x,
                       const at::Tensor& sigma, const at::Tensor& context, const at::Tensor& y,
                       const std::vector<int64_t>& groups, const ControlApply* control = nullptr,
                       int64_t row_begin = 0) {
  const sampling::ModelSampling& ms = *model.sampling_;
  // An inpainting UNet's x carries its concat input after the latent's channels (cond_batch.h): scaled
  // like ComfyUI's c_concat, i.e. not at all.
  const int64_t latent_c = model.unet_->config().out_channels;
  const at::Tensor xl = x.size(1) > latent_c ? x.slice(1, 0, latent_c) : x;
  at::Tensor xc = ms.calculate_input(sigma, xl);
  const at::Tensor x_control = control ? xc.to(model.unet_dtype_) : at::Tensor();
  if (x.size(1) > latent_c) xc = at::cat({xc, x.slice(1, latent_c)}, 1);
  xc = xc.to(model.unet_dtype_);
  const at::Tensor t = ms.timestep(sigma).to(at::kFloat);
  const at::Tensor c = context.to(model.unet_dtype_);
  const at::Tensor a = y.defined() ? y.to(model.unet_dtype_) : y;
  const int64_t n = x.size(0), images = groups.back();
  const bool blocks = groups.size() > 2 && images > 0 && n % images == 0;
  const int64_t k = blocks ? n / images : 1;
  at::Tensor out = at::empty({n, latent_c, x.size(2), x.size(3)}, xc.options());
  std::vector<std::vector<at::Tensor>> inputs;
  std::vector<at::Tensor> outs;
  const size_t calls = blocks ? groups.size() - 1 : 1;
  for (size_t g = 0; g < calls; ++g) {
    // Rows of group g from every block, block-major: [k·(e−s), ...]; its output lands in out's [k, e−s, ...]
    // view.
    const int64_t s = blocks ? groups[g] : 0, e = blocks ? groups[g + 1] : n;
    auto rows = [&](const at::Tensor& v) {
      if (!blocks) return v;
      return v.unflatten(0, {k, images}).slice(1, s, e).flatten(0, 1);
    };
    inputs.push_back({rows(xc), rows(t), rows(c)});
    if (a.defined()) inputs.back().push_back(rows(a));
    if (control)
      control::append_call_control(*control, ms, rows(x_control), inputs.back(), sigma, row_begin + s,
                                   blocks ? e - s : images);
    outs.push_back(out.unflatten(0, {k, blocks ? images : n}).slice(1, s, e));
  }
  graphs.run_each(inputs, outs, [&](const std::vector<at::Tensor>& v) {
    const std::optional<unet::UNetControl> uc = control::call_control_from(v, a.defined() ? 4 : 3);
    at::Tensor o = model.unet_->forward(v[0], v[1], v[2], a.defined() ? v[3] : at::Tensor(), uc ? &*uc : nullptr);
    return o.unflatten(0, {k, o.size(0) / k});
  });
  return ms.calculate_denoised(sigma, out.to(at::kFloat), xl);
}

std::string shape_string(const at::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

// A LATENT input (`input`: the node input's name, e.g. "samples") that `takes` ("the VAE of 'x' decodes")
// `channels`-channel latents of: [N, C, h, w] with N, h, w >= 1, C = channels, a floating-point dtype (NaN
// values are fine). Checked before any tensor op, so a latent file of another shape is a named error instead
// of a libtorch failure deep in a module.
Status check_latent(const at::Tensor& latent, const std::string& input, int64_t channels,
                    const std::string& takes) {
  const std::string wanted = "; " + takes + " " + std::to_string(channels) + "-channel latents";
  if (!latent.defined()) return Status::invalid_argument(input + " holds no tensor");
  if (latent.dim() != 4) {
    return Status::invalid_argument(input + " is " + shape_string(latent) + ", not [N, C, h, w]" + wanted);
  }
  if (latent.size(1) != channels) {
    return Status::invalid_argument(input + " has " + std::to_string(latent.size(1)) + " channels (" +
                                    shape_string(latent) + ")" + wanted);
  }
  if (latent.size(0) < 1 || latent.size(2) < 1 || latent.size(3) < 1) {
    return Status::invalid_argument(input + " " + shape_string(latent) + " has no rows or no pixels");
  }
  if (!at::isFloatingType(latent.scalar_type())) {
    return Status::invalid_argument(input + " holds " + std::string(c10::toString(latent.scalar_type())) +
                                    " values, not floating point");
  }
  return Status::ok();
}

std::string model_name(const Model& model) { return "'" + model.path_ + "'"; }

// One conditioning entry against the UNet it conditions: context [1, L, context_dim] and, for a UNet with an
// ADM input, a pooled output [1, P] that makes the family's y vector (SDXL: P + 6 · 256 = adm_in_channels).
Status check_cond_entry(const Model& model, const CondEntry& e, const std::string& input, size_t index) {
  const unet::UNetConfig& c = model.unet_->config();
  const std::string which = input + " (conditioning entry " + std::to_string(index) + ")";
  if (!e.context.defined() || e.context.dim() != 3 || e.context.size(0) < 1 || e.context.size(1) < 1) {
    return Status::invalid_argument(which + " is " +
                                    (e.context.defined() ? shape_string(e.context) : "empty") +
                                    ", not [1, tokens, width]");
  }
  if (e.context.size(2) != c.context_dim) {
    return Status::invalid_argument(
        which + " is " + std::to_string(e.context.size(2)) + " wide; the UNet of " + model_name(model) +
        " takes " + std::to_string(c.context_dim) +
        "-wide text conditioning (was it encoded with another checkpoint's CLIP?)");
  }
  if (model.info_.adm_channels <= 0) return Status::ok();
  if (!e.pooled.defined()) return Status::invalid_argument(which + " has no pooled output, which SDXL needs");
  const int64_t pooled = model.info_.adm_channels - (model.info_.family == models::ModelFamily::kSdxlRefiner
                                                         ? unet::kSdxlRefinerAdmSizeChannels
                                                         : unet::kSdxlAdmSizeChannels);
  if (e.pooled.dim() != 2 || e.pooled.size(0) < 1 || e.pooled.size(1) != pooled) {
    return Status::invalid_argument(
        which + "'s pooled output is " + shape_string(e.pooled) + "; the UNet of " + model_name(model) +
        " builds its " + std::to_string(model.info_.adm_channels) + "-wide ADM vector from a [1, " +
        std::to_string(pooled) + "] pooled output");
  }
  return Status::ok();
}

// One conditioning list → its rows on the device, with SDXL's adm vector built for this latent size
// (ComfyUI keeps the full latent size for adm even for area entries).
Result<std::vector<cond::CondRow>> prepare_cond(Model& model, const Conditioning& conditioning,
                                                const std::string& input, const SampleRequest& req) {
  const int64_t height = req.latent.size(2) * 8, width = req.latent.size(3) * 8;
  const int64_t n = req.latent.size(0);
  const cond::CondShape shape{n, req.row_begin, req.row_end < 0 ? n : req.row_end, req.latent.size(2),
                              req.latent.size(3), model.device_};
  std::vector<cond::CondRow> rows;
  for (const CondEntry& e : conditioning) {
    ND_RETURN_IF_ERROR(check_cond_entry(model, e, input, rows.size()));
    cond::CondRow r;
    r.context = e.context.to(model.device_, at::kFloat);
    r.strength = e.strength;
    if (e.control) ND_RETURN_IF_ERROR(control::check_chain(*e.control, model.unet_->config(), model.device_, model.path_));
    r.control = e.control;
    r.control_apply_to_uncond = e.control_apply_to_uncond;
    ND_RETURN_IF_ERROR(cond::resolve_entry(e, shape, *model.sampling_, input + " entry " + std::to_string(rows.size()), r));
    if (model.info_.adm_channels > 0) {
      const AdmSize a = e.adm_size.value_or(AdmSize{width, height, 0, 0, width, height, std::nullopt});
      const at::Tensor pooled = e.pooled.to(at::kFloat).cpu();
      r.y = model.info_.family == models::ModelFamily::kSdxlRefiner
                ? unet::sdxl_refiner_adm(pooled, a.width, a.height, a.crop_w, a.crop_h,
                                         a.aesthetic_score.value_or(input == "negative" ? 2.5 : 6.0))
                : unet::sdxl_adm(pooled, a.width, a.height, a.crop_w, a.crop_h, a.target_width, a.target_height);
      r.y = r.y.to(model.device_);
    }
    rows.push_back(std::move(r));
  }
  if (rows.empty()) return Status::invalid_argument(input + " is an empty conditioning");
  return rows;
}

// Activation memory of one UNet call of `rows` rows on an h×w latent: ComfyUI's BaseModel.memory_required
// (rows·h·w·dtype size·0.01 MiB) plus its minimum inference memory (0.8 GiB), which the budget must hold
// besides the weights.
int64_t unet_call_bytes(const Model& model, int64_t rows, int64_t h, int64_t w) {
  const double mib =
      static_cast<double>(rows * h * w) * static_cast<double>(c10::elementSize(model.unet_dtype_)) * 0.01;
  return static_cast<int64_t>(mib * 1048576.0) + (int64_t{8} << 27);
}

// Whether one sampling's UNet calls run as CUDA graphs (cuda_graphs.h). Graphs pay where one image's call
// leaves the GPU idle part of the time — launch overhead, and room for other lanes' calls to overlap — which
// is the case up to about 768² pixels: a latent of at most kGraphMaxCells (h × w) cells. An SDXL 1024² image
// (128² cells) keeps the GPU busy by itself while the CPU launches ahead, and a graph's private pool only
// adds memory there (on an H100: 2.75 GB more at the peak for 2.6 % speed, docs/benchmarks.md). The bound
// is per image, not per call, so a batch keeps its graphs. NETDIST_GRAPH_MAX_CELLS overrides it;
// --no-cuda-graphs and --lowvram turn graphs off.
constexpr int64_t kGraphMaxCells = 96 * 96;

// ControlNet residuals depend on sigma (their range): samplings with one (`pos`, `neg`) run eagerly.
bool graphs_pay(const Model& model, int64_t h, int64_t w, const std::vector<cond::CondRow>* pos = nullptr,
                const std::vector<cond::CondRow>* neg = nullptr) {
  if (!model.options_.cuda_graphs || model.options_.lowvram) return false;
  if (pos && neg && control::any_control(*pos, *neg)) return false;
  if (model.patches_ && !model.patches_->output_block.empty()) return false;  // FreeU's FFTs stay uncaptured
  int64_t bound = kGraphMaxCells;
  if (const char* env = std::getenv("NETDIST_GRAPH_MAX_CELLS")) bound = std::atoll(env);
  return h * w <= bound;
}

// What the graphs' memory pools may hold together (cuda_graphs.h): --highvram any amount; otherwise
// kGraphBudget or what the device has left under --vram-limit/--reserve-vram beyond the call's own
// activations (`room`, `call_bytes`), whichever is less. A budget under one pool still runs one lane.
// NETDIST_GRAPH_BUDGET_MB overrides it. 4 GiB bounds what graphs add to a workflow's peak to about 40 % of
// ComfyUI's own SD1.5 512² batch-10 peak (9.7 GB on an H100) while leaving room for several lanes.
constexpr int64_t kGraphBudget = int64_t{4} << 30;

int64_t graph_budget(int64_t room, int64_t call_bytes) {
  if (residency::options().highvram) return -1;
  if (const char* env = std::getenv("NETDIST_GRAPH_BUDGET_MB")) return std::atoll(env) * 1048576;
  return std::clamp<int64_t>(room - call_bytes, 0, kGraphBudget);
}

// Images per VAE decode call on a GPU: ComfyUI's VAE.memory_used_decode estimate (2178·h·w·64·dtype size
// bytes per image of an h×w latent) against a fixed budget, so the split does not depend on what else is in
// memory (a row's pixels then depend only on the batch size). NETDIST_DECODE_MB overrides the budget.
int64_t decode_chunk(const Model& model, const at::Tensor& latent) {
  const int64_t n = latent.size(0);
  if (!model.device_.is_cuda() || residency::options().highvram) return n;
  const int64_t per_image =
      2178 * latent.size(2) * latent.size(3) * 64 * static_cast<int64_t>(c10::elementSize(model.vae_dtype_));
  int64_t budget = int64_t{2} << 30;
  if (const char* env = std::getenv("NETDIST_DECODE_MB")) budget = std::atoll(env) * 1048576;
  return std::clamp<int64_t>(budget / std::max<int64_t>(per_image, 1), 1, n);
}

void log_peak(const Model& model, const char* what) {
  static const bool on = std::getenv("NETDIST_MEMORY_LOG") != nullptr;
  if (!on || !model.device_.is_cuda()) return;
  const runtime::DeviceMemory m = runtime::device_memory(model.device_);
  log::info("memory: {}: peak allocated {:.1f} MiB, reserved {:.1f} MiB, allocated {:.1f} MiB", what,
            m.torch_peak_allocated / 1048576.0, m.torch_reserved / 1048576.0, m.torch_allocated / 1048576.0);
}

// The micro-batches of the whole batch that rows [row_begin, row_end) of `req` cover, as local bounds; a
// range that cuts one would not equal the unsplit batch, so it is refused, as are bad rows, steps and
// batch indices.
Result<std::vector<int64_t>> row_groups(const SampleRequest& req, int64_t row_begin, int64_t row_end) {
  const int64_t n = req.latent.size(0);
  if (row_begin < 0 || row_begin >= row_end || row_end > n) {
    return Status::invalid_argument("sample: rows [" + std::to_string(row_begin) + ", " +
                                    std::to_string(row_end) + ") outside a batch of " + std::to_string(n));
  }
  if (req.steps < 1) return Status::invalid_argument("sample: steps must be >= 1");
  if (req.batch_index && static_cast<int64_t>(req.batch_index->size()) != n) {
    return Status::invalid_argument("latent_image's batch_index has " +
                                    std::to_string(req.batch_index->size()) + " entries for " +
                                    std::to_string(n) + " latents");
  }
  std::vector<int64_t> groups;
  for (int64_t b : micro_batch_bounds(n)) {
    if (b >= row_begin && b <= row_end) groups.push_back(b - row_begin);
  }
  if (groups.empty() || groups.front() != 0 || groups.back() != row_end - row_begin) {
    std::string all;
    for (int64_t b : micro_batch_bounds(n)) all += (all.empty() ? "" : ", ") + std::to_string(b);
    return Status::invalid_argument("sample: rows [" + std::to_string(row_begin) + ", " +
                                    std::to_string(row_end) + ") cut a micro-batch of the batch of " +
                                    std::to_string(n) + "; split at its bounds {" + all + "}");
  }
  return groups;
}

// KSampler's sigmas, cut at KSamplerAdvanced's last_step (ending at 0 with force_full_denoise), or the custom
// sigmas of SamplerCustom(Advanced) as given.
Result<at::Tensor> request_sigmas(const sampling::ModelSampling& ms, const SampleRequest& req) {
  if (req.sigmas.defined()) {
    if (req.sigmas.dim() != 1 || !at::isFloatingType(req.sigmas.scalar_type()))
      return Status::invalid_argument("sigmas is " + shape_string(req.sigmas) + ", not a 1-D float schedule");
    at::Tensor custom = req.sigmas.to(at::kCPU, at::kFloat).clone();
    if (!at::isfinite(custom).all().item<bool>()) return Status::invalid_argument("sigmas holds NaN or inf");
    return custom;
  }
  ND_ASSIGN_OR_RETURN(at::Tensor sigmas,
                      sampling::make_sigmas(req.scheduler, ms, req.steps, req.denoise, req.sampler));
  if (req.last_step && *req.last_step < sigmas.size(0) - 1) {
    sigmas = sigmas.slice(0, 0, *req.last_step + 1).clone();
    if (req.force_full_denoise) sigmas[-1] = 0.0;
  }
  if (req.start_step) {
    // KSampler.sample: a start at or past the last step leaves the latent as it is (an empty schedule).
    if (*req.start_step >= sigmas.size(0) - 1) return at::empty({0}, at::kFloat);
    sigmas = sigmas.slice(0, *req.start_step);
  }
  return sigmas;
}

// The conditioning rows of `negative`; none when it is empty and cfg is 1 (BasicGuider has no negative).
Result<std::vector<cond::CondRow>> prepare_negative(Model& model, const Conditioning& negative, bool skip_uncond,
                                                    const SampleRequest& req) {
  if (skip_uncond && negative.empty()) return std::vector<cond::CondRow>{};
  return prepare_cond(model, negative, "negative", req);
}

// Activation bytes of the largest UNet call: the largest micro-batch times every conditioning entry.
int64_t sample_call_bytes(const Model& model, const std::vector<int64_t>& groups, size_t conds,
                          const at::Tensor& latent) {
  int64_t images_per_call = 0;
  for (size_t g = 0; g + 1 < groups.size(); ++g)
    images_per_call = std::max(images_per_call, groups[g + 1] - groups[g]);
  const int64_t rows = images_per_call * static_cast<int64_t>(conds);
  return unet_call_bytes(model, rows, latent.size(2), latent.size(3));
}

// The initial noise of rows [row_begin, row_end): those rows of the whole batch's noise (so a split batch
// gets the unsplit batch's noise), or zeros without add_noise.
Result<at::Tensor> rows_noise(const SampleRequest& req, const at::Tensor& latent, int64_t row_begin,
                              int64_t row_end) {
  if (!req.add_noise) return at::zeros_like(latent);
  ND_ASSIGN_OR_RETURN(at::Tensor full, sampling::initial_noise(req.seed, req.latent.sizes(), req.batch_index));
  return full.slice(0, row_begin, row_end);
}

// The conditioning lists' inpainting and area set-up (inpaint.h, cond_batch.h): the noise mask of the whole
// batch (undefined without one), an inpainting UNet's concat input on every row, then the opposite areas.
Result<at::Tensor> prepare_lists(const Model& model, const SampleRequest& req, std::vector<cond::CondRow>& pos,
                                 const Conditioning& positive, std::vector<cond::CondRow>& neg,
                                 const Conditioning& negative) {
  const unet::UNetConfig& c = model.unet_->config();
  const int64_t row_end = req.row_end < 0 ? req.latent.size(0) : req.row_end;
  const inpaint::Target target{c.in_channels != c.out_channels, model.tiling_.has_value(),
                               model.info_.vae_scale_factor, req.row_begin, row_end, model.device_};
  ND_ASSIGN_OR_RETURN(at::Tensor mask, inpaint::prepare(req, target, pos, positive, neg, negative));
  cond::add_opposite_areas(pos, neg);
  cond::apply_control_to_uncond(pos, neg);
  if (model.tiling_ && control::any_control(pos, neg))
    return Status::unsupported("ControlNet with a TiledDiffusion model is not supported yet");
  return mask;
}

// ComfyUI cfg_function on calc_cond_batch's [cond, uncond] x0 predictions: the model's cfg patch
// (model_patches.h) when it has one, else uncond + (cond − uncond)·cfg; `skip_uncond` (cfg 1): the
// conditional prediction, or with a cfg patch that patch on a zero unconditional one, as ComfyUI.
at::Tensor guided_prediction(const Model& model, const std::vector<at::Tensor>& out, bool skip_uncond,
                             double cfg, const at::Tensor& x, const at::Tensor& sigma) {
  if (!model.patches_) return skip_uncond ? out[0] : out[1] + (out[0] - out[1]) * cfg;
  const at::Tensor uncond = skip_uncond ? at::zeros_like(out[0]) : out[1];
  return patches::combine_cfg(*model.patches_, out[0], uncond, cfg, x, sigma);
}

// `denoiser` as KSamplerX0Inpaint runs it when the request has a noise mask (prepare_lists' `mask`).
sampling::Denoiser with_noise_mask(const Model& model, const SampleRequest& req, const at::Tensor& mask,
                                   const at::Tensor& noise, const at::Tensor& latent_in, sampling::Denoiser denoiser) {
  if (!mask.defined()) return denoiser;
  const int64_t row_end = req.row_end < 0 ? req.latent.size(0) : req.row_end;
  const at::Tensor renoise =
      inpaint::inpaint_noise(req.sampler, req.seed, req.latent.sizes(), noise, req.row_begin, row_end);
  return inpaint::masked_denoiser(std::move(denoiser), *model.sampling_,
                                  mask.slice(0, req.row_begin, row_end).to(model.device_), renoise.to(model.device_),
                                  latent_in);
}

}  // namespace

at::Tensor empty_latent(const Model& model, int64_t batch, int64_t width, int64_t height) {
  return at::zeros({batch, model.info_.latent_channels, height / 8, width / 8}, at::kFloat);
}

Result<at::Tensor> sample(Model& model, const Conditioning& positive, const Conditioning& negative,
                          const SampleRequest& req, const ProgressFn& progress) {
  ND_ASSIGN_OR_RETURN(SampleOutput out, sample_with_denoised(model, positive, negative, req, progress));
  return std::move(out.samples);
}

Result<SampleOutput> sample_with_denoised(Model& model, const Conditioning& positive, const Conditioning& negative,
                                          const SampleRequest& req, const ProgressFn& progress) {
  if (req.row_group) return rows::sample_shared_rows(model, positive, negative, req, progress);
  if (model.unet_.is_empty())
    return Status::invalid_argument("sample: " + model.path_ + " has no diffusion model");
  ND_RETURN_IF_ERROR(check_latent(req.latent, "latent_image", model.unet_->config().out_channels,
                                  "the UNet of " + model_name(model) + " samples"));
  const int64_t n = req.latent.size(0);
  const int64_t row_begin = req.row_begin, row_end = req.row_end < 0 ? n : req.row_end;
  ND_ASSIGN_OR_RETURN(std::vector<int64_t> groups, row_groups(req, row_begin, row_end));
  if (req.cfg_split) ND_RETURN_IF_ERROR(cond::CfgSplit::check(req.group.get()));
  std::lock_guard<std::mutex> lock(*model.mutex_);
  const sampling::ModelSampling& ms = *model.sampling_;
  ND_ASSIGN_OR_RETURN(at::Tensor sigmas, request_sigmas(ms, req));
  at::Tensor latent = req.latent.slice(0, row_begin, row_end).to(at::kFloat);
  if (sigmas.size(0) == 0) return SampleOutput{latent.clone(), latent.clone()};
  ND_ASSIGN_OR_RETURN(at::Tensor noise, rows_noise(req, latent, row_begin, row_end));
  ND_ASSIGN_OR_RETURN(std::vector<cond::CondRow> pos, prepare_cond(model, positive, "positive", req));
  const bool skip_uncond = std::abs(req.cfg - 1.0) <= 1e-9 * std::max(1.0, std::abs(req.cfg));
  ND_ASSIGN_OR_RETURN(std::vector<cond::CondRow> neg, prepare_negative(model, negative, skip_uncond, req));
  ND_ASSIGN_OR_RETURN(at::Tensor mask, prepare_lists(model, req, pos, positive, neg, negative));
  ND_ASSIGN_OR_RETURN(auto tiling, tiles::prepare_call(model.tiling_, req, pos, neg, skip_uncond));

  at::Tensor result, last_denoised;
  // With cfg == 1 there is no unconditional pass to split off: every member computes the whole step alone.
  std::optional<cond::CfgSplit> split;
  if (req.cfg_split && !skip_uncond) split.emplace(*req.group, req.cfg, model.patches_);
  runtime::reset_peak_memory(model.device_);
  Status s = guard_torch("sampling", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.unet_);
    const int64_t call_bytes = sample_call_bytes(model, groups, pos.size() + neg.size(), latent);
    const int64_t room = residency::make_room(model.device_, call_bytes);
    lora::PatchScope patch(*model.unet_, model.info_.unet_prefix, model.unet_patches_);
    patches::OutputBlockScope block_patches(*model.unet_, model.patches_.get());
    runtime::GraphedCalls graphs(model.device_, graphs_pay(model, latent.size(2), latent.size(3), &pos, &neg), 4,
                                 graph_budget(room, call_bytes));
    at::Tensor sig = sigmas.to(model.device_);
    at::Tensor latent_in = (latent * model.info_.vae_scale_factor).to(model.device_);
    at::Tensor x = ms.noise_scaling(sig[0], noise.to(model.device_), latent_in, ms.is_max_denoise(sigmas));
    control::CallTracker calls;  // the ControlNet of the current call's entries
    cond::ModelFn unet_fn = tiling.wrap([&](const at::Tensor& xb, const at::Tensor& sb, const at::Tensor& cb,
                                            const at::Tensor& yb) {
      return apply_model(model, graphs, xb, sb, cb, yb, groups, calls.current, row_begin);
    });
    sampling::Denoiser denoiser = [&](const at::Tensor& xt, const at::Tensor& sigma) {
      if (split) return split->denoise(unet_fn, pos, neg, xt, sigma, calls.hook());
      std::vector<const std::vector<cond::CondRow>*> lists = {&pos, skip_uncond ? nullptr : &neg};
      return guided_prediction(model, cond::calc_cond_batch(unet_fn, lists, xt, sigma, calls.hook()), skip_uncond,
                               req.cfg, xt, sigma);
    };
    denoiser = with_noise_mask(model, req, mask, noise, latent_in, std::move(denoiser));
    sampling::NoiseSource noise_source(
        req.seed, n, row_begin,
        model.options_.noise_on_cpu ? sampling::NoiseDevice::kCpu : sampling::NoiseDevice::kSampling);
    sampling::StepCallback callback = [&](int step, int total, const at::Tensor&, const at::Tensor& denoised) {
      last_denoised = denoised.clone();
      const bool keep_going = progress ? progress(step + 1, total) : true;
      if (!split) return keep_going;
      split->note_progress(keep_going);  // the other member learns of it at the next exchange
      return true;
    };
    auto sampled = sampling::sample(req.sampler, denoiser, x, sig, noise_source, callback, &ms);
    if (split && !split->status().is_ok()) return split->status();
    if (!sampled.is_ok()) return sampled.status();
    if (split && split->stop_requested()) return Status::cancelled("sampling interrupted");
    at::Tensor samples = ms.inverse_noise_scaling(sig[-1], *sampled);
    result = (samples.to(at::kFloat) / model.info_.vae_scale_factor).to(at::kCPU);
    if (last_denoised.defined())
      last_denoised = (last_denoised.to(at::kFloat) / model.info_.vae_scale_factor).to(at::kCPU);
    return Status::ok();
  });
  log_peak(model, "sampling");
  // The graphs' pools and the activations are cached blocks now: give them back, as ComfyUI's
  // soft_empty_cache does, so that what runs next (the VAE, another model) finds them.
  runtime::release_cached_memory(model.device_);
  ND_RETURN_IF_ERROR(tiling.status(s));
  return SampleOutput{result, last_denoised.defined() ? last_denoised : result};
}

Result<at::Tensor> decode(Model& model, const at::Tensor& latent) {
  ND_RETURN_IF_ERROR(check_latent(latent, "samples", model.vae_->config().embed_dim,
                                  "the VAE of " + model_name(model) + " decodes"));
  std::lock_guard<std::mutex> lock(*model.mutex_);
  const int64_t n = latent.size(0), chunk = decode_chunk(model, latent);
  std::vector<at::Tensor> parts;
  runtime::reset_peak_memory(model.device_);
  Status s = guard_torch("VAE decode", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.vae_);
    for (int64_t b = 0; b < n; b += chunk) {
      const int64_t e = std::min(n, b + chunk);
      at::Tensor z = latent.slice(0, b, e).to(model.device_, model.vae_dtype_);
      at::Tensor out;
      try {
        out = model.vae_->decode(z);
      } catch (const c10::OutOfMemoryError&) {
        // As ComfyUI's VAE.decode: out of memory → the same latents again in 64-cell tiles with 16
        // overlapping.
        log::warn("out of memory in VAE decode of {} image(s); retrying tiled", e - b);
        runtime::release_cached_memory(model.device_);
        out = model.vae_->decode_tiled(z, 64, 16);
      }
      parts.push_back(
          ((out.to(at::kFloat) + 1.0) / 2.0).clamp(0.0, 1.0).permute({0, 2, 3, 1}).contiguous().to(at::kCPU));
    }
    return Status::ok();
  });
  log_peak(model, "VAE decode");
  runtime::release_cached_memory(model.device_);
  ND_RETURN_IF_ERROR(s);
  return parts.size() == 1 ? parts[0] : at::cat(parts, 0);
}

Result<at::Tensor> decode_tiled(Model& model, const at::Tensor& latent, int64_t tile_size, int64_t overlap) {
  ND_RETURN_IF_ERROR(check_latent(latent, "samples", model.vae_->config().embed_dim,
                                  "the VAE of " + model_name(model) + " decodes"));
  if (tile_size < overlap * 4) overlap = tile_size / 4;
  const int64_t d = model.vae_->config().downscale();
  const int64_t tile = tile_size / d, cells = overlap / d;
  if (tile < 4 || cells < 0 || cells >= tile / 2) {
    return Status::invalid_argument("decode_tiled: tile_size " + std::to_string(tile_size) +
                                    " with overlap " + std::to_string(overlap) +
                                    " gives no usable latent tile");
  }
  std::lock_guard<std::mutex> lock(*model.mutex_);
  at::Tensor images;
  Status s = guard_torch("VAE tiled decode", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.vae_);
    at::Tensor out = model.vae_->decode_tiled(latent.to(model.device_, model.vae_dtype_), tile, cells);
    images =
        ((out.to(at::kFloat) + 1.0) / 2.0).clamp(0.0, 1.0).permute({0, 2, 3, 1}).contiguous().to(at::kCPU);
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return images;
}

Result<at::Tensor> encode(Model& model, const at::Tensor& image) {
  const int64_t channels = model.vae_->config().in_channels;
  if (!image.defined() || image.dim() != 4 || image.size(0) < 1) {
    return Status::invalid_argument("pixels is " +
                                    (image.defined() ? shape_string(image) : std::string("empty")) +
                                    ", not [N, H, W, " + std::to_string(channels) + "]");
  }
  if (image.size(3) < channels) {
    return Status::invalid_argument("pixels has " + std::to_string(image.size(3)) + " channels (" +
                                    shape_string(image) + "); the VAE of " + model_name(model) + " encodes " +
                                    std::to_string(channels) + "-channel (RGB) images");
  }
  if (!at::isFloatingType(image.scalar_type())) {
    return Status::invalid_argument("pixels holds " + std::string(c10::toString(image.scalar_type())) +
                                    " values, not floating point");
  }
  const int64_t d = model.vae_->config().downscale();
  const int64_t h = image.size(1) / d * d, w = image.size(2) / d * d;
  if (h == 0 || w == 0) {
    return Status::invalid_argument("pixels " + shape_string(image) + " is smaller than one latent cell (" +
                                    std::to_string(d) + "×" + std::to_string(d) + " pixels)");
  }
  std::lock_guard<std::mutex> lock(*model.mutex_);
  at::Tensor latent;
  Status s = guard_torch("VAE encode", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.vae_);
    const int64_t y0 = (image.size(1) % d) / 2, x0 = (image.size(2) % d) / 2;
    at::Tensor px = image.slice(1, y0, y0 + h).slice(2, x0, x0 + w).slice(3, 0, channels);
    px = (px.permute({0, 3, 1, 2}) * 2.0 - 1.0).to(model.device_, model.vae_dtype_);
    latent = model.vae_->encode(px).to(at::kFloat).to(at::kCPU);
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return latent;
}

}  // namespace netdist

namespace netdist {

Result<at::Tensor> apply_model_once(Model& model, const at::Tensor& x, const at::Tensor& sigma,
                                    const at::Tensor& context, const at::Tensor& y) {
  std::lock_guard<std::mutex> lock(*model.mutex_);
  at::Tensor out;
  ND_RETURN_IF_ERROR(guard_torch("UNet call", [&] {
    c10::InferenceMode inference;
    OnDevice on(model, *model.unet_);
    lora::PatchScope patch(*model.unet_, model.info_.unet_prefix, model.unet_patches_);
    patches::OutputBlockScope block_patches(*model.unet_, model.patches_.get());
    runtime::GraphedCalls graphs(model.device_, graphs_pay(model, x.size(2), x.size(3)));
    const at::Device d = model.device_;
    out = apply_model(model, graphs, x.to(d, at::kFloat), sigma.to(d, at::kFloat), context.to(d, at::kFloat),
                      y.defined() ? y.to(d, at::kFloat) : y, {0, x.size(0)})
              .to(at::kCPU);
    return Status::ok();
  }));
  return out;
}

}  // namespace netdist
