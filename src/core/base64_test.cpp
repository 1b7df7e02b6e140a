#include "core/base64.h"

#include <gtest/gtest.h>

namespace netdist {

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int n = 0; n < 70; ++n) {
    const std::string enc = base64_encode(bytes);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec.is_ok()) << dec.status().to_string();
    EXPECT_EQ(*dec, bytes);
    bytes += char(n * 37 + 11);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
}

TEST(Base64, RejectsBadInput) {
  EXPECT_FALSE(base64_decode("abc").is_ok());
  EXPECT_FALSE(base64_decode("ab!d").is_ok());
  EXPECT_FALSE(base64_decode("a=bc").is_ok());
}

TEST(Hex, EncodesEveryByteLowercase) {
  EXPECT_EQ(hex_encode(""), "");
  EXPECT_EQ(hex_encode(std::string("\x00\x0f\xa5\xff", 4)), "000fa5ff");
}

}  // namespace netdist
