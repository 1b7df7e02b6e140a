// The model index (hashes, hash cache across restarts, what is listed), the sharing routes on a real
// server on loopback (token, --share-models, digests only, ranges) and the fetcher against them (download,
// renamed file reused, resume after a cut, corruption detected and retried, refusals).
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "cluster/http_client.h"
#include "cluster/model_fetch.h"
#include "cluster/model_index.h"
#include "cluster/model_share.h"
#include "io/sha256.h"
#include "server/fake_backend_test_util.h"
#include "server/http_server.h"

namespace netdist::cluster {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

fs::path model_test_dir(const std::string& name) {
  static std::atomic<int> counter{0};
  fs::path p = fs::temp_directory_path() /
               ("netdist_model_share_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++)) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = char(rng() & 0xff);
  return s;
}

TEST(ModelIndex, ListsModelFilesInsideTheFolderWithTheirHashes) {
  const fs::path dir = model_test_dir("models");
  write(dir / "checkpoints" / "a.safetensors", "checkpoint a");
  write(dir / "checkpoints" / "sub" / "b.safetensors", "checkpoint b");
  write(dir / "root.safetensors", "root checkpoint");
  write(dir / "loras" / "l.safetensors", "lora");
  write(dir / "vae" / "v.safetensors", "vae");
  write(dir / "upscale_models" / "u.pth", "upscaler");
  write(dir / "checkpoints" / "notes.txt", "not a model");
  write(dir / "checkpoints" / ".partial" / "x.safetensors", "a download in progress");
  const fs::path outside = model_test_dir("outside") / "secret.safetensors";
  write(outside, "outside the models folder");
  fs::create_symlink(outside, dir / "vae" / "escape.safetensors");

  ModelIndex index(dir.string());
  index.rescan();
  std::vector<std::string> listed;
  for (const ModelFile& f : index.files()) {
    listed.push_back(f.kind + ":" + f.name);
    EXPECT_EQ(f.sha256, io::sha256_hex(slurp(f.path))) << f.name;
  }
  EXPECT_EQ(listed, (std::vector<std::string>{"checkpoint:a.safetensors", "checkpoint:root.safetensors",
                                              "checkpoint:sub/b.safetensors", "lora:l.safetensors",
                                              "upscale:u.pth", "vae:v.safetensors"}));
  EXPECT_EQ(index.files_hashed(), 6);
  EXPECT_FALSE(index.find_sha256(io::sha256_hex("outside the models folder")));
  EXPECT_FALSE(index.find_sha256(io::sha256_hex("a download in progress")));
  ASSERT_TRUE(index.find_sha256(io::sha256_hex("lora")));
  EXPECT_EQ(index.find_sha256(io::sha256_hex("lora"))->name, "l.safetensors");
}

TEST(ModelIndex, HashCacheIsReusedAcrossRestartsAndChangedFilesAreHashedAgain) {
  const fs::path dir = model_test_dir("models");
  write(dir / "checkpoints" / "a.safetensors", random_bytes(3 << 20, 1));
  write(dir / "loras" / "l.safetensors", "lora");
  {
    ModelIndex first(dir.string());
    first.start(std::chrono::hours(1));  // the background thread, as serve runs it
    for (int i = 0; i < 2000 && first.scans_done() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(first.scans_done(), 1);
    EXPECT_EQ(first.files_hashed(), 2);
  }
  ASSERT_TRUE(fs::exists(dir / ".netdist-model-hashes.json"));
  ModelIndex second(dir.string());  // a restart
  second.rescan();
  EXPECT_EQ(second.files_hashed(), 0) << "every hash came from the cache";
  ASSERT_EQ(second.files().size(), 2u);
  EXPECT_EQ(second.files()[0].sha256, io::sha256_hex(slurp(dir / "checkpoints" / "a.safetensors")));

  write(dir / "loras" / "l.safetensors", "another lora, longer");  // size (and mtime) changed
  ModelIndex third(dir.string());
  third.rescan();
  EXPECT_EQ(third.files_hashed(), 1);
  EXPECT_EQ(third.find("lora", "l.safetensors")->sha256, io::sha256_hex("another lora, longer"));
}

TEST(ModelIndex, ModelNamesMustBePlainRelativePaths) {
  for (const char* bad : {"", "/etc/passwd", "../x.safetensors", "a/../../x", "a/.hidden", "a\\b", "a//b"})
    EXPECT_FALSE(check_model_name(bad).is_ok()) << bad;
  EXPECT_TRUE(check_model_name("sub/dir/model.safetensors").is_ok());
}

// A real HttpServer on loopback serving `models_dir` through model_share_routes; `filter` (optional) sees
// every /netdist/v1/models request first and may answer it instead or alter the answer.
class ShareServer {
 public:
  using Filter = std::function<std::optional<server::Response>(const server::Request&, server::Response*)>;

  ShareServer(const fs::path& root, const std::string& models_dir, bool enabled, const std::string& token,
              uint64_t max_chunk = 8 << 20, Filter filter = nullptr)
      : index_(std::make_shared<ModelIndex>(models_dir)) {
    index_->rescan();
    server::ServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.auth_token = token;
    o.output_dir = (root / "out").string();
    o.input_dir = (root / "in").string();
    o.temp_dir = (root / "temp").string();
    auto routes = model_share_routes(index_, {enabled, !token.empty(), max_chunk}, nullptr);
    o.extra_routes = [routes, filter, this](const server::Request& req,
                                            const std::string& path) -> std::optional<server::Response> {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ranges_.push_back(req.header("range").value_or(""));
      }
      if (filter) {
        if (auto r = filter(req, nullptr)) return r;
      }
      auto r = routes(req, path);
      if (r && filter) filter(req, &*r);
      return r;
    };
    backend_ = std::make_unique<server::FakeBackend>(o.output_dir);
    server_ = std::make_unique<server::HttpServer>(o, *backend_);
    const Status s = server_->start();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  const std::string& url() const { return url_; }
  std::vector<std::string> ranges() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ranges_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> ranges_;  // every request's Range header ("" for none), in order
  std::shared_ptr<ModelIndex> index_;
  std::unique_ptr<server::FakeBackend> backend_;
  std::unique_ptr<server::HttpServer> server_;
  std::string url_;
};

HttpReply get(const std::string& url, const std::string& target, const std::string& token,
              const std::string& range = "") {
  HttpCall c;
  c.target = target;
  c.auth_token = token;
  if (!range.empty()) c.headers = {{"Range", range}};
  auto r = http_call(url, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : HttpReply{};
}

std::string header(const HttpReply& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

TEST(ModelShareRoutes, ServeByDigestWithRangesOnlyWithTheTokenAndOnlyWhenEnabled) {
  const fs::path root = model_test_dir("server");
  const std::string bytes = random_bytes(5000, 2);
  write(root / "models" / "checkpoints" / "m.safetensors", bytes);
  const fs::path outside = root / "outside.safetensors";
  write(outside, "outside");
  fs::create_symlink(outside, root / "models" / "checkpoints" / "link.safetensors");
  const std::string sha = io::sha256_hex(bytes);
  const std::string target = "/netdist/v1/models/" + sha;
  ShareServer on(root, (root / "models").string(), true, "tok", 2000);

  EXPECT_EQ(get(on.url(), "/netdist/v1/models", "").status, 401);
  EXPECT_EQ(get(on.url(), target, "wrong", "bytes=0-9").status, 401);
  const Json list = Json::parse(get(on.url(), "/netdist/v1/models", "tok").body, nullptr, false);
  ASSERT_TRUE(list.is_object());
  ASSERT_EQ(list["models"].size(), 1u) << list.dump();  // the symlink leading out is not listed
  EXPECT_EQ(list["models"][0]["name"], "m.safetensors");
  EXPECT_EQ(list["models"][0]["sha256"], sha);
  EXPECT_EQ(list["models"][0]["bytes"], 5000);

  HttpReply r = get(on.url(), target, "tok", "bytes=100-199");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(100, 100));
  EXPECT_EQ(header(r, "content-range"), "bytes 100-199/5000");
  r = get(on.url(), target, "tok", "bytes=1000-");  // longer than a chunk: a chunk, the client asks again
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, bytes.substr(1000, 2000));
  EXPECT_EQ(header(r, "content-range"), "bytes 1000-2999/5000");
  EXPECT_EQ(get(on.url(), target, "tok", "bytes=5000-").status, 416);
  EXPECT_EQ(get(on.url(), target, "tok", "bytes=x-3").status, 416);
  EXPECT_EQ(get(on.url(), target, "tok").status, 416) << "a file over a chunk needs a range";
  EXPECT_EQ(get(on.url(), "/netdist/v1/models/" + io::sha256_hex("outside"), "tok", "bytes=0-").status, 404);
  EXPECT_EQ(get(on.url(), "/netdist/v1/models/" + io::sha256_hex("nothing"), "tok", "bytes=0-").status, 404);
  for (const char* bad : {"/netdist/v1/models/..%2F..%2Foutside.safetensors", "/netdist/v1/models/m.safetensors",
                          "/netdist/v1/models/checkpoints/m.safetensors"}) {
    r = get(on.url(), bad, "tok", "bytes=0-");
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_EQ(r.body.find(bytes.substr(0, 16)), std::string::npos);
  }

  ShareServer off(root, (root / "models").string(), false, "tok");
  EXPECT_EQ(get(off.url(), "/netdist/v1/models", "tok").status, 403);
  EXPECT_EQ(get(off.url(), target, "tok", "bytes=0-").status, 403);
  ShareServer no_token(root, (root / "models").string(), true, "");
  EXPECT_EQ(get(no_token.url(), "/netdist/v1/models", "").status, 403);
  EXPECT_EQ(get(no_token.url(), target, "", "bytes=0-").status, 403);
}

// A worker's side: its own models folder, index and NodeEnv.
struct Worker {
  explicit Worker(const fs::path& root, const std::string& source, const std::string& token = "tok") {
    dir = root / "worker_models";
    fs::create_directories(dir / "checkpoints");
    index = std::make_shared<ModelIndex>(dir.string());
    nodes::NodeEnvOptions o;
    o.models_dir = dir.string();
    env = std::make_shared<nodes::NodeEnv>(o);
    ModelFetchOptions fo;
    fo.source = source;
    fo.auth_token = token;
    fo.chunk_bytes = 1500;
    fetcher = std::make_unique<ModelFetcher>(index, env, fo);
  }
  fs::path dir;
  std::shared_ptr<ModelIndex> index;
  std::shared_ptr<nodes::NodeEnv> env;
  std::unique_ptr<ModelFetcher> fetcher;
};

Json checkpoint_prompt(const std::string& name) {
  return Json{{"4", {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", name}}}}},
              {"5", {{"class_type", "LoraLoader"}, {"inputs", {{"lora_name", "absent.safetensors"}}}}}};
}

class ModelFetch : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = model_test_dir("fetch");
    bytes_ = random_bytes(10000, 3);
    write(root_ / "models" / "checkpoints" / "shared.safetensors", bytes_);
  }
  fs::path root_;
  std::string bytes_;
};

TEST_F(ModelFetch, DownloadsVerifiesAndPlacesUnderTheRequestedName) {
  ShareServer server(root_, (root_ / "models").string(), true, "tok", 4000);
  Worker w(root_, server.url());
  const std::vector<protocol::ModelEntry> caps = w.fetcher->capability_models();
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].name, "shared.safetensors");
  EXPECT_TRUE(caps[0].fetch);
  ASSERT_TRUE(w.fetcher->prepare(checkpoint_prompt("shared.safetensors")).is_ok());
  EXPECT_EQ(slurp(w.dir / "checkpoints" / "shared.safetensors"), bytes_);
  EXPECT_FALSE(fs::exists(w.dir / "checkpoints" / ".partial" / (io::sha256_hex(bytes_) + ".part")));
  EXPECT_TRUE(w.fetcher->progress().is_null());
  ASSERT_TRUE(w.index->find("checkpoint", "shared.safetensors"));
  EXPECT_EQ(w.index->find("checkpoint", "shared.safetensors")->sha256, io::sha256_hex(bytes_));
  EXPECT_FALSE(w.fetcher->capability_models()[0].fetch);
  // Ranges of the client's chunk (1500), each answered in full (the server's chunk is 4000).
  std::vector<std::string> ranges;
  for (const std::string& r : server.ranges()) {
    if (!r.empty()) ranges.push_back(r);
  }
  ASSERT_EQ(ranges.size(), 7u);
  EXPECT_EQ(ranges[0], "bytes=0-1499");
  EXPECT_EQ(ranges[6], "bytes=9000-9999");
  // Present now: a second task downloads nothing (the LoRA nobody has costs only a fresh look at the list).
  ASSERT_TRUE(w.fetcher->prepare(checkpoint_prompt("shared.safetensors")).is_ok());
  size_t range_calls = 0;
  for (const std::string& r : server.ranges()) range_calls += !r.empty();
  EXPECT_EQ(range_calls, 7u);
}

TEST_F(ModelFetch, ARenamedFileWithTheSameDigestIsReusedWithoutATransfer) {
  ShareServer server(root_, (root_ / "models").string(), true, "tok");
  Worker w(root_, server.url());
  write(w.dir / "checkpoints" / "my-name.safetensors", bytes_);
  w.index->rescan();
  ASSERT_TRUE(w.fetcher->prepare(checkpoint_prompt("shared.safetensors")).is_ok());
  EXPECT_EQ(slurp(w.dir / "checkpoints" / "shared.safetensors"), bytes_);
  for (const std::string& r : server.ranges()) EXPECT_TRUE(r.empty()) << "nothing was downloaded: " << r;
}

TEST_F(ModelFetch, ACutTransferResumesFromTheOffsetReached) {
  std::atomic<int> served{0};
  ShareServer server(root_, (root_ / "models").string(), true, "tok", 8 << 20,
                     [&](const server::Request& req, server::Response* answer) -> std::optional<server::Response> {
                       if (answer || !req.header("range")) return std::nullopt;
                       if (++served == 3) return server::error_response(503, "cut", "test: link dropped");
                       return std::nullopt;
                     });
  Worker w(root_, server.url());
  ASSERT_TRUE(w.fetcher->prepare(checkpoint_prompt("shared.safetensors")).is_ok());
  EXPECT_EQ(slurp(w.dir / "checkpoints" / "shared.safetensors"), bytes_);
  std::vector<std::string> ranges;
  for (const std::string& r : server.ranges()) {
    if (!r.empty()) ranges.push_back(r);
  }
  ASSERT_GE(ranges.size(), 4u);
  EXPECT_EQ(ranges[2], "bytes=3000-4499");  // cut
  EXPECT_EQ(ranges[3], "bytes=3000-4499") << "resumed at the offset reached, not from 0";
  EXPECT_EQ(ranges.size(), 8u);
}

TEST_F(ModelFetch, ACorruptedTransferIsDetectedDeletedAndFetchedAgain) {
  std::atomic<int> corrupt{1};
  auto flip = [&](const server::Request&, server::Response* answer) -> std::optional<server::Response> {
    if (answer && answer->status == 206 && corrupt > 0) {
      --corrupt;
      answer->body[answer->body.size() / 2] ^= 0x01;
    }
    return std::nullopt;
  };
  ShareServer server(root_, (root_ / "models").string(), true, "tok", 8 << 20, flip);
  Worker w(root_, server.url());
  ASSERT_TRUE(w.fetcher->prepare(checkpoint_prompt("shared.safetensors")).is_ok());
  EXPECT_EQ(slurp(w.dir / "checkpoints" / "shared.safetensors"), bytes_);
  int from_zero = 0;
  for (const std::string& r : server.ranges()) from_zero += r == "bytes=0-1499";
  EXPECT_EQ(from_zero, 2) << "the corrupt download was deleted and fetched again from byte 0";

  // Always corrupt: bounded attempts, then a worker fault naming the model, and nothing left behind.
  corrupt = 1000;
  Worker w2(root_ / "second", server.url());
  const Status s = w2.fetcher->prepare(checkpoint_prompt("shared.safetensors"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_NE(s.message().find("sha256 mismatch"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("shared.safetensors"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("3 attempt"), std::string::npos) << s.to_string();
  EXPECT_FALSE(fs::exists(w2.dir / "checkpoints" / "shared.safetensors"));
  EXPECT_FALSE(fs::exists(w2.dir / "checkpoints" / ".partial" / (io::sha256_hex(bytes_) + ".part")));
}

TEST_F(ModelFetch, RefusedWithoutTheTokenOrWhenSharingIsOff) {
  ShareServer server(root_, (root_ / "models").string(), true, "tok");
  Worker w(root_, server.url(), "wrong");
  Status s = w.fetcher->prepare(checkpoint_prompt("shared.safetensors"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_NE(s.message().find("401"), std::string::npos) << s.to_string();
  ShareServer off(root_, (root_ / "models").string(), false, "tok");
  Worker w2(root_ / "second", off.url());
  s = w2.fetcher->prepare(checkpoint_prompt("shared.safetensors"));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_NE(s.message().find("--share-models"), std::string::npos) << s.to_string();
  EXPECT_FALSE(fs::exists(w2.dir / "checkpoints" / "shared.safetensors"));
  // Without a source nothing is fetched and nothing fails here (validation names the missing file).
  Worker none(root_ / "third", "");
  EXPECT_TRUE(none.fetcher->prepare(checkpoint_prompt("shared.safetensors")).is_ok());
  Json bad = checkpoint_prompt("../models/checkpoints/shared.safetensors");
  EXPECT_EQ(w.fetcher->prepare(bad).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace netdist::cluster
