// Options shared by the commands that execute workflows (run, serve, worker): folders, device, precision,
// and building the node registry over one NodeEnv.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::cli {

struct NodeSetupOptions {
  nodes::NodeEnvOptions env;
  std::string device = "cpu";
  std::string precision;  // "", fp32, fp16, bf16
  std::string noise = "device";
  int threads = 0;
};

// --models-dir, --output-directory, --input-directory, --temp-directory, --device/--cuda-device, --precision,
// --lowvram, --highvram, --vram-limit, --reserve-vram, --max-loaded-models, --noise, --clip-vocab, --threads, --disable-metadata.
void add_node_setup_options(CLI::App& cmd, NodeSetupOptions& options);

struct NodeSetup {
  std::shared_ptr<nodes::NodeEnv> env;
  std::unique_ptr<graph::NodeRegistry> registry;
};

// Checks the device (`--device`/`--cuda-device`): core/device_name.h's spelling, and on CUDA an index below
// the number of visible devices; an error naming the device otherwise (never a silent device 0).
Status check_device(const std::string& device);

// Checks the device, resolves defaults (the embedded model as default checkpoint, CPU threads) and registers
// the nodes.
Result<NodeSetup> make_node_registry(NodeSetupOptions options);

// The embedded model: $NETDIST_MODEL, else models/tiny-emoji.safetensors beside the working directory,
// the executable's ../models, or the source tree's models/. Empty if none exists.
std::string embedded_model_path();

}  // namespace netdist::cli
