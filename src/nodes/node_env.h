// What node implementations share: folders (ComfyUI's layout), engine options, and the cache of loaded
// checkpoints (weights are loaded once and shared by every prompt that names the same file).
// Thread-safety: every member function may be called from any thread.
#pragma once

#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "netdist/engine.h"
#include "netdist/upscale_model.h"

namespace netdist::nodes {

struct NodeEnvOptions {
  std::string models_dir = "models";  // checkpoints/, loras/, vae/ below it, or files directly
  std::string output_dir = "output";
  std::string input_dir = "input";
  std::string temp_dir = "temp";
  std::string default_checkpoint;  // extra checkpoint always listed (the embedded model)
  EngineOptions engine;
  bool disable_metadata = false;  // --disable-metadata: no PNG text chunks
  int max_loaded_models = 0;      // --max-loaded-models: checkpoints + VAEs kept loaded; 0 = any
};

class NodeEnv {
 public:
  explicit NodeEnv(NodeEnvOptions options);

  const NodeEnvOptions& options() const { return options_; }

  // Checkpoint names as CheckpointLoaderSimple lists them: local_checkpoint_names(), then the names the
  // remote-checkpoint provider gives that are not among them.
  std::vector<std::string> checkpoint_names() const;
  // The files here: under models_dir/checkpoints (recursive, '/'-separated relative paths), then
  // *.safetensors directly in models_dir, then the default checkpoint's file name. Sorted within each source.
  std::vector<std::string> local_checkpoint_names() const;
  // A coordinator lists (and so validates) the checkpoints its workers have, also those it lacks itself:
  // `provider` gives their names (sorted). Loading one still needs the file here.
  void set_remote_checkpoints(std::function<std::vector<std::string>()> provider);
  // The path a listed name refers to; not_found naming the folders searched otherwise.
  Result<std::string> checkpoint_path(const std::string& name) const;
  // Loads (or returns the already loaded) model for a checkpoint name. With max_loaded_models N, loading a
  // model that is not cached first drops the least recently used checkpoints and VAEs beyond N - 1 from the
  // cache (their memory goes when the last node output holding them does). On a GPU, which of the loaded
  // models' weights sit on the device is the engine's memory manager's choice (engine.h configure_memory).
  Result<std::shared_ptr<Model>> load_checkpoint(const std::string& name);
  // Files under models_dir/loras and models_dir/vae (recursive, '/'-separated, sorted): LoraLoader's
  // lora_name and VAELoader's vae_name.
  std::vector<std::string> lora_names() const;
  std::vector<std::string> vae_names() const;
  // The path a listed LoRA / VAE name refers to; not_found naming the folder otherwise.
  Result<std::string> lora_path(const std::string& name) const;
  Result<std::string> vae_path(const std::string& name) const;
  // Loads (or returns the already loaded) standalone VAE for a vae name.
  Result<std::shared_ptr<Model>> load_vae(const std::string& name);
  // Files under models_dir/upscale_models (recursive, '/'-separated, sorted): UpscaleModelLoader's
  // model_name. .pth/.pt pickles are listed as ComfyUI lists them; loading one is refused with advice.
  std::vector<std::string> upscale_model_names() const;
  Result<std::string> upscale_model_path(const std::string& name) const;
  // Loads (or returns the already loaded) upscale model for a model_name; unload_models drops them.
  Result<std::shared_ptr<UpscaleModel>> load_upscale_model(const std::string& name);
  // Image files in input_dir (sorted), as LoadImage lists them.
  std::vector<std::string> input_images() const;
  // Drops every loaded model not referenced elsewhere and moves the device's idle weights to RAM (POST
  // /free).
  void unload_models();
  // Checkpoints and VAEs in the cache (tests, /system_stats).
  size_t loaded_model_count() const;

 private:
  NodeEnvOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Model>> loaded_;       // checkpoints by path
  std::map<std::string, std::shared_ptr<Model>> loaded_vaes_;  // VAE files by path
  std::map<std::string, std::shared_ptr<UpscaleModel>> loaded_upscale_models_;  // by path
  std::list<std::string> recent_;  // "checkpoint:PATH" / "vae:PATH", most recently used first
  using Loader = Result<std::shared_ptr<Model>> (*)(const std::string&, const EngineOptions&);
  // Under mutex_: the cached model at `path` or a new one from `loader`, keeping max_loaded_models.
  Result<std::shared_ptr<Model>> cached_load(std::map<std::string, std::shared_ptr<Model>>& cache,
                                             const std::string& key, const std::string& path, Loader loader);
  // Its own lock: mutex_ is held while a checkpoint loads (seconds), and listing must not wait for that.
  mutable std::mutex remote_mutex_;
  std::function<std::vector<std::string>()> remote_checkpoints_;
};

}  // namespace netdist::nodes
