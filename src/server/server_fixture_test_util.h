// Test-only fixture: a real HttpServer on 127.0.0.1:<ephemeral> with FakeBackend and fresh output/input/temp
// directories, plus helpers to submit prompts and wait for their history entries.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "server/fake_backend_test_util.h"
#include "server/http_server.h"
#include "server/test_client_test_util.h"

namespace netdist::server {

class ServerFixture : public ::testing::Test {
 protected:
  using json = nlohmann::ordered_json;

  virtual void customize(ServerOptions&) {}

  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = std::filesystem::temp_directory_path() /
            ("netdist_server_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(root_);
    for (const char* d : {"output", "input", "temp", "models/checkpoints"}) std::filesystem::create_directories(root_ / d);
    ServerOptions options;
    options.port = 0;
    options.threads = 4;
    options.output_dir = (root_ / "output").string();
    options.input_dir = (root_ / "input").string();
    options.temp_dir = (root_ / "temp").string();
    options.models_dir = (root_ / "models").string();
    customize(options);
    backend_ = std::make_unique<FakeBackend>(options.output_dir);
    server_ = std::make_unique<HttpServer>(options, *backend_);
    const Status started = server_->start();
    ASSERT_TRUE(started.is_ok()) << started.to_string();
    port_ = server_->port();
  }

  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(root_);
  }

  HttpReply get(const std::string& target) { return http_call(port_, "GET", target); }
  HttpReply post(const std::string& target, const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return http_call(port_, "POST", target, body, headers);
  }

  // Connects and reads the connect-time status, so the socket is registered before anything is submitted.
  bool open_ws(TestWsClient& ws, const std::string& target) {
    if (!ws.connect(port_, target)) return false;
    const auto status = ws.read();
    return status && status->json().value("type", "") == "status";
  }

  static json prompt(int seed, const json& sampler_extra = json::object()) {
    json sampler_inputs = {{"seed", seed}, {"steps", 3}, {"model", json::array({"4", 0})}};
    for (auto it = sampler_extra.begin(); it != sampler_extra.end(); ++it) sampler_inputs[it.key()] = it.value();
    return {{"4", {{"class_type", "FakeLoader"}, {"inputs", {{"ckpt_name", "model.safetensors"}}}}},
            {"3", {{"class_type", "FakeSampler"}, {"inputs", sampler_inputs}, {"_meta", {{"title", "KSampler"}}}}},
            {"9", {{"class_type", "SaveImage"}, {"inputs", {{"images", json::array({"3", 0})}, {"filename_prefix", "ComfyUI"}}}}}};
  }

  // POSTs {"prompt", "client_id"?} and returns the prompt id (empty on failure, with a test failure).
  std::string submit(const json& p, const std::string& client_id = "", json extra = json::object()) {
    json body = extra;
    body["prompt"] = p;
    if (!client_id.empty()) body["client_id"] = client_id;
    const HttpReply r = post("/prompt", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    const json j = r.json();
    if (!j.is_object() || !j.contains("prompt_id")) return "";
    return j["prompt_id"].get<std::string>();
  }

  // Polls GET /history/{id} until the entry exists (10 s guard); returns the entry or null.
  json wait_history(const std::string& prompt_id) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
      const json h = get("/history/" + prompt_id).json();
      if (h.is_object() && h.contains(prompt_id)) return h[prompt_id];
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ADD_FAILURE() << "prompt " << prompt_id << " never reached history";
    return nullptr;
  }

  std::filesystem::path root_;
  std::unique_ptr<FakeBackend> backend_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

}  // namespace netdist::server
