// Paths to test data for the engine/text tests: $NETDIST_TEST_DATA (set by ctest), else the source tree.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include "netdist/source_dir.h"

namespace netdist::text::testing {

inline std::string test_data_dir() {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  return dir != nullptr && *dir != '\0' ? std::string(dir)
                                        : (std::filesystem::path(NETDIST_SOURCE_DIR) / "tests/data").string();
}

inline std::string clip_vocab_dir() { return test_data_dir() + "/clip-vit-l-14-tokenizer"; }

}  // namespace netdist::text::testing
