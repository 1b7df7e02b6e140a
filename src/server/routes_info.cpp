// GET /object_info[/{class}], /system_stats, /embeddings, /extensions, /features, /models[/{folder}].
#include <sys/sysinfo.h>

#include <algorithm>
#include <filesystem>

#include "server/routes.h"

namespace netdist::server {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// folder_paths.folder_names_and_paths keys, in ComfyUI's order.
const char* const kModelFolders[] = {"checkpoints",   "configs",       "loras",         "vae",
                                     "text_encoders", "diffusion_models", "clip_vision", "style_models",
                                     "embeddings",    "diffusers",     "vae_approx",    "controlnet",
                                     "gligen",        "upscale_models", "custom_nodes", "hypernetworks",
                                     "photomaker",    "classifiers",   "model_patches", "audio_encoders"};

bool model_extension(const std::string& folder, const fs::path& file) {
  const std::string ext = file.extension().string();
  if (folder == "configs") return ext == ".yaml";
  static const char* const kExts[] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"};
  return std::find(std::begin(kExts), std::end(kExts), ext) != std::end(kExts);
}

// folder_paths.get_filename_list: relative paths under <models_dir>/<folder>, sorted.
ordered_json list_model_files(const ServerState& state, const std::string& folder) {
  ordered_json files = ordered_json::array();
  if (state.options().models_dir.empty()) return files;
  const fs::path root = fs::path(state.options().models_dir) / folder;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return files;
  std::vector<std::string> names;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec) || !model_extension(folder, it->path())) continue;
    names.push_back(it->path().lexically_relative(root).string());
  }
  std::sort(names.begin(), names.end());
  for (auto& n : names) files.push_back(std::move(n));
  return files;
}

Response system_stats(ServerState& state) {
  struct sysinfo info {};
  uint64_t ram_total = 0, ram_free = 0;
  if (sysinfo(&info) == 0) {
    ram_total = uint64_t(info.totalram) * info.mem_unit;
    ram_free = uint64_t(info.freeram + info.bufferram) * info.mem_unit;
  }
  const ServerOptions& o = state.options();
  ordered_json argv = ordered_json::array();
  for (const auto& a : o.argv) argv.push_back(a);
  ordered_json system = {{"os", "posix"},
                         {"ram_total", ram_total},
                         {"ram_free", ram_free},
                         {"comfyui_version", o.comfyui_version},
                         {"python_version", o.python_version},
                         {"pytorch_version", o.pytorch_version},
                         {"embedded_python", false},
                         {"argv", argv},
                         {"netdist_version", NETDIST_VERSION}};
  ordered_json devices = state.backend().system_stats_devices();
  if (!devices.is_array()) devices = ordered_json::array();
  return json_response({{"system", system}, {"devices", devices}});
}

}  // namespace

std::optional<Response> route_info(ServerState& state, const Request& request, const std::string& path) {
  if (request.method != "GET" && request.method != "HEAD") return std::nullopt;
  if (path == "/object_info") return json_response(state.backend().object_info());
  if (path.rfind("/object_info/", 0) == 0 && path.size() > 13) {
    const std::string node_class = url_decode(path.substr(13), false);
    const ordered_json all = state.backend().object_info();
    ordered_json out = ordered_json::object();
    if (all.is_object() && all.contains(node_class)) out[node_class] = all[node_class];
    return json_response(out);
  }
  if (path == "/system_stats") return system_stats(state);
  if (path == "/embeddings") {
    ordered_json names = ordered_json::array();
    for (const auto& f : list_model_files(state, "embeddings")) names.push_back(fs::path(f.get<std::string>()).replace_extension().string());
    return json_response(names);
  }
  if (path == "/extensions") return json_response(ordered_json::array());
  if (path == "/features") return json_response(state.feature_flags());
  if (path == "/models") {
    ordered_json folders = ordered_json::array();
    for (const char* f : kModelFolders) folders.push_back(f);
    return json_response(folders);
  }
  if (path.rfind("/models/", 0) == 0 && path.size() > 8 && path.find('/', 8) == std::string::npos) {
    const std::string folder = url_decode(path.substr(8), false);
    if (std::find(std::begin(kModelFolders), std::end(kModelFolders), folder) == std::end(kModelFolders))
      return empty_response(404);
    return json_response(list_model_files(state, folder));
  }
  return std::nullopt;
}

}  // namespace netdist::server
