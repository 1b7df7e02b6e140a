// The fetching half of "models travel to workers": before a worker runs a task (a shard or a whole prompt,
// shard_runner.h), `prepare` makes every model file its loader nodes name present in this worker's models
// folder (CheckpointLoaderSimple/CheckpointLoader ckpt_name, LoraLoader/LoraLoaderModelOnly lora_name,
// VAELoader vae_name, UpscaleModelLoader model_name; the "embedding:name" words of CLIPTextEncode /
// CLIPTextEncodeSDXL / CLIPTextEncodeSDXLRefiner texts, kind "embedding", matched to the source's embedding
// files as ComfyUI's load_embed finds them: name, name + .safetensors/.pt/.bin, in any subfolder), taking what
// is missing from the model source
// (`--models-from URL`, by default the `--join` coordinator; a server started with --share-models,
// model_share.h):
//  1. the source's list (GET /netdist/v1/models, cached list_ttl) gives the name's kind, sha256 and size;
//  2. a file of this worker with that sha256 (the ModelIndex, any name) is hard-linked (or copied) to the
//     name, so a renamed file is reused and nothing travels;
//  3. otherwise it is downloaded into `<kind folder>/.partial/<sha256>.part` by ranges of chunk_bytes (each
//     appended and flushed to disk, never the whole file in memory), resuming from the partial file's size
//     after a cut; the finished file's SHA-256 is checked before it is renamed into place under the
//     requested name. A mismatch deletes the partial file and starts again; a cut transfer resumes; both at
//     most max_attempts times in all. Then `prepare` fails with kUnavailable naming the model, the digest and
//     the source: a worker fault, so the coordinator tries the task on another worker (shard_runner.h
//     TaskFault). 401/403/404 from the source fail at once (retrying cannot help).
// Progress: a log line per ~10 % with percent and rate, and progress() for the worker's status reply
// ("model_fetch": {"name", "sha256", "bytes_done", "bytes_total", "percent", "bytes_per_second"} or null).
// capability_models() is the capability reply's "models": this worker's checkpoints with their sha256 (null
// while not hashed; never waits for hashing) and, when a source is set, the source's checkpoints this worker
// lacks with "fetch": true, so the coordinator's capability check counts them as runnable here.
// Without a source, prepare() does nothing and the task fails as before when a file is missing.
// Thread-safety: every member may be called from any thread; prepare() calls run one at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "cluster/model_index.h"
#include "cluster/protocol.h"
#include "core/status.h"
#include "nodes/node_env.h"

namespace netdist::cluster {

struct ModelFetchOptions {
  std::string source;      // base URL of the serving server; empty = fetch nothing
  std::string auth_token;  // the cluster token, sent as a bearer token
  std::shared_ptr<const TlsClientContext> tls;
  int max_attempts = 3;
  uint64_t chunk_bytes = uint64_t(8) << 20;
  std::chrono::milliseconds call_timeout{120000};
  std::chrono::milliseconds list_ttl{10000};
};

// A model a task names: kind (model_index.h) and name.
struct ModelRef {
  std::string kind, name;
  bool operator<(const ModelRef& o) const { return kind != o.kind ? kind < o.kind : name < o.name; }
};
// The model files an API-format prompt's loader nodes name (literal string inputs only), sorted, unique.
std::vector<ModelRef> models_named_by(const nlohmann::ordered_json& prompt);

class ModelFetcher {
 public:
  ModelFetcher(std::shared_ptr<ModelIndex> index, std::shared_ptr<nodes::NodeEnv> env, ModelFetchOptions options);

  // See above. OK when every named model is here or neither the source nor this worker has it (validation
  // then names it); kInvalidArgument for a name that is not a plain relative name; kUnavailable when
  // fetching failed.
  Status prepare(const nlohmann::ordered_json& prompt);
  std::vector<protocol::ModelEntry> capability_models();
  nlohmann::ordered_json progress() const;
  const ModelFetchOptions& options() const { return options_; }

 private:
  struct SourceModel {
    std::string kind, name, sha256;
    uint64_t bytes = 0;
  };
  bool have_locally(const ModelRef& ref) const;
  std::string target_path(const ModelRef& ref) const;
  // The source's list, fetched again when older than list_ttl or when `refresh`.
  Result<std::vector<SourceModel>> source_models(bool refresh);
  Status obtain(const SourceModel& model);
  // One download attempt from the partial file's current size; corruption when the digest differs.
  Status download(const SourceModel& model, const std::string& partial);
  void set_progress(const SourceModel* model, uint64_t done, double rate);

  std::shared_ptr<ModelIndex> index_;
  std::shared_ptr<nodes::NodeEnv> env_;
  const ModelFetchOptions options_;
  std::mutex prepare_mutex_;
  mutable std::mutex mutex_;  // guards what follows
  bool source_shares_nothing_ = false;  // its last model list was refused as model_sharing_off
  bool sharing_off_logged_ = false;     // ... and that was said once
  std::vector<SourceModel> source_list_;
  std::optional<std::chrono::steady_clock::time_point> source_listed_;
  nlohmann::ordered_json progress_;  // null when nothing is being fetched
};

}  // namespace netdist::cluster
