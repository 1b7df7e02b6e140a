// The model files of one models folder (NodeEnvOptions::models_dir) with their SHA-256, for sharing models
// between cluster members (model_share.h serves them, model_fetch.h fetches them):
//   kind "checkpoint"  models_dir/checkpoints/** and model files directly in models_dir (names as
//                      CheckpointLoaderSimple lists them)
//   kind "lora"        models_dir/loras/**        kind "vae"  models_dir/vae/**
//   kind "upscale"     models_dir/upscale_models/**
//   kind "controlnet"  models_dir/controlnet/**
//   kind "embedding"   models_dir/embeddings/** (textual inversions that prompts name as "embedding:x")
// A model file is a regular file named *.safetensors, *.sft, *.ckpt, *.pt, *.pth or *.bin whose real path
// (symlinks resolved) lies inside the models folder; anything else (a symlink leading out, a name with a
// component starting with '.', such as the `.partial/` downloads) is never listed, so never served.
// Hashes are computed on a background thread (1 MiB reads, stopped promptly by the destructor) and cached by
// (relative path, size, mtime) in `models_dir/.netdist-model-hashes.json`, written atomically after each
// file hashed: a restart hashes only files that are new or changed. A file not hashed yet is listed with an
// empty sha256, so a probe never waits for hashing.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace netdist::cluster {

struct ModelFile {
  std::string kind;    // "checkpoint", "lora", "vae", "upscale", "controlnet", "embedding"
  std::string name;    // as the loader node names it: '/'-separated, relative to the kind's folder
  std::string path;    // the file (models_dir joined with the relative path)
  std::string rel;     // relative to models_dir, '/'-separated (the cache key)
  uint64_t bytes = 0;
  int64_t mtime_ns = 0;
  std::string sha256;  // lower-case hex; empty while not hashed yet
};

// The folder below models_dir that holds `kind`'s files; empty for an unknown kind.
std::string model_kind_folder(const std::string& kind);
// A name a loader may ask for: non-empty, relative, '/'-separated, no empty, "." or ".." component, no
// component starting with '.', no backslash or NUL. invalid_argument naming it otherwise.
Status check_model_name(const std::string& name);
// True for 64 lower-case hex digits.
bool is_sha256_hex(const std::string& text);
// The SHA-256 of a file, read in 1 MiB pieces; cancelled when `stop` turns true meanwhile, io_error naming
// the path when it cannot be read.
Result<std::string> sha256_of_file(const std::string& path, const std::atomic<bool>* stop = nullptr);

class ModelIndex {
 public:
  // Loads the hash cache (a missing or unreadable cache is an empty one, logged). Nothing is scanned until
  // start() or rescan().
  explicit ModelIndex(std::string models_dir);
  ~ModelIndex();  // stops the hashing thread (a file being hashed is abandoned)
  ModelIndex(const ModelIndex&) = delete;
  ModelIndex& operator=(const ModelIndex&) = delete;

  // Starts the background thread: scan and hash now, then again every `rescan_every` or when poked.
  void start(std::chrono::milliseconds rescan_every = std::chrono::seconds(30));
  // Scans and hashes on the calling thread (tests, and start()'s thread).
  void rescan();
  // Asks the background thread to rescan soon (a file was added).
  void poke();

  // Every model file found by the last scan, hashed or not, sorted by kind then name.
  std::vector<ModelFile> files() const;
  // A hashed file with this digest whose size and mtime still match the scan; nullopt otherwise.
  std::optional<ModelFile> find_sha256(const std::string& sha256) const;
  // The file of this kind and name from the last scan.
  std::optional<ModelFile> find(const std::string& kind, const std::string& name) const;
  // Records a file this process just wrote and verified (model_fetch.h), so it is not hashed again.
  void add_verified(const std::string& kind, const std::string& name, const std::string& sha256);

  const std::string& models_dir() const { return models_dir_; }
  std::string cache_path() const;
  // Files hashed from their bytes since construction (not taken from the cache): tests check that a
  // restart reuses the cache.
  int64_t files_hashed() const { return files_hashed_.load(); }
  // Completed scans (tests wait for one).
  int64_t scans_done() const { return scans_done_.load(); }

 private:
  struct CacheEntry {
    uint64_t bytes = 0;
    int64_t mtime_ns = 0;
    std::string sha256;
  };
  std::vector<ModelFile> scan_files() const;
  void load_cache();
  void save_cache();  // under mutex_
  void run(std::chrono::milliseconds rescan_every);

  const std::string models_dir_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool poked_ = false;
  std::vector<ModelFile> files_;
  std::map<std::string, CacheEntry> cache_;  // by ModelFile::rel
  std::mutex rescan_mutex_;                  // one scan at a time
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> files_hashed_{0}, scans_done_{0};
  std::thread thread_;
};

}  // namespace netdist::cluster
