#include "nodes/node_env.h"

#include <malloc.h>

#include <algorithm>
#include <filesystem>

namespace netdist::nodes {

namespace fs = std::filesystem;

namespace {

bool is_checkpoint_file(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".safetensors" || ext == ".sft";
}

bool is_upscale_model_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".safetensors" || ext == ".sft" || ext == ".pth" || ext == ".pt";
}

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp";
}

std::vector<std::string> list_files(const fs::path& root, bool recursive, bool (*keep)(const fs::path&)) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  if (recursive) {
    for (auto it =
             fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec) && keep(it->path()))
        // lexically: fs::relative resolves symlinks, and a linked model file must keep its link's name (as
        // ComfyUI lists it), not the target's path.
        out.push_back(it->path().lexically_relative(root).generic_string());
    }
  } else {
    for (const auto& e : fs::directory_iterator(root, ec)) {
      if (e.is_regular_file(ec) && keep(e.path())) out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A name listed from models_dir/<folder>: a plain relative path to a regular file there.
Result<std::string> model_file_path(const std::string& models_dir, const std::string& folder,
                                    const std::string& kind, const std::string& name) {
  if (name.empty() || name.find("..") != std::string::npos || fs::path(name).is_absolute()) {
    return Status::invalid_argument(kind + " name '" + name + "' is not a plain relative name");
  }
  const fs::path p = fs::path(models_dir) / folder / name;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec))
    return Status::not_found(kind + " '" + name + "' not found in " + p.parent_path().string());
  return p.string();
}

}  // namespace

NodeEnv::NodeEnv(NodeEnvOptions options) : options_(std::move(options)) {
  // ComfyUI's embedding_directory is always set: "embedding:name" resolves (or is dropped) against it.
  if (options_.engine.embeddings_dir.empty())
    options_.engine.embeddings_dir = (fs::path(options_.models_dir) / "embeddings").string();
}

std::vector<std::string> NodeEnv::checkpoint_names() const {
  std::vector<std::string> names = local_checkpoint_names();
  std::function<std::vector<std::string>()> remote;
  {
    std::lock_guard<std::mutex> lock(remote_mutex_);
    remote = remote_checkpoints_;
  }
  if (!remote) return names;
  const size_t local = names.size();
  for (std::string& n : remote()) {
    if (std::find(names.begin(), names.begin() + ptrdiff_t(local), n) == names.begin() + ptrdiff_t(local))
      names.push_back(std::move(n));
  }
  return names;
}

void NodeEnv::set_remote_checkpoints(std::function<std::vector<std::string>()> provider) {
  std::lock_guard<std::mutex> lock(remote_mutex_);
  remote_checkpoints_ = std::move(provider);
}

std::vector<std::string> NodeEnv::local_checkpoint_names() const {
  std::vector<std::string> names =
      list_files(fs::path(options_.models_dir) / "checkpoints", true, is_checkpoint_file);
  for (const std::string& n : list_files(options_.models_dir, false, is_checkpoint_file)) {
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  if (!options_.default_checkpoint.empty()) {
    std::string n = fs::path(options_.default_checkpoint).filename().string();
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

Result<std::string> NodeEnv::checkpoint_path(const std::string& name) const {
  if (name.empty() || name.find("..") != std::string::npos || fs::path(name).is_absolute()) {
    return Status::invalid_argument("checkpoint name '" + name + "' is not a plain relative name");
  }
  const fs::path candidates[] = {fs::path(options_.models_dir) / "checkpoints" / name,
                                 fs::path(options_.models_dir) / name};
  std::error_code ec;
  for (const fs::path& p : candidates) {
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  if (!options_.default_checkpoint.empty() && fs::path(options_.default_checkpoint).filename() == name &&
      fs::is_regular_file(options_.default_checkpoint, ec)) {
    return options_.default_checkpoint;
  }
  return Status::not_found("checkpoint '" + name + "' not found in " + candidates[0].parent_path().string() +
                           " or " + options_.models_dir);
}

Result<std::shared_ptr<Model>> NodeEnv::load_checkpoint(const std::string& name) {
  ND_ASSIGN_OR_RETURN(std::string path, checkpoint_path(name));
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_load(loaded_, "checkpoint:" + path, path, load_model);
}

Result<std::shared_ptr<Model>> NodeEnv::cached_load(std::map<std::string, std::shared_ptr<Model>>& cache,
                                                    const std::string& key, const std::string& path,
                                                    Loader loader) {
  recent_.remove(key);
  recent_.push_front(key);
  auto it = cache.find(path);
  if (it != cache.end()) return it->second;
  // Room for the one about to load: drop the least recently used beyond max_loaded_models - 1.
  if (options_.max_loaded_models > 0) {
    while (static_cast<int>(recent_.size()) > options_.max_loaded_models) {
      const std::string victim = recent_.back();
      recent_.pop_back();
      const bool ckpt = victim.rfind("checkpoint:", 0) == 0;
      (ckpt ? loaded_ : loaded_vaes_).erase(victim.substr(victim.find(':') + 1));
    }
#ifdef __GLIBC__
    // Give the freed weights' pages back to the system: glibc keeps freed heap memory (and raises its mmap
    // threshold after large frees), so without this the resident set would not shrink with the cache.
    malloc_trim(0);
#endif
  }
  auto model = loader(path, options_.engine);
  if (!model.is_ok()) {
    recent_.remove(key);
    return model.status();
  }
  cache[path] = *model;
  return *model;
}

size_t NodeEnv::loaded_model_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return loaded_.size() + loaded_vaes_.size();
}

std::vector<std::string> NodeEnv::lora_names() const {
  return list_files(fs::path(options_.models_dir) / "loras", true, is_checkpoint_file);
}

std::vector<std::string> NodeEnv::vae_names() const {
  return list_files(fs::path(options_.models_dir) / "vae", true, is_checkpoint_file);
}

Result<std::string> NodeEnv::lora_path(const std::string& name) const {
  return model_file_path(options_.models_dir, "loras", "LoRA", name);
}

Result<std::string> NodeEnv::vae_path(const std::string& name) const {
  return model_file_path(options_.models_dir, "vae", "VAE", name);
}

Result<std::shared_ptr<Model>> NodeEnv::load_vae(const std::string& name) {
  ND_ASSIGN_OR_RETURN(std::string path, vae_path(name));
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_load(loaded_vaes_, "vae:" + path, path, netdist::load_vae);
}

std::vector<std::string> NodeEnv::upscale_model_names() const {
  return list_files(fs::path(options_.models_dir) / "upscale_models", true, is_upscale_model_file);
}

Result<std::string> NodeEnv::upscale_model_path(const std::string& name) const {
  return model_file_path(options_.models_dir, "upscale_models", "upscale model", name);
}

Result<std::shared_ptr<UpscaleModel>> NodeEnv::load_upscale_model(const std::string& name) {
  ND_ASSIGN_OR_RETURN(std::string path, upscale_model_path(name));
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = loaded_upscale_models_.find(path);
  if (it != loaded_upscale_models_.end()) return it->second;
  ND_ASSIGN_OR_RETURN(std::shared_ptr<UpscaleModel> model, netdist::load_upscale_model(path, options_.engine));
  loaded_upscale_models_[path] = model;
  return model;
}

std::vector<std::string> NodeEnv::input_images() const {
  return list_files(options_.input_dir, false, is_image_file);
}

void NodeEnv::unload_models() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    loaded_.clear();
    loaded_vaes_.clear();
    loaded_upscale_models_.clear();
    recent_.clear();
  }
  free_device_memory(options_.engine.device, true);
}

}  // namespace netdist::nodes
