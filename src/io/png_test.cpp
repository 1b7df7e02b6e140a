#include "io/png.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace netdist::io {
namespace {

Image8 gradient(int w, int h, int c) {
  Image8 im{w, h, c, {}};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) im.pixels.push_back(uint8_t((x * 7 + y * 13 + k * 50) & 255));
  return im;
}

TEST(Png, RoundTripPixelsAndText) {
  for (int c : {1, 3, 4}) {
    Image8 im = gradient(17, 9, c);
    std::vector<PngText> text = {{"prompt", "{\"3\": {\"class_type\": \"KSampler\"}}"}, {"workflow", "{}"}};
    Result<std::string> bytes = encode_png(im, text, 4);
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
    auto decoded = decode_png(*bytes, "mem.png");
    ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
    EXPECT_EQ(decoded->first.width, 17);
    EXPECT_EQ(decoded->first.height, 9);
    EXPECT_EQ(decoded->first.channels, c);
    EXPECT_EQ(decoded->first.pixels, im.pixels);
    ASSERT_EQ(decoded->second.size(), 2u);
    EXPECT_EQ(decoded->second[0].key, "prompt");
    EXPECT_EQ(decoded->second[0].value, text[0].value);
    EXPECT_EQ(decoded->second[1].key, "workflow");
  }
}

TEST(Png, SameInputSameBytes) {
  Image8 im = gradient(8, 8, 3);
  EXPECT_EQ(encode_png(im, {}, 4).value(), encode_png(im, {}, 4).value());
}

TEST(Png, BadInputsAreNamed) {
  EXPECT_EQ(encode_png(Image8{2, 2, 2, std::vector<uint8_t>(8)}, {}, 4).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(encode_png(Image8{2, 2, 3, std::vector<uint8_t>(5)}, {}, 4).status().code(),
            StatusCode::kInvalidArgument);
  auto not_png = decode_png("hello world, not a png", "upload.png");
  EXPECT_NE(not_png.status().message().find("upload.png: not a PNG"), std::string::npos);
  std::string bytes = encode_png(gradient(32, 32, 3), {}, 4).value();
  auto truncated = decode_png(bytes.substr(0, bytes.size() / 2), "half.png");
  EXPECT_EQ(truncated.status().code(), StatusCode::kCorruption);
  EXPECT_NE(truncated.status().message().find("half.png"), std::string::npos);
  std::string flipped = bytes;
  flipped[40] ^= 0x55;  // inside IDAT: CRC mismatch
  EXPECT_FALSE(decode_png(flipped, "crc.png").is_ok());
}

TEST(Png, AtomicWriteAndErrors) {
  auto dir = std::filesystem::temp_directory_path() / ("netdist_png_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "a.png").string();
  ASSERT_TRUE(write_file_atomic(path, "abc").is_ok());
  EXPECT_EQ(read_file(path).value(), "abc");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);  // no temporary left behind
  Status s = write_file_atomic((dir / "missing" / "b.png").string(), "x");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("missing/b.png"), std::string::npos);
  EXPECT_EQ(read_file((dir / "nope").string()).status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace netdist::io
