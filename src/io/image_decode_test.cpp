// JPEG and WebP decoding against PIL's pixels (tests/data/images/*.golden, made by generate.py there with
// Debian's python3-pil on the same libjpeg-turbo and libwebp), EXIF orientation, animated WebP, and the
// failure paths on purpose: every truncation of a file, corrupt bytes, unknown formats, oversized headers.
#include "io/image_decode.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/files.h"
#include "netdist/source_dir.h"

namespace netdist::io {
namespace {

namespace fs = std::filesystem;

fs::path images_dir() { return fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "images"; }

std::string read(const std::string& name) { return read_file((images_dir() / name).string()).value(); }

struct Golden {
  int frames = 0, width = 0, height = 0, channels = 0;
  std::vector<std::vector<uint8_t>> pixels;
};

Golden load_golden(const std::string& name) {
  std::ifstream in(images_dir() / (name + ".golden"));
  Golden g;
  in >> g.frames >> g.width >> g.height >> g.channels;
  for (int f = 0; f < g.frames; ++f) {
    std::vector<uint8_t> px;
    for (int y = 0; y < g.height; ++y) {
      std::string hex;
      in >> hex;
      for (size_t i = 0; i + 1 < hex.size(); i += 2)
        px.push_back(uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    g.pixels.push_back(std::move(px));
  }
  return g;
}

bool needs_codec(ImageFormat f) {
  // CI configures with NETDIST_IMAGE_CODECS=ON, where both are always built in.
  return image_format_supported(f);
}

void expect_golden(const std::string& name) {
  SCOPED_TRACE(name);
  const Golden g = load_golden(name);
  ASSERT_GT(g.frames, 0) << "missing or empty golden " << name << ".golden";
  auto decoded = decode_image(read(name), name);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  ASSERT_EQ(decoded->frames.size(), size_t(g.frames));
  for (int f = 0; f < g.frames; ++f) {
    const Image8& im = decoded->frames[f];
    EXPECT_EQ(im.width, g.width);
    EXPECT_EQ(im.height, g.height);
    ASSERT_EQ(im.channels, g.channels);
    EXPECT_EQ(im.pixels, g.pixels[f]) << "frame " << f;
  }
}

class ImageDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!needs_codec(ImageFormat::kJpeg) || !needs_codec(ImageFormat::kWebp))
      GTEST_FAIL() << "built without JPEG/WebP support (NETDIST_IMAGE_CODECS; install libjpeg-dev libwebp-dev)";
  }
};

TEST_F(ImageDecode, JpegPixelsAndEveryExifOrientationMatchPil) {
  for (int o = 1; o <= 8; ++o) expect_golden("orient" + std::to_string(o) + ".jpg");
  expect_golden("gray.jpg");
  expect_golden("cmyk.jpg");
  expect_golden("progressive.jpg");
}

TEST_F(ImageDecode, WebpPixelsAlphaAnimationAndOrientationMatchPil) {
  expect_golden("alpha.webp");
  expect_golden("lossless.webp");
  expect_golden("orient6.webp");
  expect_golden("animated.webp");
  auto anim = decode_image(read("animated.webp"), "a.webp");
  ASSERT_TRUE(anim.is_ok());
  EXPECT_NE(anim->frames[0].pixels, anim->frames[1].pixels);
}

TEST_F(ImageDecode, OptionsTurnOffOrientationAndLaterFrames) {
  DecodeOptions plain;
  plain.exif_transpose = false;
  plain.all_frames = false;
  auto jpeg = decode_image(read("orient6.jpg"), "o.jpg", plain);
  ASSERT_TRUE(jpeg.is_ok());
  EXPECT_EQ(jpeg->frames[0].width, 13);
  EXPECT_EQ(jpeg->frames[0].pixels, decode_image(read("orient1.jpg"), "o1.jpg")->frames[0].pixels);
  auto anim = decode_image(read("animated.webp"), "a.webp", plain);
  ASSERT_TRUE(anim.is_ok());
  EXPECT_EQ(anim->frames.size(), 1u);
}

// The format comes from the bytes: a JPEG named .png decodes as JPEG, a text file named .png is refused.
TEST_F(ImageDecode, FormatIsSniffedFromTheBytes) {
  const std::string jpeg = read("gray.jpg");
  EXPECT_EQ(sniff_image_format(jpeg), ImageFormat::kJpeg);
  EXPECT_EQ(sniff_image_format(read("alpha.webp")), ImageFormat::kWebp);
  auto named_png = decode_image(jpeg, "photo.png");
  ASSERT_TRUE(named_png.is_ok());
  EXPECT_EQ(named_png->format, ImageFormat::kJpeg);
  auto text = decode_image("hello, world\n", "notes.png");
  ASSERT_FALSE(text.is_ok());
  EXPECT_EQ(text.status().message(),
            "notes.png: not a PNG, JPEG or WebP image (it starts with \"hello, w\")");
  auto empty = read_image_header("", "empty.jpg");
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().message(), "empty.jpg: the file is empty, not an image");
  EXPECT_FALSE(read_image_header(std::string("GIF89a\x01\x00\x01\x00", 10), "g.gif").is_ok());
}

TEST_F(ImageDecode, HeadersGiveTheStoredSize) {
  auto h = read_image_file_header((images_dir() / "orient6.jpg").string());
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(h->format, ImageFormat::kJpeg);
  EXPECT_EQ(h->width, 13);
  EXPECT_EQ(h->height, 7);
  h = read_image_file_header((images_dir() / "animated.webp").string());
  ASSERT_TRUE(h.is_ok());
  EXPECT_TRUE(h->animated);
  EXPECT_EQ(h->width, 8);
  auto missing = read_image_file_header((images_dir() / "nope.jpg").string());
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("nope.jpg"), std::string::npos);
}

// Headers longer than the first read (APP segments of 320 KB before the frame header) are read whole.
TEST_F(ImageDecode, FileHeaderPastTheFirstReadIsFound) {
  const std::string jpeg = read("gray.jpg");
  std::string big = jpeg.substr(0, 2);
  for (int i = 0; i < 5; ++i) big += std::string("\xff\xe2\xff\xff", 4) + std::string(0xfffd, 'x');
  big += jpeg.substr(2);
  const fs::path path = fs::temp_directory_path() / ("netdist_bigapp_" + std::to_string(::getpid()) + ".jpg");
  ASSERT_TRUE(write_file_atomic(path.string(), big).is_ok());
  auto h = read_image_file_header(path.string());
  fs::remove(path);
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(h->width, 11);
  EXPECT_TRUE(decode_image(big, "big.jpg").is_ok());
}

// Every prefix of a file fails with a Status naming it (libjpeg's default handler would exit()).
TEST_F(ImageDecode, EveryTruncationIsAnErrorNamingTheFile) {
  for (const std::string name :
       {"orient6.jpg", "progressive.jpg", "cmyk.jpg", "alpha.webp", "animated.webp"}) {
    const std::string bytes = read(name);
    // A JPEG missing only its final EOI marker still has every pixel; stop before it.
    const size_t last = sniff_image_format(bytes) == ImageFormat::kJpeg ? bytes.size() - 2 : bytes.size();
    for (size_t n = 0; n < last; ++n) {
      auto r = decode_image(std::string_view(bytes).substr(0, n), "cut.img");
      ASSERT_FALSE(r.is_ok()) << name << " cut at " << n << " of " << bytes.size();
      EXPECT_EQ(r.status().message().rfind("cut.img: ", 0), 0u) << r.status().message();
    }
  }
  // Headers intact, pixel data cut: validation passes, decoding says truncated.
  const std::string jpeg = read("orient1.jpg");
  const std::string cut = jpeg.substr(0, jpeg.size() - 40);
  EXPECT_TRUE(read_image_header(cut, "cut.jpg").is_ok())
      << read_image_header(cut, "cut.jpg").status().to_string();
  auto r = decode_image(cut, "cut.jpg");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().rfind("cut.jpg: JPEG file is truncated", 0), 0u) << r.status().message();
}

TEST_F(ImageDecode, CorruptBytesNeverCrash) {
  for (const std::string name :
       {"orient6.jpg", "progressive.jpg", "alpha.webp", "animated.webp", "lossless.webp"}) {
    const std::string bytes = read(name);
    for (size_t at = 2; at < bytes.size(); at += 3) {
      std::string bad = bytes;
      bad[at] = char(uint8_t(bad[at]) ^ 0x5a);
      auto r = decode_image(bad, "bad.img");
      if (r.is_ok()) {
        for (const Image8& im : r->frames)
          EXPECT_EQ(im.pixels.size(), size_t(im.width) * im.height * im.channels);
      } else {
        EXPECT_EQ(r.status().message().rfind("bad.img: ", 0), 0u) << r.status().message();
      }
    }
  }
  std::string bad_sof = read("gray.jpg");
  const size_t sof = bad_sof.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  bad_sof[sof + 4] = 4;  // sample precision 4 bits
  auto r = decode_image(bad_sof, "sof.jpg");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().rfind("sof.jpg: corrupt JPEG: ", 0), 0u) << r.status().message();
}

TEST_F(ImageDecode, OversizedImagesAreRefusedFromTheHeader) {
  std::string big = read("gray.jpg");
  const size_t sof = big.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  big[sof + 5] = char(0x50);  // height 0x50xx: over 16384
  auto r = read_image_header(big, "huge.jpg");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("huge.jpg: JPEG image of 11x"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("larger than 16384"), std::string::npos);
}

TEST(ExifOrientation, ReadsBothByteOrdersAndToleratesGarbage) {
  const std::string le("Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0", 28);
  EXPECT_EQ(exif_orientation(le), 6);
  const std::string be("MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0", 22);
  EXPECT_EQ(exif_orientation(be), 8);
  EXPECT_EQ(exif_orientation(le.substr(0, 20)), 1);  // the entry is cut off
  EXPECT_EQ(exif_orientation("Exif\0\0garbage"), 1);
  EXPECT_EQ(exif_orientation(""), 1);
  std::string far = le;
  far[10] = '\x7f';  // IFD offset past the end
  EXPECT_EQ(exif_orientation(far), 1);
}

TEST(ExifOrientation, TransposesAsPil) {
  Image8 im{3, 2, 1, {1, 2, 3, 4, 5, 6}};  // 1 2 3 / 4 5 6
  EXPECT_EQ(apply_exif_orientation(im, 1).pixels, im.pixels);
  EXPECT_EQ(apply_exif_orientation(im, 2).pixels, (std::vector<uint8_t>{3, 2, 1, 6, 5, 4}));
  EXPECT_EQ(apply_exif_orientation(im, 3).pixels, (std::vector<uint8_t>{6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(apply_exif_orientation(im, 4).pixels, (std::vector<uint8_t>{4, 5, 6, 1, 2, 3}));
  const Image8 r6 = apply_exif_orientation(im, 6);  // 90 clockwise: 4 1 / 5 2 / 6 3
  EXPECT_EQ(r6.width, 2);
  EXPECT_EQ(r6.height, 3);
  EXPECT_EQ(r6.pixels, (std::vector<uint8_t>{4, 1, 5, 2, 6, 3}));
  EXPECT_EQ(apply_exif_orientation(im, 8).pixels, (std::vector<uint8_t>{3, 6, 2, 5, 1, 4}));
  EXPECT_EQ(apply_exif_orientation(im, 5).pixels, (std::vector<uint8_t>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(apply_exif_orientation(im, 7).pixels, (std::vector<uint8_t>{6, 3, 5, 2, 4, 1}));
}

}  // namespace
}  // namespace netdist::io
