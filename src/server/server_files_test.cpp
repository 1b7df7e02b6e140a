#include <gtest/gtest.h>

#include <fstream>

#include "io/files.h"
#include "io/image_decode.h"
#include "io/png.h"
#include "netdist/source_dir.h"
#include "server/server_fixture_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;

class UploadTest : public ServerFixture {
 protected:
  HttpReply upload(const std::string& route, const std::vector<std::tuple<std::string, std::string, std::string>>& parts) {
    return post(route, multipart_body(parts), {{"Content-Type", std::string("multipart/form-data; boundary=") + kTestBoundary}});
  }
  static std::string png(int w, int h, int channels, uint8_t value, std::vector<io::PngText> text = {}) {
    io::Image8 im{w, h, channels, std::vector<uint8_t>(size_t(w) * h * channels, value)};
    return io::encode_png(im, text, 1).value();
  }
};

TEST_F(UploadTest, ViewServesOutputsAndRefusesTraversal) {
  const std::string id = submit(prompt(5));
  const json h = wait_history(id);
  const json image = h["outputs"]["9"]["images"][0];
  const std::string name = image["filename"];
  HttpReply r = get("/view?filename=" + name + "&subfolder=&type=output");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "image/png");
  EXPECT_EQ(r.headers["content-disposition"], "filename=\"" + name + "\"");
  EXPECT_TRUE(io::decode_png(r.body, name).is_ok());
  EXPECT_EQ(get("/api/view?filename=" + name + "&preview=webp;90&channel=rgb").body, r.body);
  EXPECT_EQ(get("/view?filename=" + name + "%20%5Boutput%5D&type=input").status, 200);

  std::filesystem::create_directories(root_ / "secret");
  std::ofstream(root_ / "secret" / "s.png") << "secret";
  EXPECT_EQ(get("/view?filename=../secret/s.png").status, 400);
  EXPECT_EQ(get("/view?filename=%2Fetc%2Fpasswd").status, 400);
  EXPECT_EQ(get("/view?filename=").status, 400);
  EXPECT_EQ(get("/view?filename=s.png&subfolder=../secret").status, 403);
  EXPECT_EQ(get("/view?filename=s.png&subfolder=" + (root_ / "secret").string()).status, 403);
  EXPECT_EQ(get("/view?filename=x.png&type=models").status, 400);
  EXPECT_EQ(get("/view?filename=missing.png").status, 404);
  EXPECT_EQ(get("/view").status, 404);
  std::filesystem::create_symlink(root_ / "secret" / "s.png", root_ / "output" / "link.png");
  EXPECT_EQ(get("/view?filename=link.png").status, 403);
  std::filesystem::create_directory_symlink(root_ / "secret", root_ / "output" / "linkdir");
  EXPECT_EQ(get("/view?filename=s.png&subfolder=linkdir").status, 403);
}

TEST_F(UploadTest, UploadNamesCollisionsLikeComfy) {
  const std::string a = png(4, 4, 3, 10);
  const std::string b = png(4, 4, 3, 20);
  const std::string c = png(4, 4, 3, 30);
  HttpReply r = upload("/upload/image", {{"image", "pic.png", a}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "{\"name\": \"pic.png\", \"subfolder\": \"\", \"type\": \"input\"}");
  r = upload("/upload/image", {{"image", "pic.png", a}});
  EXPECT_EQ(r.json()["name"], "pic.png");  // identical bytes: existing name reused
  r = upload("/api/upload/image", {{"image", "pic.png", b}});
  EXPECT_EQ(r.json()["name"], "pic (1).png");
  r = upload("/upload/image", {{"image", "pic.png", c}});
  EXPECT_EQ(r.json()["name"], "pic (2).png");
  r = upload("/upload/image", {{"image", "pic.png", c}, {"overwrite", "", "true"}});
  EXPECT_EQ(r.json()["name"], "pic.png");
  EXPECT_EQ(io::read_file((root_ / "input" / "pic.png").string()).value(), c);
  r = upload("/upload/image", {{"image", "s.png", a}, {"subfolder", "", "sub/dir"}, {"type", "", "temp"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json(), json({{"name", "s.png"}, {"subfolder", "sub/dir"}, {"type", "temp"}}));
  EXPECT_TRUE(std::filesystem::exists(root_ / "temp" / "sub" / "dir" / "s.png"));
  EXPECT_EQ(get("/view?filename=s.png&subfolder=sub/dir&type=temp").body, a);
}

TEST_F(UploadTest, UploadRefusesTraversalAndBadForms) {
  const std::string a = png(2, 2, 3, 1);
  EXPECT_EQ(upload("/upload/image", {{"image", "../evil.png", a}}).status, 400);
  EXPECT_EQ(upload("/upload/image", {{"image", "x.png", a}, {"subfolder", "", "../../etc"}}).status, 400);
  EXPECT_EQ(upload("/upload/image", {{"image", "x.png", a}, {"subfolder", "", "/tmp"}}).status, 400);
  EXPECT_EQ(upload("/upload/image", {{"image", "x.png", a}, {"type", "", "models"}}).status, 400);
  EXPECT_EQ(upload("/upload/image", {{"overwrite", "", "true"}}).status, 400);
  EXPECT_EQ(post("/upload/image", "not multipart").status, 400);
  std::filesystem::create_directories(root_ / "elsewhere");
  std::filesystem::create_directory_symlink(root_ / "elsewhere", root_ / "input" / "escape");
  EXPECT_EQ(upload("/upload/image", {{"image", "x.png", a}, {"subfolder", "", "escape"}}).status, 400);
  EXPECT_FALSE(std::filesystem::exists(root_ / "elsewhere" / "x.png"));
  EXPECT_FALSE(std::filesystem::exists(root_ / "evil.png"));
}

TEST_F(UploadTest, MaskReplacesOriginalAlpha) {
  const std::string original = png(3, 2, 3, 100, {{"prompt", "{}"}});
  ASSERT_EQ(upload("/upload/image", {{"image", "orig.png", original}}).status, 200);
  io::Image8 mask{3, 2, 4, std::vector<uint8_t>(3 * 2 * 4, 0)};
  for (int p = 0; p < 6; ++p) mask.pixels[p * 4 + 3] = uint8_t(p * 40);
  const std::string mask_png = io::encode_png(mask, {}, 1).value();
  const std::string ref = json({{"filename", "orig.png"}, {"subfolder", ""}, {"type", "input"}}).dump();
  HttpReply r = upload("/upload/mask", {{"image", "clipspace-mask.png", mask_png}, {"original_ref", "", ref}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["name"], "clipspace-mask.png");
  auto saved = io::decode_png(io::read_file((root_ / "input" / "clipspace-mask.png").string()).value(), "saved");
  ASSERT_TRUE(saved.is_ok());
  ASSERT_EQ(saved->first.channels, 4);
  for (int p = 0; p < 6; ++p) {
    EXPECT_EQ(saved->first.pixels[p * 4 + 0], 100);
    EXPECT_EQ(saved->first.pixels[p * 4 + 3], uint8_t(p * 40));
  }
  ASSERT_EQ(saved->second.size(), 1u);
  EXPECT_EQ(saved->second[0].key, "prompt");
  const std::string bad_ref = json({{"filename", "../x.png"}, {"type", "input"}}).dump();
  EXPECT_EQ(upload("/upload/mask", {{"image", "m2.png", mask_png}, {"original_ref", "", bad_ref}}).status, 400);
  EXPECT_EQ(upload("/upload/mask", {{"image", "m3.png", png(5, 5, 4, 0)}, {"original_ref", "", ref}}).status, 400);
}

// ComfyUI opens the original with PIL, so it may be a JPEG or WebP: its first frame, not EXIF-transposed,
// as RGBA with the mask's alpha, saved as PNG under the mask's name.
TEST_F(UploadTest, MaskOverJpegAndWebpOriginalsIsSavedAsPng) {
  if (!io::image_format_supported(io::ImageFormat::kJpeg) || !io::image_format_supported(io::ImageFormat::kWebp))
    GTEST_FAIL() << "built without JPEG/WebP support (NETDIST_IMAGE_CODECS): install libjpeg-dev libwebp-dev (scripts/install-deps)";
  const std::filesystem::path data = std::filesystem::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "images";
  for (const auto& [file, w, h] : std::vector<std::tuple<std::string, int, int>>{{"orient6.jpg", 13, 7}, {"animated.webp", 8, 6}}) {
    SCOPED_TRACE(file);
    const std::string bytes = io::read_file((data / file).string()).value();
    ASSERT_EQ(upload("/upload/image", {{"image", file, bytes}}).status, 200);
    io::Image8 mask{w, h, 4, std::vector<uint8_t>(size_t(w) * h * 4, 0)};
    for (int p = 0; p < w * h; ++p) mask.pixels[p * 4 + 3] = uint8_t(p * 3);
    const std::string ref = json({{"filename", file}, {"subfolder", ""}, {"type", "input"}}).dump();
    HttpReply r = upload("/upload/mask", {{"image", "mask-" + file + ".png", io::encode_png(mask, {}, 1).value()},
                                          {"original_ref", "", ref}});
    ASSERT_EQ(r.status, 200) << r.body;
    auto saved = io::decode_png(io::read_file((root_ / "input" / ("mask-" + file + ".png")).string()).value(), "saved");
    ASSERT_TRUE(saved.is_ok()) << saved.status().to_string();
    const io::Image8& im = saved->first;
    ASSERT_EQ(im.channels, 4);
    ASSERT_EQ(im.width, w);
    ASSERT_EQ(im.height, h);
    const io::Image8 original = io::decode_image(bytes, file, {.exif_transpose = false, .all_frames = false})->frames[0];
    for (int p = 0; p < w * h; ++p) {
      for (int c = 0; c < 3; ++c) ASSERT_EQ(im.pixels[p * 4 + c], original.pixels[p * original.channels + c]) << p;
      ASSERT_EQ(im.pixels[p * 4 + 3], uint8_t(p * 3)) << p;
    }
  }
  std::ofstream(root_ / "input" / "notes.png") << "hello, world";
  const std::string ref = json({{"filename", "notes.png"}, {"type", "input"}}).dump();
  HttpReply r = upload("/upload/mask", {{"image", "m.png", png(2, 2, 4, 0)}, {"original_ref", "", ref}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("notes.png: not a PNG, JPEG or WebP image"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace netdist::server
