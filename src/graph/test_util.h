// Helpers shared by graph/ tests: golden files, order-insensitive JSON comparison, an event recorder.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/executor.h"
#include "netdist/source_dir.h"

namespace netdist::graph::testing {

inline std::string test_data_dir() {
  const char* env = std::getenv("NETDIST_TEST_DATA");
  return env ? env : (std::filesystem::path(NETDIST_SOURCE_DIR) / "tests/data").string();
}

inline Json load_json(const std::string& relative) {
  std::ifstream in(test_data_dir() + "/" + relative);
  std::stringstream ss;
  ss << in.rdbuf();
  return Json::parse(ss.str());
}

// Python set order is arbitrary: lists that come from sets are compared sorted by (length, text).
inline void sort_ids(Json& list) {
  if (!list.is_array()) return;
  std::vector<std::string> ids;
  for (const Json& v : list) ids.push_back(v.get<std::string>());
  std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  list = ids;
}

// Key order is not part of JSON equality here (aiohttp and clients do not care).
inline nlohmann::json unordered(const Json& j) { return nlohmann::json::parse(j.dump()); }

struct Recorder : EventSink {
  void event(const std::string& type, Json data) override {
    data.erase("timestamp");
    if (data.contains("executed")) sort_ids(data["executed"]);
    if (data.contains("current_outputs")) sort_ids(data["current_outputs"]);
    events.push_back(Json::array({type, std::move(data)}));
  }
  std::vector<std::string> types() const {
    std::vector<std::string> out;
    for (const Json& e : events) out.push_back(e[0].get<std::string>());
    return out;
  }
  Json events = Json::array();
};

}  // namespace netdist::graph::testing
