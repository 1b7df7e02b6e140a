// Test helpers: golden "name d0xd1x..." key lists (tests/data/keys/*.txt, written by
// tools/parity/dump_keys.py from ComfyUI's modules) and shape-only weight maps built from them.
#pragma once

#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "engine/runtime/weights.h"
#include "netdist/source_dir.h"

namespace netdist::testing {

using KeyList = std::map<std::string, std::vector<int64_t>>;

// Path of tests/data/<relative>, from NETDIST_TEST_DATA (set by CTest) or the source tree.
inline std::string test_data_path(const std::string& relative) {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  return std::string(dir ? dir : NETDIST_SOURCE_DIR "/tests/data") + "/" + relative;
}

// nullopt when the file does not exist.
inline std::optional<KeyList> read_key_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  KeyList keys;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string name, shape;
    fields >> name >> shape;
    std::vector<int64_t> dims;
    std::istringstream parts(shape);
    std::string part;
    while (std::getline(parts, part, 'x')) {
      if (!part.empty()) dims.push_back(std::stoll(part));
    }
    keys[name] = dims;
  }
  return keys;
}

inline KeyList key_list_of(const torch::nn::Module& module) {
  KeyList keys;
  for (const auto& item : module.named_parameters(true)) keys[item.key()] = item.value().sizes().vec();
  for (const auto& item : module.named_buffers(true)) keys[item.key()] = item.value().sizes().vec();
  return keys;
}

// First differences between two key lists, for failure messages ("" when equal).
inline std::string key_list_diff(const KeyList& expected, const KeyList& actual, size_t max_lines = 10) {
  std::ostringstream out;
  size_t n = 0;
  auto shape = [](const std::vector<int64_t>& d) {
    std::ostringstream s;
    for (size_t i = 0; i < d.size(); ++i) s << (i ? "x" : "") << d[i];
    return s.str();
  };
  for (const auto& [name, dims] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      if (n++ < max_lines) out << "missing " << name << " " << shape(dims) << "\n";
    } else if (it->second != dims) {
      if (n++ < max_lines) out << "shape " << name << " expected " << shape(dims) << " got " << shape(it->second) << "\n";
    }
  }
  for (const auto& [name, dims] : actual) {
    if (!expected.count(name) && n++ < max_lines) out << "unexpected " << name << " " << shape(dims) << "\n";
  }
  if (n > max_lines) out << "... " << (n - max_lines) << " more\n";
  return out.str();
}

// prefix + name → meta tensor of the listed shape.
inline runtime::WeightMap meta_weights(const KeyList& keys, const std::string& prefix) {
  runtime::WeightMap weights;
  for (const auto& [name, dims] : keys) weights[prefix + name] = at::empty(dims, at::TensorOptions().device(at::kMeta));
  return weights;
}

}  // namespace netdist::testing
