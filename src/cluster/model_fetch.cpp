#include "cluster/model_fetch.h"

#include "engine/text/embeddings.h"
#include "engine/text/tokenize_prompt.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "cluster/protocol.h"
#include "core/log.h"

namespace netdist::cluster {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

struct Loader {
  const char* class_type;
  const char* input;
  const char* kind;
};
constexpr Loader kLoaders[] = {{"CheckpointLoaderSimple", "ckpt_name", "checkpoint"},
                               {"CheckpointLoader", "ckpt_name", "checkpoint"},
                               {"LoraLoader", "lora_name", "lora"},
                               {"LoraLoaderModelOnly", "lora_name", "lora"},
                               {"VAELoader", "vae_name", "vae"},
                               {"UpscaleModelLoader", "model_name", "upscale"},
                               {"ControlNetLoader", "control_net_name", "controlnet"},
                               {"DiffControlNetLoader", "control_net_name", "controlnet"}};

// The text encoders whose prompts may name textual-inversion embeddings ("embedding:name").
constexpr std::pair<const char*, const char*> kEmbeddingTexts[] = {{"CLIPTextEncode", "text"},
                                                                    {"CLIPTextEncodeSDXL", "text_g"},
                                                                    {"CLIPTextEncodeSDXL", "text_l"},
                                                                    {"CLIPTextEncodeSDXLRefiner", "text"}};

// Whether the source's embedding file `file` is what load_embed finds for `name` (engine/text/embeddings.h):
// the name itself or with .safetensors/.pt/.bin, in the embeddings folder or any folder below it.
bool fetch_embedding_matches(const std::string& file, const std::string& name) {
  for (const char* ext : {"", ".safetensors", ".pt", ".bin"}) {
    const std::string n = name + ext;
    if (file == n) return true;
    if (file.size() > n.size() && file.compare(file.size() - n.size(), n.size(), n) == 0 &&
        file[file.size() - n.size() - 1] == '/')
      return true;
  }
  return false;
}

std::string short_sha(const std::string& sha) { return sha.substr(0, 12); }

double mb(uint64_t bytes) { return double(bytes) / 1e6; }

// "bytes a-b/total" → (a, b, total).
std::optional<std::tuple<uint64_t, uint64_t, uint64_t>> parse_content_range(const std::string& value) {
  unsigned long long a = 0, b = 0, total = 0;
  if (std::sscanf(value.c_str(), "bytes %llu-%llu/%llu", &a, &b, &total) != 3 || b < a) return std::nullopt;
  return std::make_tuple(uint64_t(a), uint64_t(b), uint64_t(total));
}

std::string reply_header(const HttpReply& reply, const std::string& name) {
  for (const auto& [n, v] : reply.headers) {
    if (n == name) return v;
  }
  return "";
}

// A reply status that retrying cannot change: the token, the sharing switch or the digest.
Status refusal(const std::string& what, const HttpReply& reply) {
  const std::string body = reply.body.substr(0, 300);
  if (reply.status == 401 || reply.status == 403)
    return Status::unauthenticated(what + " refused (" + std::to_string(reply.status) + "): " + body);
  if (reply.status == 404) return Status::not_found(what + ": not found at the source: " + body);
  return Status::unavailable(what + ": HTTP " + std::to_string(reply.status) + ": " + body);
}

Status write_all(int fd, const std::string& bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::io_error("cannot write '" + path + "': " + std::strerror(errno));
    done += size_t(n);
  }
  if (::fdatasync(fd) != 0) return Status::io_error("cannot sync '" + path + "': " + std::strerror(errno));
  return Status::ok();
}

}  // namespace

std::vector<ModelRef> models_named_by(const Json& prompt) {
  std::set<ModelRef> out;
  if (!prompt.is_object()) return {};
  for (const auto& [id, node] : prompt.items()) {
    if (!node.is_object() || !node.value("class_type", Json()).is_string()) continue;
    const std::string cls = node["class_type"].get<std::string>();
    const Json inputs = node.value("inputs", Json::object());
    if (!inputs.is_object()) continue;
    for (const Loader& l : kLoaders) {
      if (cls != l.class_type) continue;
      const Json name = inputs.value(l.input, Json());
      if (name.is_string()) out.insert(ModelRef{l.kind, name.get<std::string>()});
    }
    for (const auto& [text_class, input] : kEmbeddingTexts) {
      if (cls != text_class) continue;
      const Json text = inputs.value(input, Json());
      if (!text.is_string()) continue;
      for (std::string& name : text::embedding_names_in(text.get<std::string>()))
        out.insert(ModelRef{"embedding", std::move(name)});
    }
  }
  return {out.begin(), out.end()};
}

ModelFetcher::ModelFetcher(std::shared_ptr<ModelIndex> index, std::shared_ptr<nodes::NodeEnv> env,
                           ModelFetchOptions options)
    : index_(std::move(index)), env_(std::move(env)), options_(std::move(options)) {}

bool ModelFetcher::have_locally(const ModelRef& ref) const {
  if (ref.kind == "checkpoint") return env_->checkpoint_path(ref.name).is_ok();
  if (ref.kind == "lora") return env_->lora_path(ref.name).is_ok();
  if (ref.kind == "vae") return env_->vae_path(ref.name).is_ok();
  if (ref.kind == "embedding")
    return text::find_embedding_file(env_->options().engine.embeddings_dir, ref.name).has_value();
  std::error_code ec;
  return fs::is_regular_file(target_path(ref), ec);
}

std::string ModelFetcher::target_path(const ModelRef& ref) const {
  return (fs::path(index_->models_dir()) / model_kind_folder(ref.kind) / ref.name).string();
}

namespace {
// A 403 whose error type says the source shares no models (model_share.cpp's refusal).
bool source_shares_nothing(const std::string& body) {
  const Json j = Json::parse(body, nullptr, false);
  const Json* error = j.is_object() && j.contains("error") ? &j["error"] : nullptr;
  return error && error->is_object() && error->value("type", Json()).is_string() &&
         (*error)["type"].get<std::string>() == protocol::kModelSharingOff;
}
}  // namespace

Result<std::vector<ModelFetcher::SourceModel>> ModelFetcher::source_models(bool refresh) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!refresh && source_listed_ && Clock::now() - *source_listed_ < options_.list_ttl) return source_list_;
  }
  HttpCall call;
  call.target = protocol::path(protocol::Route::models);
  call.auth_token = options_.auth_token;
  call.tls = options_.tls;
  call.timeout = std::chrono::milliseconds(10000);
  ND_ASSIGN_OR_RETURN(HttpReply reply, http_call(options_.source, call));
  if (reply.status == 403 && source_shares_nothing(reply.body)) {
    std::lock_guard<std::mutex> lock(mutex_);
    source_shares_nothing_ = true;
  }
  if (reply.status != 200) return refusal("model list of " + options_.source, reply);
  auto listed = protocol::model_list_from_json(Json::parse(reply.body, nullptr, false));
  if (!listed.is_ok()) return Status::corruption("model list of " + options_.source + ": " + listed.status().message());
  std::vector<SourceModel> out;
  for (const protocol::ModelEntry& m : listed->models) {
    if (m.kind.empty()) continue;
    SourceModel s{m.kind, m.name, m.sha256.value_or(""), m.bytes};
    if (model_kind_folder(s.kind).empty() || !check_model_name(s.name).is_ok() ||
        (!s.sha256.empty() && !is_sha256_hex(s.sha256)))
      continue;
    out.push_back(std::move(s));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  source_shares_nothing_ = false;
  source_list_ = out;
  source_listed_ = Clock::now();
  return out;
}

Status ModelFetcher::prepare(const Json& prompt) {
  if (options_.source.empty()) return Status::ok();
  std::lock_guard<std::mutex> one_at_a_time(prepare_mutex_);
  for (const ModelRef& ref : models_named_by(prompt)) {
    if (have_locally(ref)) continue;
    // An embedding word that is no file name is left to the tokenizer (which warns and drops it).
    if (ref.kind == "embedding" && !check_model_name(ref.name).is_ok()) continue;
    ND_RETURN_IF_ERROR(check_model_name(ref.name));
    std::optional<SourceModel> found;
    for (bool refresh : {false, true}) {
      auto list = source_models(refresh);
      if (!list.is_ok())
        return Status::unavailable(ref.kind + " '" + ref.name + "' is not here and the model source failed: " +
                                   list.status().message());
      for (const SourceModel& m : *list) {
        if (m.kind == ref.kind && m.name == ref.name) found = m;
        if (!found && ref.kind == "embedding" && m.kind == ref.kind && fetch_embedding_matches(m.name, ref.name))
          found = m;
      }
      if (found && !found->sha256.empty()) break;
    }
    if (!found) continue;  // nobody has it: validation names the missing file
    if (found->sha256.empty())
      return Status::unavailable(ref.kind + " '" + ref.name + "' is not here and " + options_.source +
                                 " has not hashed it yet");
    ND_RETURN_IF_ERROR(obtain(*found));
  }
  return Status::ok();
}

Status ModelFetcher::obtain(const SourceModel& m) {
  const std::string what = m.kind + " '" + m.name + "' (sha256 " + m.sha256 + ", " + std::to_string(m.bytes) +
                           " bytes) from " + options_.source;
  const fs::path target = target_path({m.kind, m.name});
  const fs::path folder = fs::path(index_->models_dir()) / model_kind_folder(m.kind);
  const fs::path partial_dir = folder / ".partial";
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  fs::create_directories(partial_dir, ec);
  if (ec) return Status::unavailable(what + ": cannot create " + partial_dir.string() + ": " + ec.message());
  const std::string partial = (partial_dir / (m.sha256 + ".part")).string();
  if (auto local = index_->find_sha256(m.sha256)) {
    const std::string staged = partial + ".link";
    fs::remove(staged, ec);
    fs::create_hard_link(local->path, staged, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(local->path, staged, ec);
    }
    if (!ec) fs::rename(staged, target, ec);
    if (!ec) {
      log::info("models: {} '{}': the same file (sha256 {}) is here as '{}'; linked", m.kind, m.name,
                short_sha(m.sha256), local->name);
      index_->add_verified(m.kind, m.name, m.sha256);
      return Status::ok();
    }
  }
  Status last;
  int attempt = 1;
  for (; attempt <= options_.max_attempts; ++attempt) {
    last = download(m, partial);
    if (last.is_ok()) break;
    if (last.code() == StatusCode::kUnauthenticated || last.code() == StatusCode::kNotFound) break;
    if (last.code() == StatusCode::kCorruption) fs::remove(partial, ec);
    log::warn("models: {}: attempt {} of {} failed: {}{}", what, attempt, options_.max_attempts, last.message(),
              attempt < options_.max_attempts
                  ? (last.code() == StatusCode::kCorruption ? "; downloading again" : "; resuming")
                  : "");
    if (attempt < options_.max_attempts) std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
  set_progress(nullptr, 0, 0);
  if (!last.is_ok())
    return Status::unavailable(what + ": not fetched after " + std::to_string(std::min(attempt, options_.max_attempts)) +
                               " attempt(s): " + last.message());
  fs::rename(partial, target, ec);
  if (ec) return Status::unavailable(what + ": cannot move it to " + target.string() + ": " + ec.message());
  index_->add_verified(m.kind, m.name, m.sha256);
  log::info("models: {}: fetched and verified, now {}", what, target.string());
  return Status::ok();
}

Status ModelFetcher::download(const SourceModel& m, const std::string& partial) {
  std::error_code ec;
  uint64_t offset = fs::exists(partial, ec) ? fs::file_size(partial, ec) : 0;
  if (ec || offset > m.bytes) {
    fs::remove(partial, ec);
    offset = 0;
  }
  if (offset > 0)
    log::info("models: {} '{}': resuming at byte {} of {}", m.kind, m.name, offset, m.bytes);
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io_error("cannot open '" + partial + "': " + std::strerror(errno));
  const auto started = Clock::now();
  const uint64_t first_offset = offset;
  int decile = int(m.bytes ? offset * 10 / m.bytes : 10);
  Status s;
  while (s.is_ok() && offset < m.bytes) {
    HttpCall call;
    call.target = protocol::model_path(m.sha256);
    call.auth_token = options_.auth_token;
    call.tls = options_.tls;
    call.timeout = options_.call_timeout;
    const uint64_t last = std::min(m.bytes, offset + options_.chunk_bytes) - 1;
    call.headers = {{"Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(last)}};
    auto reply = http_call(options_.source, call);
    if (!reply.is_ok()) {
      s = Status::unavailable("transfer cut at byte " + std::to_string(offset) + ": " + reply.status().message());
      break;
    }
    if (reply->status != 206) {
      s = refusal("range at byte " + std::to_string(offset), *reply);
      break;
    }
    auto range = parse_content_range(reply_header(*reply, "content-range"));
    if (!range || std::get<0>(*range) != offset || std::get<2>(*range) != m.bytes ||
        std::get<1>(*range) - std::get<0>(*range) + 1 != reply->body.size() || reply->body.empty()) {
      s = Status::unavailable("the source answered byte " + std::to_string(offset) + " with Content-Range '" +
                              reply_header(*reply, "content-range") + "' and " +
                              std::to_string(reply->body.size()) + " bytes");
      break;
    }
    s = write_all(fd, reply->body, partial);
    if (!s.is_ok()) break;
    offset += reply->body.size();
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    const double rate = seconds > 0 ? double(offset - first_offset) / seconds : 0;
    set_progress(&m, offset, rate);
    if (int(offset * 10 / m.bytes) > decile || offset == m.bytes) {
      decile = int(offset * 10 / m.bytes);
      log::info("models: fetching {} '{}' (sha256 {}): {}% ({:.1f} of {:.1f} MB) at {:.1f} MB/s", m.kind, m.name,
                short_sha(m.sha256), int(offset * 100 / m.bytes), mb(offset), mb(m.bytes), mb(uint64_t(rate)));
    }
  }
  ::close(fd);
  ND_RETURN_IF_ERROR(s);
  ND_ASSIGN_OR_RETURN(std::string sha, sha256_of_file(partial));
  if (sha != m.sha256)
    return Status::corruption("sha256 mismatch: the " + std::to_string(m.bytes) + " bytes received hash to " + sha);
  return Status::ok();
}

void ModelFetcher::set_progress(const SourceModel* m, uint64_t done, double rate) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!m) {
    progress_ = nullptr;
    return;
  }
  progress_ = protocol::to_json(protocol::FetchProgress{m->kind, m->name, m->sha256, done, m->bytes, rate});
}

Json ModelFetcher::progress() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return progress_;
}

std::vector<protocol::ModelEntry> ModelFetcher::capability_models() {
  std::vector<protocol::ModelEntry> models;
  std::set<std::string> here;
  for (const std::string& name : env_->local_checkpoint_names()) {
    auto path = env_->checkpoint_path(name);
    if (!path.is_ok()) continue;
    here.insert(name);
    protocol::ModelEntry m;
    m.name = name;
    if (auto f = index_->find("checkpoint", name)) {
      m.bytes = f->bytes;
      if (!f->sha256.empty()) m.sha256 = f->sha256;
    } else {
      std::error_code ec;
      const uintmax_t size = fs::file_size(*path, ec);
      m.bytes = ec ? 0 : size;
    }
    models.push_back(std::move(m));
  }
  if (options_.source.empty()) return models;
  auto list = source_models(false);
  if (!list.is_ok()) {
    // A source without --share-models (e.g. a coordinator whose local workers read its own folder) is no
    // fault: said once, at info level; other failures are warned each time.
    std::lock_guard<std::mutex> lock(mutex_);
    if (!source_shares_nothing_)
      log::warn("models: cannot list the models of {}: {}", options_.source, list.status().message());
    else if (!sharing_off_logged_)
      log::info("models: {} does not share its models (--share-models); this worker offers its own only",
                options_.source);
    sharing_off_logged_ = sharing_off_logged_ || source_shares_nothing_;
    return models;
  }
  for (const SourceModel& s : *list) {
    if (s.kind != "checkpoint" || here.count(s.name)) continue;
    protocol::ModelEntry m;
    m.name = s.name;
    if (!s.sha256.empty()) m.sha256 = s.sha256;
    m.bytes = s.bytes;
    m.fetch = true;
    models.push_back(std::move(m));
  }
  return models;
}

}  // namespace netdist::cluster
