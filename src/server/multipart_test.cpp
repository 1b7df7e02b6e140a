#include "server/multipart.h"

#include <gtest/gtest.h>

namespace netdist::server {
namespace {

TEST(UploadMultipart, ParsesFieldsAndFiles) {
  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a b.png\"\r\nContent-Type: image/png\r\n\r\n"
      "\x89PNG\r\n--not-a-boundary\r\n\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
      "--XyZ\r\ncontent-disposition: form-data; name=\"subfolder\"\r\n\r\n\r\n"
      "--XyZ--\r\n";
  auto parts = parse_multipart("multipart/form-data; boundary=XyZ", body);
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 3u);
  const FormPart* image = find_part(*parts, "image");
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->filename.value_or(""), "a b.png");
  EXPECT_EQ(image->data, "\x89PNG\r\n--not-a-boundary\r\n");
  EXPECT_EQ(find_part(*parts, "overwrite")->data, "true");
  EXPECT_EQ(find_part(*parts, "subfolder")->data, "");
  EXPECT_FALSE(find_part(*parts, "subfolder")->filename.has_value());
}

TEST(UploadMultipart, QuotedBoundaryAndErrors) {
  auto ok = parse_multipart("multipart/form-data; boundary=\"a;b\"",
                            "--a;b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--a;b--");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ((*ok)[0].data, "1");
  EXPECT_FALSE(parse_multipart("application/json", "{}").is_ok());
  EXPECT_FALSE(parse_multipart("multipart/form-data", "--x").is_ok());
  auto unterminated = parse_multipart("multipart/form-data; boundary=q", "--q\r\nContent-Disposition: form-data; name=\"i\"\r\n\r\ndata");
  ASSERT_FALSE(unterminated.is_ok());
  EXPECT_NE(unterminated.status().message().find("'i'"), std::string::npos);
}

}  // namespace
}  // namespace netdist::server
