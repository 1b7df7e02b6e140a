#include <filesystem>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "core/device_name.h"
#include "engine/checkpoint_probe.h"
#include "engine/model.h"
#include "engine/models/diffusers_layout.h"
#include "engine/runtime/tensor_io.h"
#include "engine/runtime/torch_compat.h"
#include "io/safetensors.h"

namespace netdist {

namespace fs = std::filesystem;

Result<at::Device> parse_device(const std::string& name) {
  ND_ASSIGN_OR_RETURN(DeviceName parsed, parse_device_name(name));
  if (!parsed.cuda) return at::Device(at::kCPU);
  if (!runtime::cuda_available()) {
    return Status::unavailable("device '" + name + "': this build or machine has no CUDA device (libtorch " +
                               runtime::torch_version() + ")");
  }
  const int index = parsed.index.value_or(0);
  if (index >= runtime::cuda_device_count()) {
    return Status::invalid_argument("device '" + name + "': only " +
                                    std::to_string(runtime::cuda_device_count()) + " CUDA device(s) visible");
  }
  return at::Device(at::kCUDA, static_cast<at::DeviceIndex>(index));
}

OnDevice::OnDevice(const Model& model, torch::nn::Module& module) {
  if (model.device_.is_cpu()) {
    restore_threads_ = at::get_num_threads();
    if (restore_threads_ != 1) at::set_num_threads(1);
    return;
  }
  for (const auto& t : model.tickets_) {
    if (t->module() != &module) continue;
    residency::acquire(*t);
    ticket_ = t.get();
    break;
  }
}

OnDevice::~OnDevice() {
  if (ticket_) residency::release(*ticket_);
  if (restore_threads_ > 1) at::set_num_threads(restore_threads_);
}

Status guard_torch(const std::string& what, const std::function<Status()>& fn) {
  try {
    return fn();
  } catch (const c10::OutOfMemoryError& e) {
    return Status::out_of_memory(what +
                                 ": the device ran out of memory; use a smaller batch or size, "
                                 "--lowvram, or another GPU (" +
                                 std::string(e.what_without_backtrace()) + ")");
  } catch (const c10::Error& e) {
    return Status::internal(what + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::internal(what + ": " + e.what());
  }
}

namespace {

at::ScalarType scalar_type(Precision p) {
  switch (p) {
    case Precision::kFloat16:
      return at::kHalf;
    case Precision::kBFloat16:
      return at::kBFloat16;
    case Precision::kFloat32:
      return at::kFloat;
  }
  return at::kFloat;
}

// The netdist tiny model and other SD1-shaped checkpoints whose widths differ from SD1.5 declare
// "netdist.family": "sd1" in their metadata; their sizes are read from shapes.
Result<models::FamilyInfo> detect(const runtime::WeightMap& weights,
                                  const std::map<std::string, std::string>& meta,
                                  const EngineOptions& options) {
  std::optional<models::Prediction> override;
  if (options.v_prediction)
    override = *options.v_prediction ? models::Prediction::kV : models::Prediction::kEps;
  auto family = meta.find("netdist.family");
  if (family == meta.end()) return models::detect_family(weights, meta, override);
  if (family->second != "sd1") {
    return Status::unsupported("metadata netdist.family '" + family->second +
                               "' (only sd1 is declared this way)");
  }
  // The UNet itself is configured from its shapes by unet::detect_unet_config when it is built.
  models::FamilyInfo info = models::sd1_info();
  auto size = meta.find("netdist.default_size");
  if (size != meta.end()) info.default_size = std::atoi(size->second.c_str());
  ND_ASSIGN_OR_RETURN(info.prediction, models::decide_prediction(weights, meta, override, info));
  return info;
}

// Refuses, before anything is built, a checkpoint whose UNet the engine does not run yet
// (models::check_supported_unet), naming the file: "checkpoint 'x.safetensors' is an SDXL refiner (ADM 2560);
// not supported yet". Reads shapes only. Called before family detection with `family_adm` unset (the shapes
// that say what a UNet is), and after it with the family's ADM width. A UNet whose config cannot be read is
// left to detection, which names what is missing.
Status refuse_unsupported_unet(const std::string& path, const runtime::WeightMap& weights,
                               std::optional<int64_t> family_adm) {
  auto config = unet::detect_unet_config(weights, "model.diffusion_model.");
  if (!config.is_ok()) return Status::ok();
  Status s = models::check_supported_unet(config->in_channels, config->out_channels, config->adm_in_channels,
                                          family_adm);
  if (s.is_ok()) return s;
  fs::path file(path);
  if (file.filename().empty()) file = file.parent_path();  // a diffusers folder given as "name/"
  return Status(s.code(), "checkpoint '" + file.filename().string() + "' " + s.message() + " (" + path + ")");
}

Result<std::shared_ptr<text::ClipTokenizer>> load_tokenizer(const std::string& path,
                                                            const std::map<std::string, std::string>& meta,
                                                            const EngineOptions& options) {
  auto vocab = meta.find("netdist.vocab_json");
  auto merges = meta.find("netdist.merges_txt");
  if (options.clip_vocab_dir.empty() && vocab != meta.end() && merges != meta.end()) {
    ND_ASSIGN_OR_RETURN(
        text::ClipTokenizer t,
        text::ClipTokenizer::from_strings(vocab->second, merges->second, path + " vocab", path + " merges"));
    return std::make_shared<text::ClipTokenizer>(std::move(t));
  }
  ND_ASSIGN_OR_RETURN(std::string dir, text::ClipTokenizer::find_vocab_dir(path, options.clip_vocab_dir));
  ND_ASSIGN_OR_RETURN(text::ClipTokenizer t, text::ClipTokenizer::load(dir));
  return std::make_shared<text::ClipTokenizer>(std::move(t));
}

// Where a model's modules are built: on its GPU when its weights fit there once idle modules of other models
// have been moved to RAM (residency.h), else in RAM (they move in when they run). --lowvram: always RAM.
at::Device home_device(const Model& model, const runtime::WeightMap& weights) {
  if (!model.device_.is_cuda() || model.options_.lowvram) return at::Device(at::kCPU);
  int64_t numel = 0;
  for (const auto& [key, tensor] : weights) numel += tensor.numel();
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(model.unet_dtype_));
  return residency::make_room(model.device_, bytes) >= bytes ? model.device_ : at::Device(at::kCPU);
}

// Registers the model's modules with the memory manager (residency.h); `home` is where they are now.
void track_modules(Model& model, const at::Device& home) {
  const bool on_device = home.is_cuda();
  auto add = [&](torch::nn::Module& module, const std::string& what) {
    if (auto t = residency::track(module, model.device_, model.path_ + " (" + what + ")", on_device)) {
      model.tickets_.push_back(std::move(t));
    }
  };
  for (TextEncoder& enc : model.encoders_) add(*enc.model, "text encoder " + enc.spec.prefix);
  if (!model.unet_.is_empty()) add(*model.unet_, "UNet");
  if (!model.vae_.is_empty()) add(*model.vae_, "VAE");
}

}  // namespace

// The weights of `path` (a diffusers folder or one safetensors file) in the canonical layout, with the
// detected family in model.info_ and the file's metadata in `meta`.
Status read_checkpoint(const std::string& path, const EngineOptions& options, Model& model,
                       runtime::WeightMap& weights, std::map<std::string, std::string>& meta) {
  if (fs::is_directory(path)) {
    std::optional<models::Prediction> override;
    if (options.v_prediction)
      override = *options.v_prediction ? models::Prediction::kV : models::Prediction::kEps;
    auto loader = [](const std::string& file) { return runtime::load_safetensors(file); };
    ND_ASSIGN_OR_RETURN(models::DiffusersModel folder, models::load_diffusers(path, loader, override));
    model.info_ = std::move(folder.info);
    weights = std::move(folder.weights);
  } else {
    ND_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open(path));
    meta.insert(file->metadata().begin(), file->metadata().end());
    ND_ASSIGN_OR_RETURN(weights, runtime::weights_from_file(file));
    ND_RETURN_IF_ERROR(refuse_unsupported_unet(path, weights, std::nullopt));
    auto detected = detect(weights, meta, options);
    if (!detected.is_ok()) return detected.status().with_context(path);
    model.info_ = *detected;
    auto scale = meta.find("netdist.vae_scale_factor");
    if (scale != meta.end()) model.info_.vae_scale_factor = std::atof(scale->second.c_str());
    ND_RETURN_IF_ERROR(models::canonicalize(weights, model.info_).with_context(path));
  }
  return Status::ok();
}

Result<std::shared_ptr<Model>> load_model(const std::string& path, const EngineOptions& options) {
  auto model = std::make_shared<Model>();
  model->path_ = path;
  model->options_ = options;
  ND_ASSIGN_OR_RETURN(model->device_, parse_device(options.device));
  const bool cuda = model->device_.is_cuda();
  model->unet_dtype_ =
      scalar_type(options.precision.value_or(cuda ? Precision::kFloat16 : Precision::kFloat32));
  model->text_dtype_ = cuda && options.precision != Precision::kFloat32 ? at::kHalf : at::kFloat;
  model->vae_dtype_ =
      scalar_type(options.vae_precision.value_or(cuda ? Precision::kBFloat16 : Precision::kFloat32));

  runtime::WeightMap weights;
  std::map<std::string, std::string> meta;
  ND_RETURN_IF_ERROR(read_checkpoint(path, options, *model, weights, meta));
  ND_RETURN_IF_ERROR(refuse_unsupported_unet(path, weights, model->info_.adm_channels));
  ND_ASSIGN_OR_RETURN(model->tokenizer_, load_tokenizer(path, meta, options));

  const at::Device home = home_device(*model, weights);
  Status built = guard_torch("loading " + path, [&] {
    for (const models::TextEncoderSpec& spec : model->info_.text_encoders) {
      auto config = text::detect_clip_text_config(weights, spec.prefix);
      if (!config.is_ok()) return config.status();
      TextEncoder enc;
      enc.spec = spec;
      enc.spec.config = *config;
      enc.spec.config.eos_token_id = model->tokenizer_->eos_id();
      enc.model = text::ClipTextModel(enc.spec.config);
      enc.model->to(home, model->text_dtype_);
      model->encoders_.push_back(std::move(enc));
    }
    auto unet_config = unet::detect_unet_config(weights, model->info_.unet_prefix);
    if (!unet_config.is_ok()) return unet_config.status();
    unet::UNetConfig uc = *unet_config;
    if (uc.num_heads <= 0 && uc.num_head_channels <= 0) uc.num_head_channels = 64;
    ND_RETURN_IF_ERROR(uc.validate().with_context(path));  // the module asserts it
    model->unet_ = unet::UNetModel(uc, at::TensorOptions().dtype(model->unet_dtype_).device(home));
    auto vae_config = vae::detect_vae_config(weights, model->info_.vae_prefix);
    if (!vae_config.is_ok()) return vae_config.status();
    model->vae_ = vae::AutoencoderKL(*vae_config, at::TensorOptions().dtype(model->vae_dtype_).device(home));
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(built);

  Status loaded = guard_torch("loading " + path, [&] {
    for (TextEncoder& enc : model->encoders_) {
      ND_RETURN_IF_ERROR(runtime::load_module_weights(*enc.model, weights, enc.spec.prefix, path));
      enc.model->eval();
    }
    ND_RETURN_IF_ERROR(runtime::load_module_weights(*model->unet_, weights, model->info_.unet_prefix, path));
    ND_RETURN_IF_ERROR(runtime::load_module_weights(*model->vae_, weights, model->info_.vae_prefix, path));
    model->unet_->eval();
    model->vae_->eval();
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(loaded);
  track_modules(*model, home);
  const sampling::Prediction prediction = model->info_.prediction == models::Prediction::kV
                                              ? sampling::Prediction::kVPrediction
                                              : sampling::Prediction::kEps;
  model->sampling_ = std::make_unique<sampling::ModelSampling>(prediction);
  return model;
}

Result<std::shared_ptr<Model>> load_vae(const std::string& path, const EngineOptions& options) {
  auto model = std::make_shared<Model>();
  model->path_ = path;
  model->options_ = options;
  ND_ASSIGN_OR_RETURN(model->device_, parse_device(options.device));
  model->vae_dtype_ = scalar_type(
      options.vae_precision.value_or(model->device_.is_cuda() ? Precision::kBFloat16 : Precision::kFloat32));
  ND_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open(path));
  ND_ASSIGN_OR_RETURN(runtime::WeightMap weights, runtime::weights_from_file(file));
  const std::string canonical = model->info_.vae_prefix;
  std::string prefix;
  bool diffusers = false;
  for (const auto& [key, tensor] : weights) {
    if (key.rfind(canonical, 0) == 0) prefix = canonical;
    if (key.rfind("encoder.down_blocks.", 0) == 0 || key.rfind("decoder.up_blocks.", 0) == 0)
      diffusers = true;
  }
  if (prefix.empty() && diffusers) {
    auto converted = models::diffusers_to_ldm({}, weights, {}, {}, model->info_);
    if (!converted.is_ok()) return converted.status().with_context(path);
    weights = std::move(*converted);
    prefix = canonical;
  }
  auto config = vae::detect_vae_config(weights, prefix);
  if (!config.is_ok()) return config.status().with_context(path + " (not a VAE file?)");
  runtime::LoadOptions load_options;
  if (prefix.empty()) load_options.ignore_unexpected = {"loss.", "model_ema."};
  const at::Device home = home_device(*model, weights);
  ND_RETURN_IF_ERROR(guard_torch("loading " + path, [&] {
    model->vae_ = vae::AutoencoderKL(*config, at::TensorOptions().dtype(model->vae_dtype_).device(home));
    ND_RETURN_IF_ERROR(runtime::load_module_weights(*model->vae_, weights, prefix, path, load_options));
    model->vae_->eval();
    return Status::ok();
  }));
  track_modules(*model, home);
  return model;
}

ModelInfo model_info(const Model& model) {
  ModelInfo info;
  switch (model.info_.family) {
    case models::ModelFamily::kSd1:
      info.family = "sd1";
      break;
    case models::ModelFamily::kSd2:
      info.family = "sd2";
      break;
    case models::ModelFamily::kSdxl:
      info.family = "sdxl";
      break;
    case models::ModelFamily::kSdxlRefiner:
      info.family = "sdxl_refiner";
      break;
  }
  info.prediction = model.info_.prediction == models::Prediction::kV ? "v" : "eps";
  info.default_size = model.info_.default_size;
  info.path = model.path_;
  info.device = model.device_.str();
  return info;
}

Result<std::string> describe_checkpoint(const std::string& path) {
  // The loader's own steps on the mapped file (nothing is copied): the same refusals, the same detection.
  ND_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open(path));
  const std::map<std::string, std::string>& meta = file->metadata();
  ND_ASSIGN_OR_RETURN(runtime::WeightMap weights, runtime::weights_from_file(file));
  ND_RETURN_IF_ERROR(refuse_unsupported_unet(path, weights, std::nullopt));
  auto detected = detect(weights, meta, EngineOptions{});
  if (!detected.is_ok()) return detected.status().with_context(path);
  ND_RETURN_IF_ERROR(refuse_unsupported_unet(path, weights, detected->adm_channels));
  std::string what = std::string(models::family_name(detected->family)) + " (" +
                     std::string(models::prediction_name(detected->prediction));
  if (meta.count("netdist.family")) what += ", netdist.family metadata";
  return what + ")";
}

}  // namespace netdist
