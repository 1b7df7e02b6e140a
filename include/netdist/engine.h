// netdist engine: load a Stable Diffusion checkpoint, encode prompts, sample latents, decode images.
//
//   auto model = netdist::load_model("models/tiny-emoji.safetensors", {}).value();
//   auto pos = netdist::encode_prompt(*model, "a red heart").value();
//   auto neg = netdist::encode_prompt(*model, "").value();
//   netdist::SampleRequest req;            // seed, steps, cfg, sampler, scheduler, denoise
//   req.latent = netdist::empty_latent(*model, 1, 512, 512);
//   at::Tensor latent = netdist::sample(*model, pos, neg, req, nullptr).value();
//   at::Tensor images = netdist::decode(*model, latent).value();   // [N, H, W, 3] float32 in [0, 1]
//
// Tensor conventions are ComfyUI's, so graph nodes pass them through unchanged:
//   LATENT  [N, 4, H/8, W/8] float32 on the CPU, unscaled VAE latents (the family's scale factor is applied
//           inside sample()).
//   IMAGE   [N, H, W, 3] float32 on the CPU, values in [0, 1].
// Seeds follow ComfyUI: the initial noise of a batch is the CPU MT19937 randn of the whole [N,4,h,w]
// tensor; a request covering rows [row_begin, row_end) of a batch gets exactly those rows of every noise
// tensor (initial and per-step), so a split batch equals the unsplit one. Because kernels may block by
// batch size, sample() runs the UNet on fixed micro-batches that depend only on the batch size
// (engine/micro_batch.h: at most 8 images per call, with their rows for every conditioning entry), so a
// row's result is the same however the batch is split along those bounds; a row range that cuts one is
// refused. On CUDA the calls are replayed as CUDA graphs on parallel streams (engine/runtime/cuda_graphs.h).
//
// Thread-safety: a Model may be shared between threads; calls on one Model are serialised internally
// (one GPU stream per model). Every failure (bad file, out of memory, interrupted) is a Status: input that does
// not fit the model (a latent of another rank, channel count or dtype, an empty one, conditioning of another
// width, an image without 3 channels) is invalid_argument naming the input as ComfyUI's node does ("samples",
// "latent_image", "positive", "pixels") and the model file, checked before any tensor op; a libtorch exception
// is caught here and becomes a Status.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "netdist/step_group.h"

namespace netdist {

enum class Precision { kFloat32, kFloat16, kBFloat16 };

struct EngineOptions {
  std::string device = "cpu";              // "cpu", "cuda" or "cuda:N" (--cuda-device N)
  std::optional<Precision> precision;      // UNet and text encoders: fp32 on CPU, fp16 on CUDA by default
  std::optional<Precision> vae_precision;  // default: fp32 on CPU; bf16 on CUDA (SDXL's VAE overflows fp16)
  bool lowvram = false;                    // keep each module on the GPU only while it runs
  bool highvram = false;                   // never move weights to RAM; CUDA graphs on every stream
  double vram_limit_gb = 0;                // use at most this much of the device (0: all of it)
  double reserve_vram_gb = 0.4;      // leave this much of the device to other programs (ComfyUI's default)
  bool noise_on_cpu = false;         // draw per-step noise on the CPU (--noise cpu): GPU-independent
  bool cuda_graphs = true;           // replay the UNet's repeated calls as CUDA graphs (--no-cuda-graphs)
  std::string clip_vocab_dir;        // --clip-vocab: where vocab.json / merges.txt live
  // ComfyUI's embedding_directory: where "embedding:name" in a prompt finds textual-inversion embeddings
  // (engine/text/embeddings.h; --models-dir/embeddings in the server). Empty: "embedding:name" is plain text.
  std::string embeddings_dir;
  std::optional<bool> v_prediction;  // override the detected parameterization (SD2)
};

class Model;
struct ControlApply;  // netdist/controlnet.h

// Device memory (engine/residency.h): models are loaded onto the GPU on demand, and when a model, or the
// activations of a call, do not fit in the budget (the device, or vram_limit_gb, minus reserve_vram_gb), the
// least recently used idle modules of other models move to RAM. configure_memory sets the process-wide
// budget from `options` (and caps libtorch's allocator at vram_limit_gb); call it once before loading.
Status configure_memory(const EngineOptions& options);

// What a device has, as /system_stats reports it (ComfyUI's fields): total and free from the driver (free
// counts libtorch's cached blocks as free), libtorch's reserved memory and the part of it not in use. On the
// CPU: the machine's RAM and zeros.
struct DeviceMemoryInfo {
  std::string name;  // "cuda:0 NVIDIA H100 80GB HBM3", "cpu"
  std::string type;  // "cuda" or "cpu"
  int index = -1;    // -1 on the CPU
  int64_t vram_total = 0, vram_free = 0, torch_vram_total = 0, torch_vram_free = 0;
};
Result<DeviceMemoryInfo> device_memory_info(const std::string& device);

// POST /free: unload_models moves every idle module of the device to RAM; either way libtorch's cached
// blocks go back to the driver.
void free_device_memory(const std::string& device, bool unload_models);

// Loads a single-file checkpoint (.safetensors, ldm/sgm layout) or a diffusers folder. The family
// (SD1.x, SD2.x, SDXL, SDXL refiner) and every config number are detected from tensor names and shapes.
// Inpainting UNets (9 input channels: latent + mask + masked-image latent, ComfyUI's concat conditioning) and
// SDXL refiners (clip_g only, ADM 2560 with the aesthetic score) are run. UNets the engine does not run yet are
// refused before anything is built, kUnsupported naming the file and what it is: "checkpoint 'x.safetensors'
// is a depth UNet (5 input channels: latent + depth map); not supported yet"; likewise x4 upscaler (7),
// instruct-pix2pix / edit (8) and other unknown UNets (models::check_supported_unet).
Result<std::shared_ptr<Model>> load_model(const std::string& path, const EngineOptions& options);

// What a model is: "sd1", "sd2", "sdxl", "sdxl_refiner"; "eps" or "v"; its
// native resolution.
struct ModelInfo {
  std::string family;
  std::string prediction;
  int default_size = 512;
  std::string path;
  std::string device;
};
ModelInfo model_info(const Model& model);

// The sizes SDXL's ADM vector embeds (CLIPTextEncodeSDXL's width, height, crop_w, crop_h, target_width,
// target_height, in pixels). Without them an entry embeds the sampled image's size, crop 0.
// The SDXL refiner embeds width, height, crops and the aesthetic score (CLIPTextEncodeSDXLRefiner's ascore;
// unset: ComfyUI's 6 for positive and 2.5 for negative entries).
struct AdmSize {
  int64_t width = 1024, height = 1024, crop_w = 0, crop_h = 0, target_width = 1024, target_height = 1024;
  std::optional<double> aesthetic_score;
};

// One conditioning entry, as ComfyUI's [cond, {"pooled_output": …, "area": …}] pair.
struct CondEntry {
  at::Tensor context;  // [1, 77·k, D] text-encoder hidden states, float32 CPU
  at::Tensor pooled;   // [1, P] (SDXL) or undefined
  float strength = 1.0f;
  std::optional<std::array<int, 4>> area;  // ConditioningSetArea: {height, width, y, x} in pixels
  // InpaintModelConditioning's "concat_latent_image" (unscaled latent [M, 4, h, w]) and "concat_mask"
  // ([M, 1, H, W] in pixels), float32 CPU or undefined: what an inpainting UNet's concat input is made of
  // (engine/inpaint.h concat_cond); other UNets ignore them.
  at::Tensor concat_latent_image, concat_mask;
  std::optional<AdmSize> adm_size;  // CLIPTextEncodeSDXL's sizes (SDXL models only)
  // ControlNetApply(Advanced)'s "control" (netdist/controlnet.h) or null; entries sharing one are batched
  // together. control_apply_to_uncond: ControlNetApply's flag (the negative entries without one get it).
  std::shared_ptr<const ControlApply> control;
  bool control_apply_to_uncond = false;
  // ConditioningSetAreaPercentage: {height, width, y, x} as fractions of the latent, in place of `area` (the
  // two nodes each clear the other's; the sampler rounds them to latent cells as ComfyUI's
  // resolve_areas_and_cond_masks does: max(1, round(h·H)), max(1, round(w·W)), round(y·H), round(x·W)).
  std::optional<std::array<double, 4>> area_percent;
  // ConditioningSetMask: mask [M, H, W] float32 CPU or undefined (resized bilinear to the latent by the
  // sampler; row r of the batch uses row r of the first min(M, batch) rows repeated), times mask_strength;
  // set_area_to_bounds ("mask bounds"): the entry's area becomes the mask's bounding box (at least 8×8 cells).
  // ConditioningSetArea and ConditioningSetAreaPercentage set set_area_to_bounds back to false, as ComfyUI's.
  at::Tensor mask;
  float mask_strength = 1.0f;
  bool set_area_to_bounds = false;
  // ConditioningSetTimestepRange: the entry is used only while sigma lies in
  // [percent_to_sigma(end_percent), percent_to_sigma(start_percent)] (ComfyUI's model_sampling).
  std::optional<double> start_percent, end_percent;
};
using Conditioning = std::vector<CondEntry>;

// Tokenizes with ComfyUI's weighting syntax and encodes (CLIPTextEncode). clip_layer = CLIPSetLastLayer's
// stop_at_clip_layer (-1 last, -2 penultimate, …); unset keeps the family's layer (SDXL: penultimate).
Result<Conditioning> encode_prompt(Model& model, const std::string& text,
                                   std::optional<int> clip_layer = std::nullopt);
// CLIPTextEncodeSDXL: text_l through clip_l and text_g through clip_g (the side with fewer 77-token windows
// padded with windows of the empty prompt, as the node does), the entry carrying `size` for the ADM vector.
// invalid_argument naming the file for a model without SDXL's two text encoders.
Result<Conditioning> encode_prompt_sdxl(Model& model, const std::string& text_g, const std::string& text_l,
                                        const AdmSize& size, std::optional<int> clip_layer = std::nullopt);

// Zeros of the family's latent shape (EmptyLatentImage).
at::Tensor empty_latent(const Model& model, int64_t batch, int64_t width, int64_t height);

struct SampleRequest {
  uint64_t seed = 0;
  int steps = 20;
  double cfg = 8.0;
  std::string sampler = "euler";
  std::string scheduler = "normal";
  double denoise = 1.0;
  at::Tensor latent;  // [N, 4, h, w] full batch (rows outside the range are ignored)
  std::optional<std::vector<int64_t>> batch_index;  // LATENT "batch_index" (noise indices)
  // LATENT "noise_mask" (SetLatentNoiseMask, VAEEncodeForInpaint): float32 CPU, last two dims H×W, of the
  // whole batch; undefined = none. As ComfyUI's KSamplerX0Inpaint, every denoiser call keeps the latent
  // where the mask is 0 (engine/inpaint.h); it is resized to the latent (bilinear) and repeated to the
  // batch before the rows are taken, so a split batch equals the unsplit one. Anything but a floating-point
  // tensor of rank 2 to 4 is invalid_argument naming "latent_image's noise_mask".
  at::Tensor noise_mask;
  int64_t row_begin = 0, row_end = -1;       // the rows this call renders (micro-batch bounds); -1 = all
  // Tile-parallel sampling of a TiledDiffusion model (include/netdist/tiled_diffusion.h): every member of
  // tile_group calls sample() with the same request on its own Model and gets the same latent, having rendered
  // its share of the tile batches (tile_speeds: one positive number per member, empty = equal shares).
  std::shared_ptr<StepGroup> tile_group;
  std::vector<double> tile_speeds;
  bool add_noise = true;                     // KSamplerAdvanced add_noise
  std::optional<int> start_step, last_step;  // KSamplerAdvanced
  bool force_full_denoise = false;           // KSamplerAdvanced return_with_leftover_noise = disable
  // Step-parallel sampling (issue #17; include/netdist/step_group.h): with a group, every member calls
  // sample() with the same request and gets the same latent. cfg_split: the conditional and unconditional
  // passes of each step run on different members (cfg != 1). The tile-parallel mode adds its own field.
  // cfg_split needs a group of exactly 2 (else invalid_argument); rank 0 runs the positive entries, rank 1
  // the negative ones (engine/cfg_split.h). With cfg == 1 each member runs the whole step alone (nothing
  // to split, nothing exchanged). A lost member → the group's Status naming it; an interrupt on either
  // member → cancelled on both.
  std::shared_ptr<StepGroup> group;
  bool cfg_split = false;
  // Rows shared by a step group (issue #17, rows × CFG; engine/row_group.h): every member of row_group calls
  // sample() with the same request; member a of k samples rows [begin + n·a/k, begin + n·(a+1)/k) of the
  // request's rows (n of them, n >= k, else invalid_argument), with `group`/`cfg_split` as set (its CFG
  // pair), and one all_gather at the end gives every member all rows. Noise is per row (as row_begin), so
  // a member's rows are those rows sampled alone. A member that fails → every member fails naming it.
  std::shared_ptr<StepGroup> row_group;
  // SamplerCustom / SamplerCustomAdvanced (SIGMAS): when defined, the schedule to sample along (1-D, finite,
  // any float dtype), used as given in place of steps, scheduler, denoise, start_step and last_step; an empty
  // one returns the latent unchanged. Anything else is invalid_argument naming "sigmas".
  at::Tensor sigmas;
};

// Called after each sampler step with (step, total); return false to interrupt (→ Status cancelled).
using ProgressFn = std::function<bool(int step, int total)>;

// Runs the sampler with classifier-free guidance. Returns the rows [row_begin, row_end) of the sampled
// latent, unscaled, float32 on the CPU.
Result<at::Tensor> sample(Model& model, const Conditioning& positive, const Conditioning& negative,
                          const SampleRequest& request, const ProgressFn& progress);

// sample() plus the x0 prediction of the last step (SamplerCustom's denoised_output: the denoiser's output,
// CFG applied, unscaled like the samples, float32 CPU); `denoised` is the samples themselves when no step ran.
struct SampleOutput {
  at::Tensor samples;
  at::Tensor denoised;
};
Result<SampleOutput> sample_with_denoised(Model& model, const Conditioning& positive, const Conditioning& negative,
                                          const SampleRequest& request, const ProgressFn& progress);

// The model sampling (ComfyUI's model_sampling object: noise schedule and parameterisation) a Model samples
// with, as comfy_extras/nodes_model_advanced.py's nodes set it: ModelSamplingDiscrete (kDiscrete with "eps",
// "v_prediction" or "x0", zsnr), ModelSamplingSD3 (kDiscreteFlow, shift, multiplier 1000),
// ModelSamplingAuraFlow (kDiscreteFlow, multiplier 1) and ModelSamplingFlux (kFlux, shift). The flow kinds
// are flow matching (CONST): engine/sampling/model_sampling.h.
struct ModelSamplingSpec {
  enum class Kind { kDiscrete, kDiscreteFlow, kFlux };
  Kind kind = Kind::kDiscrete;
  std::string prediction = "eps";
  bool zsnr = false;
  double shift = 1.0;
  double multiplier = 1000.0;
};

// A new handle on `model` (sharing weights, LoRA patches and lock, as apply_lora's) that samples with `spec`;
// `model` is unchanged. invalid_argument for a prediction other than those above ("lcm" is unsupported), a
// discrete-flow shift <= 0 or multiplier <= 0 (σ would be 0 or NaN), a non-finite shift, or a model without
// a diffusion model.
Result<std::shared_ptr<Model>> with_model_sampling(const std::shared_ptr<Model>& model,
                                                   const ModelSamplingSpec& spec);

// ComfyUI calculate_sigmas(model_sampling, scheduler, steps) on the model's sampling (BasicScheduler): the
// float32 CPU schedule of engine/sampling/schedulers.h. invalid_argument for an unknown scheduler, steps < 1
// or a model without a diffusion model.
Result<at::Tensor> model_sigmas(const Model& model, const std::string& scheduler, int steps);

// VAE decode of unscaled latents → IMAGE [N, H, W, 3] in [0, 1], float32 CPU.
Result<at::Tensor> decode(Model& model, const at::Tensor& latent);
// VAEDecodeTiled: ComfyUI's VAE.decode_tiled_ with tile_size and overlap in pixels (overlap becomes
// tile_size // 4 when tile_size < 4·overlap; both are divided by the VAE's 8× downscale). Same output
// contract as decode().
Result<at::Tensor> decode_tiled(Model& model, const at::Tensor& latent, int64_t tile_size, int64_t overlap);
// VAE encode of IMAGE [N, H, W, 3] in [0, 1] → unscaled latents [N, 4, H/8, W/8].
Result<at::Tensor> encode(Model& model, const at::Tensor& image);

// VAELoader: a standalone VAE file (.safetensors) as a Model usable only with decode(), decode_tiled()
// and encode(). Accepts first_stage_model.-prefixed keys (a VAE cut from a checkpoint), bare ldm keys
// (encoder.conv_in.weight, …; loss.* and model_ema.* are ignored) and diffusers AutoencoderKL keys
// (encoder.down_blocks.0.resnets.0.conv1.weight, …). Errors name the file.
Result<std::shared_ptr<Model>> load_vae(const std::string& path, const EngineOptions& options);

// LoraLoader (ComfyUI comfy.sd.load_lora_for_models): a new handle on `model` that shares its weights and
// lock and carries the LoRA of `lora_path` (.safetensors, kohya or diffusers/PEFT keys for SD1/SD2/SDXL),
// scaled by strength_unet on the UNet and strength_clip on the text encoders; patches accumulate over
// chained calls. `model` itself is unchanged: patches are applied in place only during each call on the
// returned handle, under the shared lock, and undone after (src/engine/lora.h). LoRA tensors that match
// no weight are logged as "lora key not loaded: <key>". Errors name the file: unreadable or corrupt
// files, and a LoRA of which nothing matches this model.
Result<std::shared_ptr<Model>> apply_lora(const std::shared_ptr<Model>& model, const std::string& lora_path,
                                          double strength_unet, double strength_clip);

}  // namespace netdist
