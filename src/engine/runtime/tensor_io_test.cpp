#include "engine/runtime/tensor_io.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace netdist::runtime {
namespace {

std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

std::string file_bytes(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "tensor_io_test_XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

WeightMap sample_weights() {
  torch::manual_seed(7);
  WeightMap w;
  w["f32"] = torch::randn({2, 3});
  w["f16"] = torch::randn({4}).to(at::kHalf);
  w["bf16"] = torch::randn({3, 1}).to(at::kBFloat16);
  w["f64"] = torch::randn({2}, at::kDouble);
  w["i64"] = torch::tensor({int64_t{1} << 40, int64_t{-3}, int64_t{0}}, at::kLong);
  w["i32"] = torch::tensor({7, -8}, at::kInt);
  w["i16"] = torch::tensor({300, -300}, at::kShort);
  w["i8"] = torch::tensor({-5, 5}, at::kChar);
  w["u8"] = torch::tensor({0, 255}, at::kByte);
  w["bool"] = torch::tensor({true, false, true});
  w["scalar"] = torch::tensor(2.5f);
  w["empty"] = torch::zeros({0, 3});
  w["transposed"] = torch::arange(6, at::kFloat).reshape({2, 3}).t();
  return w;
}

void expect_same(const WeightMap& expected, const WeightMap& actual) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, t] : expected) {
    auto it = actual.find(name);
    ASSERT_NE(it, actual.end()) << name;
    EXPECT_EQ(it->second.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(it->second.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(it->second, t)) << name;
    EXPECT_TRUE(it->second.device().is_cpu()) << name;
  }
}

TEST(TensorIo, FileRoundTripAllDtypes) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  WeightMap w = sample_weights();
  ASSERT_TRUE(save_safetensors(path, w, {{"format", "pt"}}).is_ok());
  auto loaded = load_safetensors(path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  expect_same(w, *loaded);
  EXPECT_EQ(loaded->at("scalar").dim(), 0);

  auto buffer = weights_to_buffer(w, {{"format", "pt"}});
  ASSERT_TRUE(buffer.is_ok());
  EXPECT_EQ(*buffer, read_file(path));
  auto from_buffer = weights_from_buffer(*buffer, "body");
  ASSERT_TRUE(from_buffer.is_ok()) << from_buffer.status().to_string();
  expect_same(w, *from_buffer);
}

TEST(TensorIo, ZeroCopyViewsKeepFileAlive) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  WeightMap w = sample_weights();
  ASSERT_TRUE(save_safetensors(path, w, {}).is_ok());
  const std::string before = read_file(path);

  auto file = io::SafetensorsFile::open(path);
  ASSERT_TRUE(file.is_ok());
  std::shared_ptr<io::SafetensorsFile> f = std::move(*file);
  const uint8_t* lo = f->tensors().front().data;
  const uint8_t* hi = f->tensors().back().data + f->tensors().back().byte_size;
  {
    auto loaded = weights_from_file(f);
    ASSERT_TRUE(loaded.is_ok());
    for (const auto& name : {"f32", "f16", "bf16", "f64", "i64", "bool", "scalar"}) {
      const auto* p = static_cast<const uint8_t*>(loaded->at(name).data_ptr());
      EXPECT_EQ(p, f->find(name)->data) << name;
      EXPECT_TRUE(p >= lo && p < hi) << name;
    }
    EXPECT_GT(f.use_count(), 1);
    at::Tensor survivor = loaded->at("f32");
    loaded->clear();
    EXPECT_GT(f.use_count(), 1);
    survivor.add_(1.0f);
    EXPECT_TRUE(torch::allclose(survivor, w["f32"] + 1.0f));
  }
  EXPECT_EQ(f.use_count(), 1);
  EXPECT_EQ(read_file(path), before);
}

// The reference implementation's documentation example: a 60-byte header, so the I32 data is not 4-aligned.
TEST(TensorIo, UnalignedDataIsCopied) {
  const std::string header = R"({"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})";
  ASSERT_EQ(header.size(), 60u);
  const int32_t values[4] = {1, -2, 3, 1 << 30};
  std::string bytes = le64(60) + header + std::string(reinterpret_cast<const char*>(values), 16);
  auto loaded = weights_from_buffer(bytes, "doc.safetensors");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_TRUE(torch::equal(loaded->at("test"), torch::tensor({1, -2, 3, 1 << 30}, at::kInt).reshape({2, 2})));
}

struct F8Case {
  uint8_t f8;
  uint16_t f16;
  float value;
};

TEST(TensorIo, Float8E4M3Decode) {
  const F8Case cases[] = {
      {0x00, 0x0000, 0.0f},         {0x80, 0x8000, -0.0f},     {0x01, 0x1800, 0.001953125f},
      {0x07, 0x2300, 0.013671875f}, {0x08, 0x2400, 0.015625f}, {0x38, 0x3C00, 1.0f},
      {0x3C, 0x3E00, 1.5f},         {0x40, 0x4000, 2.0f},      {0xC0, 0xC000, -2.0f},
      {0x7E, 0x5F00, 448.0f},       {0xFE, 0xDF00, -448.0f},   {0x77, 0x5B80, 240.0f},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(f8e4m3fn_to_f16_bits(c.f8), c.f16) << std::hex << int(c.f8);
    EXPECT_EQ(static_cast<float>(at::Half(c.f16, at::Half::from_bits())), c.value) << std::hex << int(c.f8);
  }
  EXPECT_TRUE(std::isnan(static_cast<float>(at::Half(f8e4m3fn_to_f16_bits(0x7F), at::Half::from_bits()))));
  EXPECT_TRUE(std::isnan(static_cast<float>(at::Half(f8e4m3fn_to_f16_bits(0xFF), at::Half::from_bits()))));
  for (int b = 0; b < 256; ++b) {
    const int sign = b >> 7, exponent = (b >> 3) & 0xF, mantissa = b & 7;
    if (exponent == 0xF && mantissa == 7) continue;
    const double magnitude =
        exponent == 0 ? std::ldexp(mantissa / 8.0, -6) : std::ldexp(1 + mantissa / 8.0, exponent - 7);
    const float half = at::Half(f8e4m3fn_to_f16_bits(static_cast<uint8_t>(b)), at::Half::from_bits());
    EXPECT_EQ(half, static_cast<float>(sign ? -magnitude : magnitude)) << b;
    EXPECT_EQ(std::signbit(half), sign == 1) << b;
  }
}

TEST(TensorIo, Float8E5M2Decode) {
  const F8Case cases[] = {
      {0x00, 0x0000, 0.0f},
      {0x80, 0x8000, -0.0f},
      {0x01, 0x0100, 1.52587890625e-05f},
      {0x04, 0x0400, 6.103515625e-05f},
      {0x3C, 0x3C00, 1.0f},
      {0x3E, 0x3E00, 1.5f},
      {0x7B, 0x7B00, 57344.0f},
      {0xFB, 0xFB00, -57344.0f},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(f8e5m2_to_f16_bits(c.f8), c.f16) << std::hex << int(c.f8);
    EXPECT_EQ(static_cast<float>(at::Half(c.f16, at::Half::from_bits())), c.value) << std::hex << int(c.f8);
  }
  EXPECT_EQ(static_cast<float>(at::Half(f8e5m2_to_f16_bits(0x7C), at::Half::from_bits())), INFINITY);
  EXPECT_EQ(static_cast<float>(at::Half(f8e5m2_to_f16_bits(0xFC), at::Half::from_bits())), -INFINITY);
  EXPECT_TRUE(std::isnan(static_cast<float>(at::Half(f8e5m2_to_f16_bits(0x7D), at::Half::from_bits()))));
  EXPECT_TRUE(std::isnan(static_cast<float>(at::Half(f8e5m2_to_f16_bits(0xFF), at::Half::from_bits()))));
}

TEST(TensorIo, Float8TensorsBecomeHalf) {
  std::string bytes = file_bytes(R"({"a":{"dtype":"F8_E4M3","shape":[2,2],"data_offsets":[0,4]},)"
                                 R"("b":{"dtype":"F8_E5M2","shape":[3],"data_offsets":[4,7]}})",
                                 "\x38\xC0\x7E\x01\x3C\x7B\xFC");
  auto loaded = weights_from_buffer(bytes, "f8.safetensors");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  const at::Tensor& a = loaded->at("a");
  EXPECT_EQ(a.scalar_type(), at::kHalf);
  EXPECT_EQ(a.sizes(), at::IntArrayRef({2, 2}));
  EXPECT_TRUE(
      torch::equal(a.to(at::kFloat), torch::tensor({1.0f, -2.0f, 448.0f, 0.001953125f}).reshape({2, 2})));
  EXPECT_TRUE(torch::equal(loaded->at("b").to(at::kFloat), torch::tensor({1.0f, 57344.0f, -INFINITY})));

  auto as_float = weights_from_buffer(bytes, "f8.safetensors", LoadDtype::kFloat32);
  ASSERT_TRUE(as_float.is_ok());
  EXPECT_EQ(as_float->at("a").scalar_type(), at::kFloat);
}

TEST(TensorIo, UnsignedTypesWiden) {
  std::string data;
  const uint16_t u16[2] = {65535, 1};
  const uint32_t u32[1] = {4294967295u};
  const uint64_t u64[1] = {uint64_t{1} << 62};
  data.append(reinterpret_cast<const char*>(u64), 8);
  data.append(reinterpret_cast<const char*>(u32), 4);
  data.append(reinterpret_cast<const char*>(u16), 4);
  std::string header = R"({"u64":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},)"
                       R"("u32":{"dtype":"U32","shape":[1],"data_offsets":[8,12]},)"
                       R"("u16":{"dtype":"U16","shape":[2],"data_offsets":[12,16]}})";
  auto loaded = weights_from_buffer(file_bytes(header, data), "u.safetensors");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_TRUE(torch::equal(loaded->at("u16"), torch::tensor({65535, 1}, at::kInt)));
  EXPECT_TRUE(torch::equal(loaded->at("u32"), torch::tensor({int64_t{4294967295}}, at::kLong)));
  EXPECT_TRUE(torch::equal(loaded->at("u64"), torch::tensor({int64_t{1} << 62}, at::kLong)));

  const uint64_t too_big = ~uint64_t{0};
  auto bad = weights_from_buffer(file_bytes(R"({"big":{"dtype":"U64","shape":[],"data_offsets":[0,8]}})",
                                            std::string(reinterpret_cast<const char*>(&too_big), 8)),
                                 "u.safetensors");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(bad.status().message().rfind("u.safetensors: tensor 'big'", 0), 0u) << bad.status().message();
}

TEST(TensorIo, BadBoolAndLoadErrorsNameTheFile) {
  auto bad = weights_from_buffer(
      file_bytes(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x02"),
      "mask.safetensors");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("mask.safetensors: tensor 'm': BOOL element 1 is 2"),
            std::string::npos)
      << bad.status().message();

  TempDir dir;
  auto missing = load_safetensors(dir.file("nope.safetensors"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.safetensors"), std::string::npos);
}

TEST(TensorIo, SaveRejectsUnsupportedDtype) {
  TempDir dir;
  WeightMap w;
  w["c"] = torch::zeros({2}, at::kComplexFloat);
  Status s = save_safetensors(dir.file("c.safetensors"), w);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  EXPECT_NE(s.message().find("tensor 'c'"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.safetensors")));
}

}  // namespace
}  // namespace netdist::runtime

namespace netdist::runtime {
namespace {

float f8_value(uint8_t code) { return static_cast<float>(c10::Half(f8e4m3fn_to_f16_bits(code), c10::Half::from_bits())); }

TEST(TensorIoF8Encode, EveryFiniteCodeRoundTrips) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;  // NaN
    const uint8_t back = f8e4m3fn_from_float(f8_value(uint8_t(code)));
    if (code == 0x80) {
      EXPECT_EQ(back, 0x80);  // -0 keeps its sign
    } else {
      EXPECT_EQ(back, code) << code;
    }
  }
}

TEST(TensorIoF8Encode, RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(f8e4m3fn_from_float(1000.0f), 0x7E);   // 448
  EXPECT_EQ(f8e4m3fn_from_float(-1000.0f), 0xFE);  // -448
  EXPECT_EQ(f8e4m3fn_from_float(NAN), 0x7F);
  // 1.0 = 0x38, next 1.125 = 0x39, then 1.25 = 0x3A: 1.0625 ties to the even 0x38, 1.1875 to 0x3A.
  EXPECT_EQ(f8e4m3fn_from_float(1.0625f), 0x38);
  EXPECT_EQ(f8e4m3fn_from_float(1.1875f), 0x3A);
  EXPECT_EQ(f8e4m3fn_from_float(1.07f), 0x39);
}

TEST(TensorIoF8Encode, MixedSaveLoadsBackAsHalf) {
  WeightMap w;
  w["unet.a"] = at::tensor({0.5f, -1.0f, 3.0f, 100.0f});
  w["vae.b"] = at::tensor({0.1f, 0.2f}).to(at::kHalf);
  const std::string path = ::testing::TempDir() + "/mixed_f8.safetensors";
  ASSERT_TRUE(save_safetensors_mixed(path, w, {{"k", "v"}}, [](const std::string& n) { return n.rfind("unet.", 0) == 0; })
                  .is_ok());
  WeightMap back = load_safetensors(path).value();
  EXPECT_EQ(back["unet.a"].scalar_type(), at::kHalf);
  EXPECT_TRUE(at::equal(back["unet.a"].to(at::kFloat), at::tensor({0.5f, -1.0f, 3.0f, 96.0f})));
  EXPECT_TRUE(at::equal(back["vae.b"], w["vae.b"]));
}

}  // namespace
}  // namespace netdist::runtime
