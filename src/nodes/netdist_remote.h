// The remote half of the ComfyUI_NetDist node classes (city96/ComfyUI_NetDist 64dd030): how the plugin turns
// the running prompt into the prompt it posts to a remote ComfyUI (core/dispatch.py), and the HTTP calls it
// makes there (GET /queue, POST /queue {"delete"}, POST /interrupt, GET /system_stats, POST /prompt,
// GET /history, GET /view). No libtorch; HTTP goes through an injected HttpFn so that nodes/ needs no
// network library (src/cli wires cluster::http_call).
// Thread-safety: the free functions are pure, except netdist_client_id() (fixed once per process) and
// new_job_id() (atomic); RemoteClient is immutable and may be shared by threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace netdist::nodes {

using Json = nlohmann::ordered_json;

// One HTTP request to a full URL ("http://host:port/path?query").
struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::string body;
  std::string content_type = "application/json";
  std::chrono::milliseconds timeout{4000};
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

// Returns any HTTP status as a response; transport failures (refused, timeout, unsupported scheme) as a
// non-OK status whose message names the URL.
using HttpFn = std::function<Result<HttpResponse>(const HttpRequest&)>;

// NetDist's clean_url: the first of the URLs in `raw` (separated by ',', spaces, tabs or newlines), with
// trailing '/' removed. invalid_argument when `raw` holds no URL.
Result<std::string> clean_remote_url(const std::string& raw);

// "netdist-xxxxx": the plugin's session client id, five random letters chosen once per process.
const std::string& netdist_client_id();
// "netdist-xxxxx-<unix ms>", strictly increasing within the process (the plugin sleeps 0.1 s instead).
std::string new_job_id();

// NetDist's dispatch_to_remote prompt rewrite, applied to a copy of `prompt` (API format):
//  - every node whose class_type starts with "RemoteQueue" gets enabled = "remote" if clean_url of its
//    remote_url equals `remote_url`, else "false";
//  - every FetchRemote node and everything downstream of it is removed; so is every SaveImage and
//    PreviewImage unless `outputs` == "any";
//  - the FetchRemote whose remote_info comes from the matching RemoteQueue node becomes a new PreviewImage
//    {"images": <its final_image link>, "final_output": true} under id max(integer ids) + 1;
//  - if `remote_os` is "nt" the path separators of CheckpointLoaderSimple/CheckpointLoader.ckpt_name,
//    LoraLoader/LoraLoaderModelOnly.lora_name and VAELoader.vae_name become '\'.
// invalid_argument naming the node when a RemoteQueue node's remote_url is not a string.
Result<Json> build_remote_prompt(const Json& prompt, const std::string& remote_url, const std::string& outputs,
                                 const std::string& remote_os);

// One image of a remote history entry ({"filename", "subfolder", "type"}).
struct RemoteImageRef {
  std::string filename;
  std::string subfolder;
  std::string type;
};

// NetDist's get_job_output: the images of the output whose prompt node has "final_output": true, else of
// the last output. `entry` is one /history value.
std::vector<RemoteImageRef> job_output_images(const Json& entry);

// "http://h:p/view?filename=...&subfolder=...&type=..." with the values percent-encoded.
std::string view_url(const std::string& remote_url, const RemoteImageRef& ref);

class RemoteClient {
 public:
  // `job_timeout` bounds wait_for_job (the plugin waits forever for a job the remote lists as queued or
  // running; a remote that never finishes it would hold this prompt, and its queue slot, for good).
  explicit RemoteClient(HttpFn http, std::chrono::milliseconds job_timeout = kDefaultJobTimeout)
      : http_(std::move(http)), job_timeout_(job_timeout) {}
  static constexpr std::chrono::milliseconds kDefaultJobTimeout{std::chrono::hours(2)};

  // clear_remote_queue: deletes this process's pending jobs on the remote and interrupts a running one.
  // `own_prompt_id` is the prompt running here: if the remote lists it as running, the remote is this very
  // server, and the job would queue behind the prompt that waits for it; that is invalid_argument.
  Status clear_queue(const std::string& remote_url, const std::string& own_prompt_id) const;
  // GET /system_stats → system.os ("posix", "nt").
  Result<std::string> remote_os(const std::string& remote_url) const;
  // POST /prompt {"prompt", "client_id", "extra_data": {"job_id"}} → the remote prompt_id. A 4xx/5xx reply is
  // an error quoting the remote's answer (its node_errors say which node the remote rejected).
  Result<std::string> post_prompt(const std::string& remote_url, const Json& prompt, const std::string& job_id) const;
  // Polls the remote until the job is in its history (NetDist's wait_for_job) and returns its output
  // images. Errors: the remote failed the job (its exception message), the job vanished from both queue and
  // history, the remote stopped answering (4 failed polls), `cancelled()` turned true, or the job was not
  // done after job_timeout (unavailable naming the job, the remote and the time; it stays on the remote).
  Result<std::vector<RemoteImageRef>> wait_for_job(const std::string& remote_url, const std::string& prompt_id,
                                                   const std::string& job_id,
                                                   const std::function<bool()>& cancelled) const;
  // GET `url`; a non-2xx reply is unavailable naming the URL and the status.
  Result<std::string> get(const std::string& url, std::chrono::milliseconds timeout) const;
  // POST `body` to `url`; same errors as get().
  Result<std::string> post(const std::string& url, const std::string& body, const std::string& content_type,
                           std::chrono::milliseconds timeout) const;

 private:
  Result<Json> get_json(const std::string& url, std::chrono::milliseconds timeout) const;
  HttpFn http_;
  std::chrono::milliseconds job_timeout_;
};

}  // namespace netdist::nodes
