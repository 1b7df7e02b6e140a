#include "core/device_name.h"

#include <gtest/gtest.h>

namespace netdist {
namespace {

TEST(DeviceName, AcceptsCpuCudaAndCudaIndex) {
  auto cpu = parse_device_name("cpu");
  ASSERT_TRUE(cpu.is_ok());
  EXPECT_FALSE(cpu->cuda);
  auto cuda = parse_device_name("cuda");
  ASSERT_TRUE(cuda.is_ok());
  EXPECT_TRUE(cuda->cuda);
  EXPECT_FALSE(cuda->index.has_value());
  auto three = parse_device_name("cuda:3");
  ASSERT_TRUE(three.is_ok());
  EXPECT_TRUE(three->cuda);
  EXPECT_EQ(three->index, 3);
  EXPECT_EQ(parse_device_name("cuda:0")->index, 0);
}

TEST(DeviceName, RefusesAnythingElseNamingTheText) {
  for (const char* text : {"cuda:abc", "cuda:", "cuda:-1", "cuda:+1", "cuda:1x", "cuda: 1", "cuda:99999", "CPU",
                           "gpu", "", "cuda0", "cpu:0", "cudaa"}) {
    auto d = parse_device_name(text);
    ASSERT_FALSE(d.is_ok()) << text;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(d.status().message().find(std::string("device '") + text + "'"), std::string::npos)
        << d.status().message();
    EXPECT_NE(d.status().message().find("expected cpu, cuda or cuda:N"), std::string::npos) << d.status().message();
  }
}

}  // namespace
}  // namespace netdist
