#include "cluster/model_share.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "cluster/protocol.h"
#include "core/log.h"

namespace netdist::cluster {

namespace {

// NETDIST_TEST_MODEL_FAULTS (model_share.h), read once per process.
struct TestFaults {
  std::atomic<bool> corrupt_once{false}, cut_once{false};
  uint64_t chunk = 0;
};

TestFaults& test_faults() {
  static TestFaults* faults = [] {
    auto* f = new TestFaults;
    const char* env = std::getenv("NETDIST_TEST_MODEL_FAULTS");
    std::stringstream ss(env ? env : "");
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item == "corrupt-once") f->corrupt_once = true;
      if (item == "cut-once") f->cut_once = true;
      if (item.rfind("chunk=", 0) == 0) f->chunk = std::strtoull(item.c_str() + 6, nullptr, 10);
    }
    return f;
  }();
  return *faults;
}

// "bytes=a-b" / "bytes=a-" → [first, last] within a file of `size` bytes; nullopt when unsatisfiable or
// malformed (one range only).
std::optional<std::pair<uint64_t, uint64_t>> parse_range(const std::string& header, uint64_t size) {
  const std::string prefix = "bytes=";
  if (header.rfind(prefix, 0) != 0) return std::nullopt;
  const std::string spec = header.substr(prefix.size());
  const size_t dash = spec.find('-');
  if (dash == std::string::npos || dash == 0 || spec.find(',') != std::string::npos) return std::nullopt;
  const auto number = [](const std::string& s, uint64_t& out) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::strtoull(s.c_str(), nullptr, 10);
    return true;
  };
  uint64_t first = 0, last = size == 0 ? 0 : size - 1;
  if (!number(spec.substr(0, dash), first)) return std::nullopt;
  if (dash + 1 < spec.size() && !number(spec.substr(dash + 1), last)) return std::nullopt;
  if (first >= size || last < first) return std::nullopt;
  return std::make_pair(first, std::min(last, size - 1));
}

server::Response list_models(const ModelIndex& index) {
  protocol::ModelList list;
  for (const ModelFile& f : index.files()) {
    list.pending += f.sha256.empty();
    protocol::ModelEntry e;
    e.kind = f.kind;
    e.name = f.name;
    if (!f.sha256.empty()) e.sha256 = f.sha256;
    e.bytes = f.bytes;
    list.models.push_back(std::move(e));
  }
  return server::json_response(protocol::to_json(list));
}

server::Response serve_model(const ModelIndex& index, const ModelShareOptions& options, const std::string& sha,
                             const server::Request& req) {
  if (!is_sha256_hex(sha))
    return server::error_response(400, "invalid_model_hash",
                                  "'" + sha + "' is not a SHA-256 digest (64 lower-case hex digits)");
  const std::optional<ModelFile> file = index.find_sha256(sha);
  if (!file) return server::error_response(404, "model_not_found", "no shared model file has sha256 " + sha);
  TestFaults& faults = test_faults();
  const uint64_t max_chunk = faults.chunk > 0 ? faults.chunk : std::max<uint64_t>(1, options.max_chunk);
  uint64_t first = 0, last = file->bytes == 0 ? 0 : file->bytes - 1;
  const std::optional<std::string> range_header = req.header("range");
  if (range_header) {
    auto range = parse_range(*range_header, file->bytes);
    if (!range) {
      server::Response r = server::error_response(
          416, "range_not_satisfiable",
          "range '" + *range_header + "' is not within the " + std::to_string(file->bytes) + " bytes of " + sha);
      r.headers.emplace_back("Content-Range", "bytes */" + std::to_string(file->bytes));
      return r;
    }
    first = range->first;
    last = std::min(range->second, first + max_chunk - 1);
  } else if (file->bytes > max_chunk) {
    return server::error_response(416, "range_required",
                                  "model " + sha + " has " + std::to_string(file->bytes) +
                                      " bytes; files over " + std::to_string(max_chunk) +
                                      " bytes are served by range: send 'Range: bytes=a-b'");
  }
  if (first > 0 && faults.cut_once.exchange(false)) {
    log::warn("models: test: cutting the transfer of {} at byte {}", sha, first);
    return server::error_response(503, "model_transfer_cut", "test: transfer cut (NETDIST_TEST_MODEL_FAULTS)");
  }
  server::Response r;
  r.status = range_header ? 206 : 200;
  r.content_type = "application/octet-stream";
  const uint64_t length = file->bytes == 0 ? 0 : last - first + 1;
  r.body.resize(length);
  std::ifstream in(file->path, std::ios::binary);
  in.seekg(std::streamoff(first));
  if (length > 0 && (!in || !in.read(r.body.data(), std::streamsize(length))))
    return server::error_response(500, "model_read_failed", "cannot read model file for sha256 " + sha);
  if (length > 0 && faults.corrupt_once.exchange(false)) {
    r.body[0] = char(r.body[0] ^ 0x5a);
    log::warn("models: test: corrupted byte {} of {}", first, sha);
  }
  if (range_header)
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" +
                                                std::to_string(first + length - 1) + "/" +
                                                std::to_string(file->bytes));
  r.headers.emplace_back("Accept-Ranges", "bytes");
  return r;
}

}  // namespace

server::ExtraRoutes model_share_routes(std::shared_ptr<ModelIndex> index, ModelShareOptions options,
                                       server::ExtraRoutes fallback) {
  return [index, options, fallback](const server::Request& req,
                                    const std::string& path) -> std::optional<server::Response> {
    const std::string prefix = protocol::path(protocol::Route::models);
    const bool listing = path == prefix;
    const bool file = path.rfind(prefix + "/", 0) == 0;
    if ((!listing && !file) || req.method != "GET") {
      if (fallback) return fallback(req, path);
      return std::nullopt;
    }
    if (!options.enabled)
      return server::error_response(403, protocol::kModelSharingOff,
                                    "this server does not share its models (start it with --share-models)");
    if (!options.has_token)
      return server::error_response(403, "model_sharing_needs_token",
                                    "model sharing needs --auth-token: model files are never served anonymously");
    if (listing) return list_models(*index);
    return serve_model(*index, options, path.substr(prefix.size() + 1), req);
  };
}

}  // namespace netdist::cluster
