#include "engine/text/embeddings.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <vector>

#include "core/log.h"
#include "engine/runtime/tensor_io.h"

namespace netdist::text {

namespace fs = std::filesystem;

namespace {

// `dir` and every folder below it: the root first, then the others sorted.
std::vector<fs::path> embedding_folders(const fs::path& dir) {
  std::vector<fs::path> out = {dir};
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  std::vector<fs::path> below;
  fs::recursive_directory_iterator it(
      dir, fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied,
      ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_directory(e2)) below.push_back(it->path());
    if (below.size() > 10000) break;  // a symlink loop
  }
  std::sort(below.begin(), below.end());
  out.insert(out.end(), below.begin(), below.end());
  return out;
}

bool embedding_inside(const fs::path& dir, const fs::path& path) {
  const fs::path rel =
      fs::absolute(path).lexically_normal().lexically_relative(fs::absolute(dir).lexically_normal());
  return !rel.empty() && *rel.begin() != "..";
}

bool embedding_is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string embedding_lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// load_embed's choice of tensor among a safetensors file's (keys in sorted order, as safetensors lists them).
at::Tensor embedding_pick(const std::map<std::string, at::Tensor>& embed, const std::string& key) {
  auto it = embed.find(key);
  if (it != embed.end()) return it->second;
  for (const std::string& suffix : {std::string(".string_to_param.*"), "." + key}) {
    std::vector<at::Tensor> bundled;
    for (const auto& [k, v] : embed) {
      if (k.starts_with("bundle_emb.") && k.size() >= suffix.size() &&
          k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0)
        bundled.push_back(v);
    }
    if (!bundled.empty()) return at::cat(bundled, 0);
  }
  return embed.empty() ? at::Tensor() : embed.begin()->second;
}

}  // namespace

std::string embedding_key_for(const std::string& encoder_name) {
  return encoder_name == "clip_g" ? "clip_g" : "clip_l";
}

std::optional<std::string> find_embedding_file(const std::string& dir, const std::string& name) {
  if (dir.empty() || name.empty()) return std::nullopt;
  for (const fs::path& folder : embedding_folders(dir)) {
    const fs::path path = fs::absolute(folder / name).lexically_normal();
    if (!embedding_inside(folder, path)) continue;
    if (embedding_is_file(path)) return path.string();
    for (const char* ext : {".safetensors", ".pt", ".bin"}) {
      fs::path candidate = path;
      candidate += ext;
      if (embedding_is_file(candidate)) return candidate.string();
    }
  }
  return std::nullopt;
}

Result<std::optional<EmbeddingVectors>> load_embedding(const std::string& dir, const std::string& name,
                                                       const std::string& key) {
  const std::optional<std::string> file = find_embedding_file(dir, name);
  if (!file) return std::optional<EmbeddingVectors>();
  if (!embedding_lower(*file).ends_with(".safetensors")) {
    return Status::unsupported(
        "embedding:" + name + " is '" + *file +
        "', a pickle (.pt/.bin) that netdist does not load; convert it to .safetensors");
  }
  auto weights = runtime::load_safetensors(*file, runtime::LoadDtype::kFloat32);
  if (!weights.is_ok()) {
    log::warn("{}\n\nerror loading embedding, skipping loading: {}", weights.status().message(), name);
    return std::optional<EmbeddingVectors>();
  }
  std::map<std::string, at::Tensor> sorted(weights->begin(), weights->end());
  at::Tensor t = embedding_pick(sorted, key);
  if (!t.defined()) {
    log::warn("embedding file '{}' holds no tensor\n\nerror loading embedding, skipping loading: {}", *file,
              name);
    return std::optional<EmbeddingVectors>();
  }
  if (t.dim() < 1 || t.dim() > 2 || t.numel() == 0) {
    return Status::invalid_argument("embedding:" + name + " ('" + *file + "') holds a tensor of rank " +
                                    std::to_string(t.dim()) +
                                    "; an embedding is [vectors, width] or [width]");
  }
  t = t.to(at::kFloat).contiguous().reshape({t.dim() == 1 ? 1 : t.size(0), t.size(-1)});
  EmbeddingVectors v;
  v.rows = t.size(0);
  v.dim = t.size(1);
  v.data.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  return std::optional<EmbeddingVectors>(std::move(v));
}

}  // namespace netdist::text
