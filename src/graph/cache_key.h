// Cache keys for node outputs: ComfyUI's input signature (comfy_execution/caching.py
// CacheKeySetInputSignature). A node's key is its class, its fingerprint (IS_CHANGED), its node id only if
// the class takes UNIQUE_ID or is not idempotent, its literal inputs by sorted name, and the same for every
// ancestor, ancestors numbered in depth-first order over sorted input names. Two nodes with equal keys share
// one cache entry, in one prompt and across prompts, exactly as in ComfyUI.
// Thread-safety: none; one CacheKeys belongs to one execute() call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "graph/node_registry.h"
#include "graph/prompt.h"

namespace netdist::graph {

class CacheKeys {
 public:
  // `is_changed(node_id)` gives the node's IS_CHANGED value (false when it has none). `unique` must return
  // a value never returned before (for nodes that cannot be cached: ComfyUI's NaN).
  CacheKeys(const Prompt& prompt, const NodeRegistry& registry, std::function<Json(const std::string&)> is_changed,
            std::function<std::string()> unique);

  // The key of `node_id` (memoized). Node ids not in the prompt get a unique, never-matching key.
  const std::string& key(const std::string& node_id);

 private:
  Json immediate(const std::string& node_id, const std::unordered_map<std::string, size_t>& order);

  const Prompt& prompt_;
  const NodeRegistry& registry_;
  std::function<Json(const std::string&)> is_changed_;
  std::function<std::string()> unique_;
  std::unordered_map<std::string, std::string> keys_;
};

}  // namespace netdist::graph
