#include "engine/runtime/weights.h"

#include <algorithm>
#include <set>
#include <sstream>

#include <torch/torch.h>

namespace netdist::runtime {

namespace {

std::string shape_string(at::IntArrayRef sizes) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? "," : "") << sizes[i];
  out << ']';
  return out.str();
}

bool weights_starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

Status load_module_weights(torch::nn::Module& module, const WeightMap& weights, std::string_view prefix,
                           std::string_view what, const LoadOptions& options) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  auto assign = [&](const std::string& name, at::Tensor& target) -> Status {
    std::string key = std::string(prefix) + name;
    auto it = weights.find(key);
    if (it == weights.end()) {
      if (options.allow_missing) return Status::ok();
      return Status::not_found(std::string(what) + ": missing tensor '" + key + "'");
    }
    const at::Tensor& src = it->second;
    if (src.sizes() != target.sizes()) {
      return Status::invalid_argument(std::string(what) + ": tensor '" + key + "' has shape " +
                                      shape_string(src.sizes()) + ", the model expects " +
                                      shape_string(target.sizes()));
    }
    target.copy_(src);
    used.insert(key);
    return Status::ok();
  };
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    ND_RETURN_IF_ERROR(assign(item.key(), item.value()));
  }
  for (auto& item : module.named_buffers(/*recurse=*/true)) {
    ND_RETURN_IF_ERROR(assign(item.key(), item.value()));
  }
  std::vector<std::string> unexpected;
  for (const auto& [key, tensor] : weights) {
    if (!weights_starts_with(key, prefix) || used.count(key)) continue;
    bool ignorable =
        std::any_of(options.ignore_unexpected.begin(), options.ignore_unexpected.end(),
                    [&](const std::string& p) { return weights_starts_with(key.substr(prefix.size()), p); });
    if (!ignorable) unexpected.push_back(key);
  }
  if (!unexpected.empty()) {
    std::sort(unexpected.begin(), unexpected.end());
    return Status::invalid_argument(std::string(what) + ": " + std::to_string(unexpected.size()) +
                                    " tensor(s) under '" + std::string(prefix) +
                                    "' that the model does not use, first '" + unexpected.front() + "'");
  }
  return Status::ok();
}

WeightMap module_weights(const torch::nn::Module& module, std::string_view prefix) {
  WeightMap out;
  for (const auto& item : module.named_parameters(true)) out[std::string(prefix) + item.key()] = item.value().detach();
  for (const auto& item : module.named_buffers(true)) out[std::string(prefix) + item.key()] = item.value().detach();
  return out;
}

WeightMap strip_prefix(const WeightMap& weights, std::string_view prefix) {
  WeightMap out;
  for (const auto& [key, tensor] : weights) {
    if (weights_starts_with(key, prefix)) out[key.substr(prefix.size())] = tensor;
  }
  return out;
}

}  // namespace netdist::runtime
