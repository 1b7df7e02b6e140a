// The ComfyUI_NetDist node classes without a network: .npy reading/writing with corrupt inputs on purpose,
// the plugin's prompt rewrite and output choice, the schemas /object_info shows, the seed/batch semantics of
// the queue nodes in their "remote"/"false" modes, and latent files through the real executor.
// (tests/../cluster/netdist_plugin_process_test.cpp runs them across real servers.)
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "nodes/core_nodes.h"
#include "nodes/netdist_nodes.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/npy.h"

namespace netdist::nodes::netdist_test {
namespace {

namespace fs = std::filesystem;

std::string f32_bytes(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

NpyArray f32_array(std::vector<int64_t> shape) {
  NpyArray a;
  a.shape = std::move(shape);
  std::vector<float> v(static_cast<size_t>(a.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5f * static_cast<float>(i) - 3.0f;
  a.data = f32_bytes(v);
  return a;
}

// A .npy file with `header` (the dict text) as np.save lays it out, then `data`.
std::string npy_with_header(const std::string& header, const std::string& data, int major = 1) {
  std::string h = header;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>((h.size() >> 8) & 0xff);
  if (major != 1) out += std::string(2, '\0');
  return out + h + data;
}

TEST(Npy, WritesWhatNumpyWrites) {
  // np.save of np.zeros((1, 4, 2, 2), np.float32): 128-byte header block, then the data.
  NpyArray a;
  a.shape = {1, 4, 2, 2};
  a.data = std::string(64, '\0');
  auto bytes = serialize_npy(a);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 2, 2), }";
  EXPECT_EQ(*bytes, npy_with_header(header, a.data));
  EXPECT_EQ((bytes->size() - 64) % 64, 0u);
  EXPECT_EQ((*bytes)[8], 118);  // header length 118: 10 + 118 = 128
}

TEST(Npy, RoundTripsFloat32AndFloat16AndOddShapes) {
  for (std::vector<int64_t> shape : {std::vector<int64_t>{2, 4, 3, 5}, {7}, {}, {0, 4}}) {
    NpyArray a = f32_array(shape);
    auto bytes = serialize_npy(a);
    ASSERT_TRUE(bytes.is_ok());
    auto back = parse_npy(*bytes, "x.npy");
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    EXPECT_EQ(back->shape, shape);
    EXPECT_EQ(back->data, a.data);
    EXPECT_EQ(back->dtype, NpyDtype::kFloat32);
  }
  NpyArray h;
  h.dtype = NpyDtype::kFloat16;
  h.shape = {3};
  h.data = std::string("\x00\x3c\x00\xc0\x00\x00", 6);  // 1.0, -2.0, 0.0
  auto bytes = serialize_npy(h);
  ASSERT_TRUE(bytes.is_ok());
  EXPECT_NE(bytes->find("'<f2'"), std::string::npos);
  auto back = parse_npy(*bytes, "h.npy");
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->dtype, NpyDtype::kFloat16);
  EXPECT_EQ(back->data, h.data);
}

TEST(Npy, ReadsVersion2AndDoubleQuotedHeaders) {
  const std::string data = f32_bytes({1.0f, 2.0f});
  auto v2 = parse_npy(npy_with_header("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}", data, 2), "v2.npy");
  ASSERT_TRUE(v2.is_ok()) << v2.status().to_string();
  EXPECT_EQ(v2->shape, (std::vector<int64_t>{2}));
}

void expect_error(const std::string& bytes, const std::string& needle) {
  auto r = parse_npy(bytes, "bad/latent.npy");
  ASSERT_FALSE(r.is_ok()) << "accepted a file that should fail with: " << needle;
  EXPECT_NE(r.status().message().find("bad/latent.npy"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().to_string();
}

TEST(Npy, CorruptFilesGiveErrorsNamingFileAndProblem) {
  const std::string good_header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  const std::string data = f32_bytes({1, 2, 3, 4});
  const std::string good = npy_with_header(good_header, data);
  ASSERT_TRUE(parse_npy(good, "ok.npy").is_ok());

  expect_error("", "bad magic");
  expect_error("PK\x03\x04 this is a zip", "bad magic");
  expect_error(std::string("\x93NUMPY", 6), "no version");
  std::string v9 = good;
  v9[6] = 9;
  expect_error(v9, "version 9.0");
  expect_error(good.substr(0, 9), "no header length");
  expect_error(good.substr(0, 40), "truncated .npy header");
  expect_error(good.substr(0, good.size() - 5), "truncated .npy data");
  expect_error(good + "xx", "2 bytes after the data");
  expect_error(npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data), "Fortran order");
  expect_error(npy_with_header("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", data + data), "'<i8' is not supported");
  expect_error(npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", data), "big-endian");
  expect_error(npy_with_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", data), "header");
  expect_error(npy_with_header("{'descr': '<f4', 'shape': (2, 2), }", data), "no 'fortran_order'");
  expect_error(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2), }", data), "shape entry");
  expect_error(npy_with_header("['descr', '<f4']", data), "does not start with '{'");
  expect_error(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", data),
               "too large");
}

TEST(Npy, SerializeRejectsMismatchedData) {
  NpyArray a = f32_array({2, 2});
  a.data.pop_back();
  EXPECT_FALSE(serialize_npy(a).is_ok());
}

// The peer harness's NetDist workflow (sd15_txt2img_512_b10_netdist.json), shortened.
Json plugin_workflow(const std::string& url) {
  return Json::parse(R"({
    "3": {"class_type": "KSampler", "inputs": {"seed": ["10", 0], "model": ["4", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sub/peer_sd15.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": ["10", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "p", "images": ["12", 0]}},
    "10": {"class_type": "RemoteQueueSimple", "inputs": {"remote_url": ")" + url + R"(", "batch_local": 5,
           "batch_remote": 5, "trigger": "on_change", "enabled": "true", "seed": 42}},
    "11": {"class_type": "FetchRemote", "inputs": {"final_image": ["8", 0], "remote_info": ["10", 2]}},
    "12": {"class_type": "ImageBatch", "inputs": {"image1": ["8", 0], "image2": ["11", 0]}}
  })");
}

TEST(NetDistPrompt, RewritesThePromptAsThePluginDoes) {
  Json p = plugin_workflow(" http://127.0.0.1:8288/ ");
  p["20"] = {{"class_type", "RemoteQueueSimple"},
             {"inputs", {{"remote_url", "http://other:1/"}, {"enabled", "true"}}}};
  auto r = build_remote_prompt(p, "http://127.0.0.1:8288", "final_image", "posix");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Json& q = *r;
  EXPECT_EQ(q["10"]["inputs"]["enabled"], "remote");
  EXPECT_EQ(q["20"]["inputs"]["enabled"], "false");
  for (const char* gone : {"9", "11", "12"}) EXPECT_FALSE(q.contains(gone)) << gone;
  ASSERT_TRUE(q.contains("21"));  // max id 20 + 1
  EXPECT_EQ(q["21"]["class_type"], "PreviewImage");
  EXPECT_EQ(q["21"]["inputs"]["images"], Json::array({"8", 0}));
  EXPECT_EQ(q["21"]["final_output"], true);
  EXPECT_EQ(q["4"]["inputs"]["ckpt_name"], "sub/peer_sd15.safetensors");
  EXPECT_TRUE(p["10"]["inputs"]["enabled"] == "true") << "the input prompt must stay untouched";

  auto nt = build_remote_prompt(plugin_workflow("http://w"), "http://w", "final_image", "nt");
  ASSERT_TRUE(nt.is_ok());
  EXPECT_EQ((*nt)["4"]["inputs"]["ckpt_name"], "sub\\peer_sd15.safetensors");
  EXPECT_EQ((*nt)["13"]["class_type"], "PreviewImage");

  // outputs = "any" keeps SaveImage unless it hangs below FetchRemote (here it does, through node 12).
  Json with_save = plugin_workflow("http://w");
  with_save["30"] = {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "x"}, {"images", {"8", 0}}}}};
  auto any = build_remote_prompt(with_save, "http://w", "any", "posix");
  ASSERT_TRUE(any.is_ok());
  EXPECT_TRUE(any->contains("30"));
  EXPECT_FALSE(any->contains("9"));

  Json bad = plugin_workflow("http://w");
  bad["10"]["inputs"]["remote_url"] = Json::array({"99", 0});
  EXPECT_FALSE(build_remote_prompt(bad, "http://w", "final_image", "posix").is_ok());
}

TEST(NetDistPrompt, CleansUrlsAndPicksTheFinalOutput) {
  EXPECT_EQ(clean_remote_url(" http://a:1/ , http://b:2").value(), "http://a:1");
  EXPECT_EQ(clean_remote_url("\nhttp://a:1//\thttp://b").value(), "http://a:1");
  EXPECT_FALSE(clean_remote_url(" , \n").is_ok());

  Json entry = Json::parse(R"({
    "prompt": [0, "id", {"5": {"class_type": "PreviewImage", "final_output": true}, "7": {"class_type": "SaveImage"}}, {}, []],
    "outputs": {"5": {"images": [{"filename": "a.png", "subfolder": "", "type": "temp"}]},
                "7": {"images": [{"filename": "b.png", "subfolder": "s", "type": "output"}]}}})");
  auto refs = job_output_images(entry);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].filename, "a.png");
  entry["prompt"][2]["5"].erase("final_output");
  refs = job_output_images(entry);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].filename, "b.png");  // the last output
  EXPECT_EQ(view_url("http://h:1", refs[0]), "http://h:1/view?filename=b.png&subfolder=s&type=output");
  const std::string id = new_job_id();
  EXPECT_EQ(id.rfind(netdist_client_id() + "-", 0), 0u);
  EXPECT_NE(new_job_id(), id);
}

// A remote that keeps the job queued forever: wait_for_job gives up after the client's job timeout, naming
// the job, the remote and the time, instead of waiting for good.
TEST(NetDistRemote, WaitForJobEndsAfterTheJobTimeout) {
  int polls = 0;
  RemoteClient client(
      [&](const HttpRequest& r) -> Result<HttpResponse> {
        ++polls;
        if (r.url.find("/queue") != std::string::npos)
          return HttpResponse{200, R"({"queue_running": [[0, "rp", {}, {}, []]], "queue_pending": []})", "application/json"};
        return HttpResponse{200, "{}", "application/json"};
      },
      std::chrono::milliseconds(1500));
  auto got = client.wait_for_job("http://remote:1", "rp", "job-7", [] { return false; });
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find("job-7 (prompt rp) on http://remote:1 did not finish within 1 s"),
            std::string::npos)
      << got.status().message();
  EXPECT_GT(polls, 5);
}

class FakeContext : public graph::NodeContext {
 public:
  explicit FakeContext(Json prompt) : prompt_(std::move(prompt)) {}
  const std::string& node_id() const override { return id_; }
  const std::string& prompt_id() const override { return id_; }
  bool interrupted() const override { return false; }
  Status progress(int64_t, int64_t) override { return Status::ok(); }
  void set_ui_output(Json) override {}
  const Json& prompt() const override { return prompt_; }
  const Json& extra_pnginfo() const override { return null_; }
  const Json& extra_data() const override { return null_; }

 private:
  std::string id_ = "p";
  Json prompt_;
  Json null_;
};

class NetDistNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_ndnodes_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "input");
    NodeEnvOptions o;
    o.output_dir = (dir_ / "output").string();
    o.input_dir = (dir_ / "input").string();
    o.temp_dir = (dir_ / "temp").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
    register_netdist_nodes(registry_, env_, [this](const HttpRequest& r) -> Result<HttpResponse> {
      requests_.push_back(r.method + " " + r.url);
      return Status::unavailable(r.url + ": cannot connect: Connection refused");
    });
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<std::vector<graph::Value>> run(const std::string& cls, graph::NodeInputs in, const Json& prompt = Json::object()) {
    auto node = registry_.create(cls);
    FakeContext ctx(prompt);
    return node->run(ctx, in);
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  std::vector<std::string> requests_;
};

TEST_F(NetDistNodesTest, ObjectInfoMatchesThePlugin) {
  const Json info = registry_.object_info();
  const Json& simple = info["RemoteQueueSimple"];
  EXPECT_EQ(simple["display_name"], "Queue on remote (single)");
  EXPECT_EQ(simple["category"], "remote");
  EXPECT_EQ(simple["output"], Json::array({"INT", "INT", "REMINFO"}));
  EXPECT_EQ(simple["output_name"], Json::array({"seed", "batch", "remote_info"}));
  const Json& req = simple["input"]["required"];
  EXPECT_EQ(req["remote_url"][1]["default"], "http://127.0.0.1:8288/");
  EXPECT_EQ(req["remote_url"][1]["multiline"], false);
  EXPECT_EQ(req["batch_local"][1]["max"], 8);
  EXPECT_EQ(req["trigger"][0], Json::array({"on_change", "always"}));
  EXPECT_EQ(req["enabled"][1]["default"], "true");
  EXPECT_EQ(req["seed"][1]["max"], Json(uint64_t(0xffffffffffffffffull)));
  EXPECT_EQ(simple["input"]["hidden"]["prompt"], "PROMPT");

  EXPECT_EQ(info["RemoteQueueWorker"]["output"], Json::array({"REMCHAIN", "REMINFO"}));
  EXPECT_EQ(info["RemoteQueueWorker"]["input"]["required"]["outputs"][1]["default"], "final_image");
  EXPECT_EQ(info["RemoteChainStart"]["input"]["required"]["workflow"], Json::array({"JSON"}));
  EXPECT_EQ(info["RemoteChainEnd"]["output_name"], Json::array({"seed", "batch"}));
  EXPECT_EQ(info["FetchRemote"]["input"]["required"]["remote_info"], Json::array({"REMINFO"}));
  EXPECT_EQ(info["CombineImageBatch"]["output_name"], Json::array({"images"}));
  EXPECT_EQ(info["LoadImageUrl"]["output"], Json::array({"IMAGE", "MASK"}));
  EXPECT_EQ(info["SaveImageUrl"]["output_node"], true);
  EXPECT_EQ(info["SaveImageUrl"]["input"]["required"]["data_format"][0], Json::array({"HTML_image", "Raw_data"}));
  EXPECT_EQ(info["SaveLatentNumpy"]["input"]["required"]["filename_prefix"][1]["default"], "latents/ComfyUI");
  EXPECT_EQ(info["SaveLatentNumpy"]["output_name"], Json::array({"filename"}));
  EXPECT_EQ(info["LoadLatentUrl"]["category"], "remote/latent");
  EXPECT_EQ(info["ImageBatch"]["output"], Json::array({"IMAGE"}));

  // The plugin's own example workflow validates (tiny checkpoint name and 64×64 aside, as posted).
  Json p = plugin_workflow("http://127.0.0.1:8288/");
  p.erase("3");
  p["8"]["inputs"]["samples"] = {"5", 0};
  p["4"]["inputs"]["ckpt_name"] = "missing.safetensors";
  graph::ValidationResult v = graph::validate_prompt(p, registry_);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error_body["node_errors"].size(), 1u) << v.error_body.dump();  // only the checkpoint name
  EXPECT_TRUE(v.error_body["node_errors"].contains("4")) << v.error_body.dump();
}

graph::NodeInputs simple_inputs(const std::string& enabled, uint64_t seed) {
  graph::NodeInputs in;
  in.set("remote_url", std::string("http://127.0.0.1:1/"));
  in.set("batch_local", int64_t(3));
  in.set("batch_remote", int64_t(5));
  in.set("trigger", std::string("on_change"));
  in.set("enabled", std::string(enabled));
  in.set("seed", seed);
  return in;
}

TEST_F(NetDistNodesTest, RemoteQueueSimpleSeedSemantics) {
  auto remote = run("RemoteQueueSimple", simple_inputs("remote", 42));
  ASSERT_TRUE(remote.is_ok()) << remote.status().to_string();
  EXPECT_EQ(std::get<int64_t>((*remote)[0]), 45);  // seed + batch_local
  EXPECT_EQ(std::get<int64_t>((*remote)[1]), 5);   // batch_remote
  auto off = run("RemoteQueueSimple", simple_inputs("false", 42));
  ASSERT_TRUE(off.is_ok());
  EXPECT_EQ(std::get<int64_t>((*off)[0]), 42);
  EXPECT_EQ(std::get<int64_t>((*off)[1]), 3);
  EXPECT_TRUE(requests_.empty());
  auto big = run("RemoteQueueSimple", simple_inputs("remote", 0xfffffffffffffffeull));
  EXPECT_FALSE(big.is_ok());

  // enabled = "true": the remote is called, and its failure names the URL.
  auto on = run("RemoteQueueSimple", simple_inputs("true", 42), plugin_workflow("http://127.0.0.1:1/"));
  ASSERT_FALSE(on.is_ok());
  EXPECT_NE(on.status().message().find("http://127.0.0.1:1"), std::string::npos) << on.status().to_string();
  ASSERT_FALSE(requests_.empty());
  EXPECT_EQ(requests_[0], "GET http://127.0.0.1:1/queue");
}

TEST_F(NetDistNodesTest, ChainOffsetsFollowThePlugin) {
  auto wf = std::make_shared<JsonObject>();
  wf->value = plugin_workflow("http://w");
  graph::NodeInputs start;
  start.set("workflow", object(wf));
  start.set("trigger", std::string("on_change"));
  start.set("batch", int64_t(4));
  start.set("seed", uint64_t(100));
  auto chain = run("RemoteChainStart", start);
  ASSERT_TRUE(chain.is_ok());
  // Worker 1 (remote here, default batch) starts at seed + batch; worker 2 at +1 more and batch 2; the local
  // end of the chain sees seed 100 and batch 4.
  auto worker = [&](graph::Value c, const std::string& enabled, int64_t override_batch) {
    graph::NodeInputs in;
    in.set("remote_chain", c);
    in.set("remote_url", std::string("http://w"));
    in.set("batch_override", override_batch);
    in.set("enabled", enabled);
    in.set("outputs", std::string("final_image"));
    return run("RemoteQueueWorker", in);
  };
  auto end = [&](graph::Value c) {
    graph::NodeInputs in;
    in.set("remote_chain", c);
    auto r = run("RemoteChainEnd", in);
    EXPECT_TRUE(r.is_ok());
    return std::make_pair(std::get<int64_t>((*r)[0]), std::get<int64_t>((*r)[1]));
  };
  auto w1 = worker((*chain)[0], "remote", 0);
  ASSERT_TRUE(w1.is_ok());
  EXPECT_EQ(end((*w1)[0]), std::make_pair(int64_t(104), int64_t(4)));
  auto w1_off = worker((*chain)[0], "false", 0);
  ASSERT_TRUE(w1_off.is_ok());
  auto w2 = worker((*w1_off)[0], "remote", 2);
  ASSERT_TRUE(w2.is_ok());
  EXPECT_EQ(end((*w2)[0]), std::make_pair(int64_t(105), int64_t(2)));
  auto w3 = worker((*w2)[0], "false", 0);  // w3 starts at offset 4 + 1 + 2 = 7, w4 at 8
  ASSERT_TRUE(w3.is_ok());
  auto w4 = worker((*w3)[0], "remote", 0);
  ASSERT_TRUE(w4.is_ok());
  EXPECT_EQ(end((*w4)[0]), std::make_pair(int64_t(105 + 8), int64_t(2)));
  EXPECT_EQ(end((*chain)[0]), std::make_pair(int64_t(100), int64_t(4)));
}

TEST_F(NetDistNodesTest, FetchRemoteWithoutAJobGivesABlackImage) {
  auto image = std::make_shared<ImageObject>();
  image->images = at::rand({3, 8, 8, 3});
  graph::NodeInputs in;
  in.set("final_image", object(image));
  in.set("remote_info", object(std::make_shared<RemoteInfoObject>()));
  auto r = run("FetchRemote", in);
  ASSERT_TRUE(r.is_ok());
  auto out = std::dynamic_pointer_cast<const ImageObject>(std::get<graph::ObjectPtr>((*r)[0]));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->images.sizes(), (at::IntArrayRef{1, 8, 8, 3}));
  EXPECT_EQ(out->images.abs().sum().item<float>(), 0.0f);
}

TEST_F(NetDistNodesTest, CombineImageBatchConcatenates) {
  auto a = std::make_shared<ImageObject>(), b = std::make_shared<ImageObject>(), c = std::make_shared<ImageObject>();
  a->images = at::rand({2, 8, 8, 3});
  b->images = at::rand({1, 8, 8, 3});
  c->images = at::rand({1, 4, 8, 3});
  graph::NodeInputs in;
  in.set("images_a", object(a));
  in.set("images_b", object(b));
  auto r = run("CombineImageBatch", in);
  ASSERT_TRUE(r.is_ok());
  auto out = std::dynamic_pointer_cast<const ImageObject>(std::get<graph::ObjectPtr>((*r)[0]));
  EXPECT_TRUE(out->images.equal(at::cat({a->images, b->images}, 0)));
  graph::NodeInputs mismatch;
  mismatch.set("images_a", object(a));
  mismatch.set("images_b", object(c));
  r = run("CombineImageBatch", mismatch);
  ASSERT_TRUE(r.is_ok());
  out = std::dynamic_pointer_cast<const ImageObject>(std::get<graph::ObjectPtr>((*r)[0]));
  EXPECT_TRUE(out->images.equal(a->images));  // the plugin's fallback
}

TEST_F(NetDistNodesTest, LatentsRoundTripThroughNpyFiles) {
  auto latent = std::make_shared<LatentObject>();
  latent->samples = at::randn({2, 4, 3, 5});
  graph::NodeInputs save;
  save.set("samples", object(latent));
  save.set("filename_prefix", std::string("latents/test"));
  auto saved = run("SaveLatentNumpy", save);
  ASSERT_TRUE(saved.is_ok()) << saved.status().to_string();
  const std::string name = std::get<std::string>((*saved)[0]);
  EXPECT_EQ(name, "test_00001_.npy");
  auto again = run("SaveLatentNumpy", save);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(std::get<std::string>((*again)[0]), "test_00002_.npy");

  fs::copy_file(dir_ / "output" / "latents" / name, dir_ / "input" / "x.npy");
  graph::NodeInputs load;
  load.set("latent", std::string("x.npy"));
  auto loaded = run("LoadLatentNumpy", load);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  auto back = std::dynamic_pointer_cast<const LatentObject>(std::get<graph::ObjectPtr>((*loaded)[0]));
  EXPECT_TRUE(back->samples.equal(latent->samples));
  // "[output]" annotation reads from the output folder.
  load.set("latent", std::string("latents/" + name + " [output]"));
  ASSERT_TRUE(run("LoadLatentNumpy", load).is_ok());
  EXPECT_EQ(registry_.object_info()["LoadLatentNumpy"]["input"]["required"]["latent"][0], Json::array({"x.npy"}));
}

TEST_F(NetDistNodesTest, BadLatentFilesNameTheFileAndTheProblem) {
  {
    std::ofstream f(dir_ / "input" / "broken.npy", std::ios::binary);
    f << "not numpy at all";
  }
  graph::NodeInputs load;
  load.set("latent", std::string("broken.npy"));
  auto r = run("LoadLatentNumpy", load);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("broken.npy"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find("bad magic"), std::string::npos) << r.status().to_string();

  NpyArray a = f32_array({4, 4});  // 2-D: not a latent
  std::ofstream(dir_ / "input" / "flat.npy", std::ios::binary) << serialize_npy(a).value();
  load.set("latent", std::string("flat.npy"));
  r = run("LoadLatentNumpy", load);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("flat.npy"), std::string::npos) << r.status().to_string();

  // Validation rejects a file that is not there, with the plugin's message.
  Json p = {{"1", {{"class_type", "LoadLatentNumpy"}, {"inputs", {{"latent", "nope.npy"}}}}},
            {"2", {{"class_type", "SaveLatentNumpy"}, {"inputs", {{"samples", {"1", 0}}, {"filename_prefix", "x"}}}}}};
  graph::ValidationResult v = graph::validate_prompt(p, registry_);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error_body.dump().find("Invalid latent file 'nope.npy'"), std::string::npos) << v.error_body.dump();
}

TEST_F(NetDistNodesTest, WorkflowJsonSavesAndLoads) {
  auto wf = std::make_shared<JsonObject>();
  wf->value = plugin_workflow("http://w");
  graph::NodeInputs save;
  save.set("workflow", object(wf));
  save.set("filename_prefix", std::string("workflow/test"));
  ASSERT_TRUE(run("SaveDiskWorkflowJSON", save).is_ok());
  const fs::path saved = dir_ / "output" / "workflow" / "test_00001_.json";
  ASSERT_TRUE(fs::exists(saved));
  fs::copy_file(saved, dir_ / "input" / "wf.json");
  graph::NodeInputs load;
  load.set("workflow", std::string("wf.json"));
  auto r = run("LoadDiskWorkflowJSON", load);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto back = std::dynamic_pointer_cast<const JsonObject>(std::get<graph::ObjectPtr>((*r)[0]));
  EXPECT_EQ(back->value, wf->value);
  std::ofstream(dir_ / "input" / "broken.json") << "{not json";
  Json p = {{"1", {{"class_type", "LoadDiskWorkflowJSON"}, {"inputs", {{"workflow", "broken.json"}}}}},
            {"2", {{"class_type", "SaveDiskWorkflowJSON"}, {"inputs", {{"workflow", {"1", 0}}, {"filename_prefix", "x"}}}}}};
  graph::ValidationResult v = graph::validate_prompt(p, registry_);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error_body.dump().find("Failed to read JSON file: broken.json"), std::string::npos) << v.error_body.dump();
}

TEST_F(NetDistNodesTest, UrlNodesNameTheUnreachableUrl) {
  graph::NodeInputs in;
  in.set("url", std::string("http://127.0.0.1:1/view?filename=a.npy"));
  auto r = run("LoadLatentUrl", in);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("http://127.0.0.1:1/view?filename=a.npy"), std::string::npos);
  r = run("LoadImageUrl", in);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("LoadImageUrl"), std::string::npos);
}

}  // namespace
}  // namespace netdist::nodes::netdist_test
