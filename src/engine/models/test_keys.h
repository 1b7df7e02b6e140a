// Test helper: golden key lists (tests/data/keys/*.txt, "name 1x2x3" per line) as meta-tensor weight maps.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/runtime/weights.h"
#include "netdist/source_dir.h"

namespace netdist::models::testing {

inline at::Tensor meta(std::vector<int64_t> shape) {
  return at::empty(shape, at::TensorOptions().device(at::kMeta));
}

inline std::string test_data_path(const std::string& relative) {
  const char* root = std::getenv("NETDIST_TEST_DATA");
  return std::string(root ? root : NETDIST_SOURCE_DIR "/tests/data") + "/" + relative;
}

// Reads "name shape" lines; an empty map when the file is missing.
inline runtime::WeightMap read_key_list(const std::string& relative) {
  runtime::WeightMap out;
  std::ifstream in(test_data_path(relative));
  std::string name, shape;
  while (in >> name >> shape) {
    std::vector<int64_t> dims;
    if (shape != "scalar") {
      std::stringstream parts(shape);
      std::string dim;
      while (std::getline(parts, dim, 'x')) dims.push_back(std::stoll(dim));
    }
    out[name] = meta(dims);
  }
  return out;
}

}  // namespace netdist::models::testing
