#include "io/sha256.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/files.h"

namespace netdist::io {
namespace {

namespace fs = std::filesystem;

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, FileMatchesBytesAcrossReadPieces) {
  // Larger than one 1 MiB read, not a multiple of it.
  std::string bytes((1 << 20) * 2 + 12345, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char((i * 131) ^ (i >> 7));
  const fs::path path = fs::temp_directory_path() / ("netdist_sha256_" + std::to_string(::getpid()));
  ASSERT_TRUE(write_file_atomic(path.string(), bytes).is_ok());
  auto h = file_sha256(path.string());
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(*h, sha256_hex(bytes));
  fs::remove(path);
}

TEST(Sha256, MissingFileNamesIt) {
  auto h = file_sha256("/nonexistent/netdist/file.bin");
  ASSERT_FALSE(h.is_ok());
  EXPECT_EQ(h.status().code(), StatusCode::kIoError);
  EXPECT_NE(h.status().message().find("/nonexistent/netdist/file.bin"), std::string::npos);
}

}  // namespace
}  // namespace netdist::io
