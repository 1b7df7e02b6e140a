#include "cluster/model_index.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "io/files.h"

namespace netdist::cluster {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCacheFile = ".netdist-model-hashes.json";

struct KindFolder {
  const char* kind;
  const char* folder;
};
constexpr KindFolder kKinds[] = {
    {"checkpoint", "checkpoints"}, {"lora", "loras"},           {"vae", "vae"}, {"upscale", "upscale_models"},
    {"controlnet", "controlnet"},   {"embedding", "embeddings"}};

bool is_model_file(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".safetensors" || ext == ".sft" || ext == ".ckpt" || ext == ".pt" || ext == ".pth" ||
         ext == ".bin";
}

int64_t mtime_ns(const fs::file_time_type& t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// `p` (a file found under `root`) as a ModelFile when it is a model file whose real path stays inside
// `real_root` and whose relative name is a plain one.
std::optional<ModelFile> model_file(const fs::path& models_dir, const fs::path& real_root, const fs::path& folder,
                                    const fs::path& p, const std::string& kind) {
  std::error_code ec;
  if (!is_model_file(p) || !fs::is_regular_file(p, ec)) return std::nullopt;
  // Names are lexical (a symlink keeps its own name, as the loaders list it); the real path is checked below.
  const std::string name = p.lexically_relative(folder).generic_string();
  if (ec || !check_model_name(name).is_ok()) return std::nullopt;
  const fs::path real = fs::canonical(p, ec);
  if (ec) return std::nullopt;
  const std::string inside = fs::relative(real, real_root, ec).generic_string();
  if (ec || inside.empty() || inside.rfind("..", 0) == 0) return std::nullopt;
  ModelFile f;
  f.kind = kind;
  f.name = name;
  f.path = p.string();
  f.rel = p.lexically_relative(models_dir).generic_string();
  f.bytes = fs::file_size(real, ec);
  if (ec) return std::nullopt;
  f.mtime_ns = mtime_ns(fs::last_write_time(real, ec));
  if (ec) return std::nullopt;
  return f;
}

}  // namespace

std::string model_kind_folder(const std::string& kind) {
  for (const KindFolder& k : kKinds) {
    if (kind == k.kind) return k.folder;
  }
  return "";
}

Status check_model_name(const std::string& name) {
  const Status bad = Status::invalid_argument("model name '" + name + "' is not a plain relative file name");
  if (name.empty() || name.front() == '/' || name.find('\\') != std::string::npos ||
      name.find('\0') != std::string::npos)
    return bad;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    if (part.empty() || part.front() == '.') return bad;
    start = end + 1;
  }
  return Status::ok();
}

bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<std::string> sha256_of_file(const std::string& path, const std::atomic<bool>* stop) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("cannot open '" + path + "' to hash it");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return Status::internal("OpenSSL cannot start a SHA-256 digest");
  std::vector<char> buf(1 << 20);
  while (in) {
    if (stop && stop->load()) return Status::cancelled("hashing '" + path + "' stopped");
    in.read(buf.data(), std::streamsize(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), size_t(in.gcount()));
  }
  if (in.bad()) return Status::io_error("cannot read '" + path + "' to hash it");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

ModelIndex::ModelIndex(std::string models_dir) : models_dir_(std::move(models_dir)) { load_cache(); }

ModelIndex::~ModelIndex() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string ModelIndex::cache_path() const { return (fs::path(models_dir_) / kCacheFile).string(); }

void ModelIndex::load_cache() {
  std::error_code ec;
  if (!fs::exists(cache_path(), ec)) return;
  auto text = io::read_file(cache_path());
  const nlohmann::json j = text.is_ok() ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
  if (!j.is_object() || !j.value("files", nlohmann::json()).is_object()) {
    log::warn("models: ignoring the unreadable hash cache {}", cache_path());
    return;
  }
  for (const auto& [rel, e] : j["files"].items()) {
    if (!e.is_object() || !e.value("bytes", nlohmann::json()).is_number_unsigned() ||
        !e.value("mtime_ns", nlohmann::json()).is_number_integer() ||
        !e.value("sha256", nlohmann::json()).is_string() || !is_sha256_hex(e["sha256"].get<std::string>()))
      continue;
    cache_[rel] = CacheEntry{e["bytes"].get<uint64_t>(), e["mtime_ns"].get<int64_t>(), e["sha256"].get<std::string>()};
  }
}

void ModelIndex::save_cache() {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [rel, e] : cache_)
    files[rel] = {{"bytes", e.bytes}, {"mtime_ns", e.mtime_ns}, {"sha256", e.sha256}};
  const nlohmann::json j = {{"version", 1}, {"files", files}};
  std::error_code ec;
  if (!fs::is_directory(models_dir_, ec)) return;
  Status s = io::write_file_atomic(cache_path(), j.dump(1));
  if (!s.is_ok()) log::warn("models: cannot save the hash cache: {}", s.to_string());
}

std::vector<ModelFile> ModelIndex::scan_files() const {
  std::vector<ModelFile> out;
  std::error_code ec;
  const fs::path root(models_dir_);
  if (!fs::is_directory(root, ec)) return out;
  const fs::path real_root = fs::canonical(root, ec);
  if (ec) return out;
  for (const KindFolder& k : kKinds) {
    const fs::path folder = root / k.folder;
    if (!fs::is_directory(folder, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename().string().front() == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (auto f = model_file(root, real_root, folder, it->path(), k.kind)) out.push_back(std::move(*f));
    }
  }
  for (const auto& e : fs::directory_iterator(root, ec)) {
    if (auto f = model_file(root, real_root, root, e.path(), "checkpoint")) {
      const bool listed = std::any_of(out.begin(), out.end(), [&](const ModelFile& m) {
        return m.kind == "checkpoint" && m.name == f->name;
      });
      if (!listed) out.push_back(std::move(*f));
    }
  }
  std::sort(out.begin(), out.end(), [](const ModelFile& a, const ModelFile& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.name < b.name;
  });
  return out;
}

void ModelIndex::rescan() {
  std::lock_guard<std::mutex> one_scan(rescan_mutex_);
  std::vector<ModelFile> found = scan_files();
  std::vector<size_t> to_hash;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < found.size(); ++i) {
      auto it = cache_.find(found[i].rel);
      if (it != cache_.end() && it->second.bytes == found[i].bytes && it->second.mtime_ns == found[i].mtime_ns)
        found[i].sha256 = it->second.sha256;
      else
        to_hash.push_back(i);
    }
    files_ = found;  // listed at once, hashed or not
  }
  int64_t hashed = 0;
  for (size_t i : to_hash) {
    if (stop_) return;
    ModelFile& f = found[i];
    auto sha = sha256_of_file(f.path, &stop_);
    if (!sha.is_ok()) {
      if (sha.status().code() != StatusCode::kCancelled)
        log::warn("models: {}", sha.status().to_string());
      continue;
    }
    f.sha256 = *sha;
    ++hashed;
    files_hashed_++;
    std::lock_guard<std::mutex> lock(mutex_);
    cache_[f.rel] = CacheEntry{f.bytes, f.mtime_ns, f.sha256};
    for (ModelFile& listed : files_) {
      if (listed.rel == f.rel && listed.bytes == f.bytes && listed.mtime_ns == f.mtime_ns) listed.sha256 = f.sha256;
    }
    save_cache();
  }
  if (hashed > 0 || scans_done_ == 0)
    log::info("models: {}: {} model file(s), {} hashed now, {} from the hash cache", models_dir_, found.size(), hashed,
              found.size() - to_hash.size());
  scans_done_++;
}

void ModelIndex::run(std::chrono::milliseconds rescan_every) {
  while (!stop_) {
    rescan();
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_for(lock, rescan_every, [this] { return stop_.load() || poked_; });
    poked_ = false;
  }
}

void ModelIndex::start(std::chrono::milliseconds rescan_every) {
  if (thread_.joinable()) return;
  thread_ = std::thread([this, rescan_every] { run(rescan_every); });
}

void ModelIndex::poke() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    poked_ = true;
  }
  wake_.notify_all();
}

std::vector<ModelFile> ModelIndex::files() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return files_;
}

std::optional<ModelFile> ModelIndex::find_sha256(const std::string& sha256) const {
  std::vector<ModelFile> candidates;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const ModelFile& f : files_) {
      if (!f.sha256.empty() && f.sha256 == sha256) candidates.push_back(f);
    }
  }
  for (const ModelFile& f : candidates) {
    std::error_code ec;
    const uint64_t bytes = fs::file_size(f.path, ec);
    if (ec || bytes != f.bytes) continue;
    if (mtime_ns(fs::last_write_time(f.path, ec)) != f.mtime_ns || ec) continue;
    return f;
  }
  return std::nullopt;
}

std::optional<ModelFile> ModelIndex::find(const std::string& kind, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const ModelFile& f : files_) {
    if (f.kind == kind && f.name == name) return f;
  }
  return std::nullopt;
}

void ModelIndex::add_verified(const std::string& kind, const std::string& name, const std::string& sha256) {
  const fs::path folder = kind == "checkpoint" ? fs::path(models_dir_) / "checkpoints"
                                               : fs::path(models_dir_) / model_kind_folder(kind);
  std::error_code ec;
  const fs::path real_root = fs::canonical(models_dir_, ec);
  if (ec) return;
  auto f = model_file(models_dir_, real_root, folder, folder / name, kind);
  if (!f) return;
  f->sha256 = sha256;
  std::lock_guard<std::mutex> lock(mutex_);
  cache_[f->rel] = CacheEntry{f->bytes, f->mtime_ns, sha256};
  files_.erase(std::remove_if(files_.begin(), files_.end(), [&](const ModelFile& m) { return m.rel == f->rel; }),
               files_.end());
  files_.push_back(*f);
  save_cache();
}

}  // namespace netdist::cluster
