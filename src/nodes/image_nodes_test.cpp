// LoadImage with JPEG and WebP files through the real registry, validator and executor: the IMAGE and MASK
// tensors against PIL's pixels (tests/data/images/*.golden), and unreadable files refused at validation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/files.h"
#include "io/image_decode.h"
#include "netdist/source_dir.h"
#include "nodes/image_nodes.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

fs::path images_dir() { return fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "images"; }

// frames × [H, W, C] bytes from NAME.golden (see tests/data/images/generate.py).
at::Tensor golden(const std::string& name) {
  std::ifstream in(images_dir() / (name + ".golden"));
  int frames = 0, w = 0, h = 0, c = 0;
  in >> frames >> w >> h >> c;
  std::vector<uint8_t> px;
  for (std::string hex; in >> hex;) {
    for (size_t i = 0; i + 1 < hex.size(); i += 2) px.push_back(uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  EXPECT_EQ(px.size(), size_t(frames) * w * h * c) << name;
  return at::from_blob(px.data(), {frames, h, w, c}, at::kByte).clone();
}

class LoadImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_loadimage_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "input");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_image_nodes(registry_, env_);
    graph::NodeSchema probe = make_schema("TestProbe", "Probe", "test",
                                          {graph::link_input("image", "IMAGE"), graph::link_input("mask", "MASK")}, {});
    probe.output_node = true;
    add_fn_node(registry_, probe, [this](graph::NodeContext&, const graph::NodeInputs& in) -> Result<std::vector<graph::Value>> {
      ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
      ND_ASSIGN_OR_RETURN(auto mask, need<MaskObject>(in, "mask"));
      image_ = image->images;
      mask_ = mask->mask;
      return std::vector<graph::Value>{};
    });
  }
  void TearDown() override { fs::remove_all(dir_); }

  void put(const std::string& data_file, const std::string& as) {
    fs::copy_file(images_dir() / data_file, dir_ / "input" / as, fs::copy_options::overwrite_existing);
  }

  static Json prompt(const std::string& image) {
    Json p = Json::parse(R"({"1": {"class_type": "LoadImage", "inputs": {"image": ""}},
                             "2": {"class_type": "TestProbe", "inputs": {"image": ["1", 0], "mask": ["1", 1]}}})");
    p["1"]["inputs"]["image"] = image;
    return p;
  }

  graph::ExecutionOutcome run(const std::string& image) {
    graph::ValidationResult v = graph::validate_prompt(prompt(image), registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
  at::Tensor image_, mask_;
};

bool codecs_built_in() {
  return io::image_format_supported(io::ImageFormat::kJpeg) && io::image_format_supported(io::ImageFormat::kWebp);
}

TEST_F(LoadImageTest, JpegWithExifOrientationGivesPilsRotatedPixelsAndAnEmptyMask) {
  if (!codecs_built_in()) GTEST_FAIL() << "built without JPEG/WebP support (NETDIST_IMAGE_CODECS): install libjpeg-dev libwebp-dev (scripts/install-deps)";
  put("orient6.jpg", "photo.JPG");
  graph::ExecutionOutcome out = run("photo.JPG");
  ASSERT_TRUE(out.success) << out.status.to_string();
  const at::Tensor expected = golden("orient6.jpg").to(at::kFloat) / 255.0;
  ASSERT_EQ(image_.sizes(), (std::vector<int64_t>{1, 13, 7, 3}));
  EXPECT_TRUE(at::equal(image_, expected));
  EXPECT_TRUE(at::equal(mask_, at::zeros({1, 64, 64})));
}

// An animated WebP is a batch of its frames, each with its mask = 1 - alpha (ComfyUI's ImageSequence loop).
TEST_F(LoadImageTest, AnimatedWebpIsABatchWithOneMaskPerFrame) {
  if (!codecs_built_in()) GTEST_FAIL() << "built without JPEG/WebP support (NETDIST_IMAGE_CODECS): install libjpeg-dev libwebp-dev (scripts/install-deps)";
  put("animated.webp", "anim.webp");
  graph::ExecutionOutcome out = run("anim.webp");
  ASSERT_TRUE(out.success) << out.status.to_string();
  const at::Tensor expected = golden("animated.webp").to(at::kFloat) / 255.0;
  ASSERT_EQ(image_.sizes(), (std::vector<int64_t>{3, 6, 8, 3}));
  EXPECT_TRUE(at::equal(image_, expected.slice(3, 0, 3).contiguous()));
  ASSERT_EQ(mask_.sizes(), (std::vector<int64_t>{3, 6, 8}));
  EXPECT_TRUE(at::equal(mask_, 1.0 - expected.select(3, 3)));
}

// Not an image, an unknown format, headers cut off: refused at validation with ComfyUI's error shape,
// naming the file, instead of being queued and failing later.
TEST_F(LoadImageTest, UnreadableFilesAreRefusedAtValidationNamingTheFile) {
  ASSERT_TRUE(io::write_file_atomic((dir_ / "input" / "notes.png").string(), "hello, world\n").is_ok());
  const std::string jpeg = io::read_file((images_dir() / "gray.jpg").string()).value();
  ASSERT_TRUE(io::write_file_atomic((dir_ / "input" / "cut.jpg").string(), jpeg.substr(0, 100)).is_ok());
  for (const std::string name : {"notes.png", "cut.jpg", "missing.png"}) {
    graph::ValidationResult v = graph::validate_prompt(prompt(name), registry_);
    ASSERT_FALSE(v.ok()) << name;
    const Json& error = v.error_body["node_errors"]["1"]["errors"][0];
    EXPECT_EQ(error["type"], "custom_validation_failed") << v.error_body.dump();
    const std::string details = error["details"].get<std::string>();
    EXPECT_EQ(details.rfind("image - Invalid image file: " + name, 0), 0u) << details;
    EXPECT_EQ(v.error_body["node_errors"]["1"]["class_type"], "LoadImage");
  }
  graph::ValidationResult v = graph::validate_prompt(prompt("notes.png"), registry_);
  EXPECT_EQ(v.error_body["node_errors"]["1"]["errors"][0]["details"],
            "image - Invalid image file: notes.png: not a PNG, JPEG or WebP image (it starts with \"hello, w\")");
}

// Headers intact but the pixel data cut off: validation passes (it reads only headers), and the prompt
// fails at LoadImage with a Status naming the file; the process goes on.
TEST_F(LoadImageTest, TruncatedBodyFailsThePromptNamingTheFile) {
  if (!codecs_built_in()) GTEST_FAIL() << "built without JPEG/WebP support (NETDIST_IMAGE_CODECS): install libjpeg-dev libwebp-dev (scripts/install-deps)";
  const std::string jpeg = io::read_file((images_dir() / "orient1.jpg").string()).value();
  ASSERT_TRUE(io::write_file_atomic((dir_ / "input" / "half.jpg").string(), jpeg.substr(0, jpeg.size() - 40)).is_ok());
  graph::ExecutionOutcome out = run("half.jpg");
  EXPECT_FALSE(out.success);
  EXPECT_NE(out.status.message().find("half.jpg: JPEG file is truncated"), std::string::npos) << out.status.to_string();
  put("orient1.jpg", "whole.jpg");
  EXPECT_TRUE(run("whole.jpg").success);
}

}  // namespace
}  // namespace netdist::nodes
