// Image nodes: SaveImage, PreviewImage (ComfyUI file naming and PNG metadata) and LoadImage.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

void register_image_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

// The next free counter for files named `name_NNNNN_...` in `folder` (ComfyUI's
// folder_paths.get_save_image_path): 1 + the highest NNNNN there, 1 when there is none.
int next_save_counter(const std::filesystem::path& folder, const std::string& name);

struct SavedImage {
  std::string filename;
  std::string subfolder;
};

// ComfyUI's SaveImage: images [N,H,W,3] float in [0,1] → `prefix_00001_.png`, … in output_dir/subfolder
// (the prefix's directory part), continuing the highest counter already there; %width%, %height%, %year%,
// %month%, %day%, %hour%, %minute%, %second% and %batch_num% substituted; pixels truncated as
// np.clip(255·x, 0, 255).astype(uint8); tEXt chunks `prompt` then one per extra_pnginfo key, each Python
// json.dumps text (none when prompt is null and extra_pnginfo empty). Writes are atomic. A prefix that leaves
// output_dir is invalid_argument.
// Writes already-encoded PNG files as `name_NNNNN_.png` (%batch_num% in `name` replaced by the file's
// index) in output_dir/subfolder with ComfyUI's counter: continuing the highest counter there, one number
// per file, in order. Picking the counter and writing are one step under a process-wide lock shared with
// save_images, so concurrent writers in this process never pick the same name. Writes are atomic. A
// subfolder that leaves output_dir, or an empty name or one with a '/', is invalid_argument.
// `prompt_id` (both functions): the prompt the files belong to, passed to the output recorder; empty = not
// recorded.
Result<std::vector<SavedImage>> write_numbered_pngs(const std::string& output_dir, const std::string& subfolder,
                                                    const std::string& name, const std::vector<std::string>& pngs,
                                                    const std::string& prompt_id = "");

Result<std::vector<SavedImage>> save_images(const at::Tensor& images, const std::string& output_dir,
                                            const std::string& filename_prefix, const nlohmann::ordered_json& prompt,
                                            const nlohmann::ordered_json& extra_pnginfo, int compress_level,
                                            const std::string& prompt_id = "");

// Process-wide hook called with (prompt_id, the file's absolute path) just before each file of
// save_images / write_numbered_pngs is written, under the numbering lock, for files with a prompt id. An
// error stops the save before the file exists. `serve --data-dir` records the path in the store
// (store::Store::record_output), so that a crash before the prompt completes leaves a row naming every file
// it may have written. Empty (the default) = nothing is recorded. Set before prompts run.
using OutputRecorder = std::function<Status(const std::string& prompt_id, const std::string& path)>;
void set_output_recorder(OutputRecorder recorder);

}  // namespace netdist::nodes
