#include "engine/sampling/noise.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace netdist::sampling {
namespace {

template <typename T>
T must_noise(Result<T> result) {
  EXPECT_TRUE(result.is_ok()) << result.status().to_string();
  return std::move(result).value();
}

// FIPS 180-4 SHA-256, enough for test vectors.
std::string sha256_hex(const uint8_t* data, size_t size) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
      0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
      0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
      0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
      0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
      0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  std::string message(reinterpret_cast<const char*>(data), size);
  uint64_t bit_length = static_cast<uint64_t>(size) * 8;
  message.push_back(static_cast<char>(0x80));
  while (message.size() % 64 != 56) message.push_back(0);
  for (int i = 7; i >= 0; --i) message.push_back(static_cast<char>((bit_length >> (8 * i)) & 0xff));
  for (size_t block = 0; block < message.size(); block += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const uint8_t*>(message.data() + block + 4 * i);
      w[i] = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    }
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h) {
    for (int i = 28; i >= 0; i -= 4) out.push_back(digits[(v >> i) & 0xf]);
  }
  return out;
}

std::string tensor_hash16(const at::Tensor& t) {
  at::Tensor c = t.contiguous().to(at::kFloat);
  return sha256_hex(reinterpret_cast<const uint8_t*>(c.data_ptr<float>()), c.numel() * sizeof(float)).substr(0, 16);
}

TEST(Noise, Sha256KnownAnswer) {
  EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>("abc"), 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(nullptr, 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Noise, InitialNoiseGoldenHashes) {
  struct Case {
    uint64_t seed;
    const char* hash;
    float first;
    float last;
  };
  const Case cases[] = {
      {0, "24efac55b39e95b2", -1.1258398294448853f, -1.0782079696655273f},
      {1, "e3a63ffe8c41d892", -1.5255959033966064f, 1.7959210872650146f},
      {42, "e97f3de04c7c6ba8", 1.9269152879714966f, -0.29340609908103943f},
      {8566257, "37cae0fdc4e75a40", 0.14366357028484344f, -0.42709285020828247f},
      {4294967338ull, "e97f3de04c7c6ba8", 1.9269152879714966f, -0.29340609908103943f},
  };
  for (const Case& c : cases) {
    Result<at::Tensor> noise = initial_noise(c.seed, {1, 4, 64, 64});
    ASSERT_TRUE(noise.is_ok());
    EXPECT_EQ(noise->scalar_type(), at::kFloat);
    EXPECT_TRUE(noise->device().is_cpu());
    at::Tensor flat = noise->reshape({-1});
    EXPECT_EQ(flat[0].item<float>(), c.first) << c.seed;
    EXPECT_EQ(flat[-1].item<float>(), c.last) << c.seed;
    EXPECT_EQ(tensor_hash16(*noise), c.hash) << "seed " << c.seed;
  }
}

TEST(Noise, BatchRowsAreSlicesOfTheWholeBatch) {
  at::Tensor whole = must_noise(initial_noise(7, {4, 4, 8, 8}));
  at::Tensor rows = initial_noise_rows(7, {4, 4, 8, 8}, 1, 3);
  EXPECT_TRUE(at::equal(rows, whole.slice(0, 1, 3)));
  at::Tensor first = must_noise(initial_noise(7, {1, 4, 8, 8}));
  EXPECT_TRUE(at::equal(first[0], whole[0]));
}

TEST(Noise, BatchIndexDrawsSequentialSamples) {
  at::Tensor whole = must_noise(initial_noise(11, {3, 4, 8, 8}));
  Result<at::Tensor> picked = initial_noise(11, {3, 4, 8, 8}, std::vector<int64_t>{2, 2, 0});
  ASSERT_TRUE(picked.is_ok());
  ASSERT_EQ(picked->size(0), 3);
  EXPECT_TRUE(at::equal((*picked)[0], whole[2]));
  EXPECT_TRUE(at::equal((*picked)[1], whole[2]));
  EXPECT_TRUE(at::equal((*picked)[2], whole[0]));
  // C*H*W = 4*5*5 is not a multiple of 16: per-index draws differ from slices of one batched draw.
  at::Tensor odd_whole = must_noise(initial_noise(11, {2, 4, 5, 5}));
  at::Tensor odd_picked = must_noise(initial_noise(11, {2, 4, 5, 5}, std::vector<int64_t>{1}));
  EXPECT_EQ(odd_picked.size(0), 1);
  EXPECT_FALSE(at::equal(odd_picked[0], odd_whole[1]));
  at::Generator generator = at::detail::createCPUGenerator(11);
  at::Tensor first_draw = at::randn({1, 4, 5, 5}, generator);
  at::Tensor second_draw = at::randn({1, 4, 5, 5}, generator);
  EXPECT_TRUE(at::equal(odd_picked, second_draw));
  EXPECT_FALSE(at::equal(first_draw, second_draw));
}

TEST(Noise, BatchIndexErrors) {
  Result<at::Tensor> negative = initial_noise(1, {1, 4, 8, 8}, std::vector<int64_t>{0, -1});
  ASSERT_FALSE(negative.is_ok());
  EXPECT_EQ(negative.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(initial_noise(1, {1, 4, 8, 8}, std::vector<int64_t>{}).is_ok());
}

TEST(Noise, StepNoiseIsFullBatchAndSplitsExactly) {
  at::Tensor x = at::zeros({4, 4, 8, 8});
  NoiseSource whole(5);
  ASSERT_TRUE(whole.begin(x).is_ok());
  at::Tensor a1 = whole.next();
  at::Tensor a2 = whole.next();
  EXPECT_FALSE(at::equal(a1, a2));
  NoiseSource shard(5, 4, 2);
  ASSERT_TRUE(shard.begin(x.slice(0, 2, 4)).is_ok());
  EXPECT_TRUE(at::equal(shard.next(), a1.slice(0, 2, 4)));
  EXPECT_TRUE(at::equal(shard.next(), a2.slice(0, 2, 4)));
  // begin() restarts the generator, as ComfyUI builds a fresh one per sampler call.
  ASSERT_TRUE(whole.begin(x).is_ok());
  EXPECT_TRUE(at::equal(whole.next(), a1));
  // On the CPU the first step draw equals the initial noise of the same seed.
  EXPECT_TRUE(at::equal(a1, must_noise(initial_noise(5, {4, 4, 8, 8}))));
  NoiseSource cpu_mode(5, -1, 0, NoiseDevice::kCpu);
  ASSERT_TRUE(cpu_mode.begin(x).is_ok());
  EXPECT_TRUE(at::equal(cpu_mode.next(), a1));
}

TEST(Noise, ShardOutsideBatchIsRejected) {
  NoiseSource shard(5, 4, 3);
  Status status = shard.begin(at::zeros({2, 4, 8, 8}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("outside a batch of 4"), std::string::npos) << status.message();
}

TEST(Noise, MakeGeneratorSeedsLikeManualSeed) {
  at::Generator g = make_generator(at::kCPU, 42);
  at::Tensor a = at::randn({20}, g);
  at::Tensor b = at::randn({20}, at::detail::createCPUGenerator(42));
  EXPECT_TRUE(at::equal(a, b));
}

}  // namespace
}  // namespace netdist::sampling
