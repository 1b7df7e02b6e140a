// The ComfyUI_NetDist node classes (city96/ComfyUI_NetDist 64dd030), with the plugin's class names,
// INPUT_TYPES, defaults, RETURN_TYPES/RETURN_NAMES, titles and categories, so that /object_info lists them as
// the plugin does and its API-format workflows validate and run on netdist:
//   RemoteQueueSimple, RemoteQueueWorker, RemoteChainStart, RemoteChainEnd, FetchRemote (remote dispatch over
//   HTTP to a netdist or ComfyUI server, seed offsets as the plugin's), CombineImageBatch, LoadImageUrl,
//   SaveImageUrl (images over HTTP), LoadLatentNumpy, LoadLatentUrl, SaveLatentNumpy (.npy and ComfyUI
//   .latent files), and LoadCurrentWorkflowJSON (the JSON source RemoteChainStart needs). Also ComfyUI's core
//   ImageBatch, which the plugin's example workflows use to join the local and remote images.
// docs/interop.md "NetDist workflows" says what each does here and how it differs from the plugin.
// Thread-safety: registration happens before the registry is shared; the node implementations are called
// from the thread running their prompt and share only `http` (which must be reentrant) and NodeEnv.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "graph/node_registry.h"
#include "nodes/netdist_remote.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

// REMINFO: where a dispatched job runs. Empty (remote_url "") when nothing was dispatched; FetchRemote then
// returns a black image, as the plugin does.
struct RemoteInfoObject : graph::Object {
  std::string remote_url;
  std::string job_id;
  std::string prompt_id;  // the remote's prompt id (netdist polls /history/{id}; the plugin scans /history)
  std::string type_name() const override { return "REMINFO"; }
  std::string repr() const override;
};

// REMCHAIN: the plugin's remote_chain dict. The plugin mutates one dict along the chain; here every
// RemoteQueueWorker returns an updated copy, which gives the same values to every consumer.
struct RemoteChainObject : graph::Object {
  uint64_t seed = 0;
  int64_t batch = 1;
  Json prompt;             // the workflow to dispatch (API format)
  int64_t seed_offset = 0;
  std::string job_id;
  std::string type_name() const override { return "REMCHAIN"; }
  std::string repr() const override;
};

// JSON: a workflow (API format) as a value.
struct JsonObject : graph::Object {
  Json value;
  std::string type_name() const override { return "JSON"; }
  std::string repr() const override { return value.dump(); }
};

// Registers the classes above. `http` carries every remote call (src/cli passes cluster::http_call).
void register_netdist_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env, HttpFn http);

}  // namespace netdist::nodes
