#include "engine/sampling/noise.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "io/sha256.h"

namespace netdist::sampling {
namespace {

template <typename T>
T must_noise(Result<T> result) {
  EXPECT_TRUE(result.is_ok()) << result.status().to_string();
  return std::move(result).value();
}

std::string tensor_hash16(const at::Tensor& t) {
  at::Tensor c = t.contiguous().to(at::kFloat);
  return io::sha256_hex(std::string_view(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float)))
      .substr(0, 16);
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
