#include "engine/sampling/brownian_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/status.h"
#include "engine/sampling/noise.h"

namespace netdist::sampling {
namespace {

constexpr uint32_t kInitA = 0x43b0d7e5u;
constexpr uint32_t kMultA = 0x931e8875u;
constexpr uint32_t kInitB = 0x8b51f9ddu;
constexpr uint32_t kMultB = 0x58f38dedu;
constexpr uint32_t kMixMultL = 0xca01f9ddu;
constexpr uint32_t kMixMultR = 0x4973f715u;
constexpr int kXShift = 16;
constexpr int kPoolSize = 24;
constexpr size_t kCacheSize = 45;

void append_words(uint64_t value, std::vector<uint32_t>& out) {
  if (value == 0) {
    out.push_back(0);
    return;
  }
  while (value > 0) {
    out.push_back(static_cast<uint32_t>(value & 0xffffffffu));
    value >>= 32;
  }
}

uint32_t hashmix(uint32_t value, uint32_t& hash_const) {
  value ^= hash_const;
  hash_const *= kMultA;
  value *= hash_const;
  value ^= value >> kXShift;
  return value;
}

uint32_t mix(uint32_t x, uint32_t y) {
  uint32_t result = kMixMultL * x - kMixMultR * y;
  result ^= result >> kXShift;
  return result;
}

}  // namespace

std::vector<uint32_t> seed_sequence_state(uint64_t entropy, const std::vector<uint64_t>& spawn_key, int pool_size,
                                          int n_words) {
  std::vector<uint32_t> words;
  append_words(entropy, words);
  return seed_sequence_state(words, spawn_key, pool_size, n_words);
}

std::vector<uint32_t> seed_sequence_state(const std::vector<uint32_t>& entropy_words,
                                          const std::vector<uint64_t>& spawn_key, int pool_size, int n_words) {
  ND_ASSERT(pool_size > 0 && n_words >= 0, "seed_sequence_state: bad sizes");
  std::vector<uint32_t> assembled = entropy_words;
  std::vector<uint32_t> spawn;
  for (uint64_t k : spawn_key) append_words(k, spawn);
  if (!spawn.empty() && assembled.size() < static_cast<size_t>(pool_size)) assembled.resize(pool_size, 0);
  assembled.insert(assembled.end(), spawn.begin(), spawn.end());

  std::vector<uint32_t> pool(static_cast<size_t>(pool_size));
  uint32_t hash_const = kInitA;
  for (size_t i = 0; i < pool.size(); ++i) pool[i] = hashmix(i < assembled.size() ? assembled[i] : 0u, hash_const);
  for (size_t src = 0; src < pool.size(); ++src) {
    for (size_t dst = 0; dst < pool.size(); ++dst) {
      if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], hash_const));
    }
  }
  for (size_t src = pool.size(); src < assembled.size(); ++src) {
    for (size_t dst = 0; dst < pool.size(); ++dst) pool[dst] = mix(pool[dst], hashmix(assembled[src], hash_const));
  }

  std::vector<uint32_t> state(static_cast<size_t>(n_words));
  uint32_t out_const = kInitB;
  for (size_t i = 0; i < state.size(); ++i) {
    uint32_t data = pool[i % pool.size()];
    data ^= out_const;
    out_const *= kMultB;
    data *= out_const;
    data ^= data >> kXShift;
    state[i] = data;
  }
  return state;
}

double round_to_micro(double x) {
  if (!std::isfinite(x)) return x;
  char buffer[400];
  std::snprintf(buffer, sizeof(buffer), "%.6f", x);
  return std::strtod(buffer, nullptr);
}

struct BrownianTree::Node {
  double start = 0;
  double end = 0;
  Node* parent = nullptr;
  bool is_left = false;
  bool has_children = false;
  double midway = 0;
  uint64_t spawn_key = 0;
  uint64_t depth = 0;
  uint32_t w_seed = 0;
  std::unique_ptr<Node> left;
  std::unique_ptr<Node> right;
  at::Tensor w;
  std::list<Node*>::iterator cache_pos;
};

BrownianTree::BrownianTree(double t0, double t1, uint64_t entropy, std::vector<int64_t> full_shape, int64_t row_begin,
                           int64_t row_end, at::ScalarType dtype, at::Device device)
    : entropy_(entropy),
      full_shape_(std::move(full_shape)),
      row_begin_(row_begin),
      row_end_(row_end),
      dtype_(dtype),
      device_(device),
      root_(std::make_unique<Node>()) {
  ND_ASSERT(t0 <= t1, "BrownianTree: t0 > t1");
  ND_ASSERT(!full_shape_.empty() && 0 <= row_begin && row_begin <= row_end && row_end <= full_shape_[0],
            "BrownianTree: rows outside the batch");
  root_->start = round_to_micro(t0);
  root_->end = round_to_micro(t1);
  uint32_t w_seed = seed_sequence_state(entropy_, {}, kPoolSize, 3)[0];
  root_w_ = randn_rows(w_seed) * std::sqrt(t1 - t0);
}

BrownianTree::~BrownianTree() = default;

at::Tensor BrownianTree::randn_rows(uint32_t seed) const {
  at::Tensor full =
      at::randn(full_shape_, make_generator(device_, seed), at::TensorOptions().dtype(dtype_).device(device_));
  if (row_begin_ == 0 && row_end_ == full_shape_[0]) return full;
  return full.slice(0, row_begin_, row_end_).clone();
}

void BrownianTree::split(Node* node) {
  double midway = 0.5 * (node->end + node->start);
  node->midway = round_to_micro(midway);
  if (node->parent != nullptr) {
    node->spawn_key = 2 * node->parent->spawn_key + (node->is_left ? 0 : 1);
    node->depth = node->parent->depth + 1;
  }
  node->w_seed = seed_sequence_state(entropy_, {node->spawn_key, node->depth}, kPoolSize, 4)[0];
  node->left = std::make_unique<Node>();
  node->left->start = node->start;
  node->left->end = node->midway;
  node->left->parent = node;
  node->left->is_left = true;
  node->right = std::make_unique<Node>();
  node->right->start = node->midway;
  node->right->end = node->end;
  node->right->parent = node;
  node->right->is_left = false;
  node->has_children = true;
}

void BrownianTree::cache_put(Node* node, at::Tensor w) {
  if (node->w.defined()) cache_order_.erase(node->cache_pos);
  while (cache_order_.size() >= kCacheSize) {
    Node* evicted = cache_order_.front();
    cache_order_.pop_front();
    evicted->w = at::Tensor();
  }
  node->w = std::move(w);
  node->cache_pos = cache_order_.insert(cache_order_.end(), node);
}

at::Tensor BrownianTree::node_increment(Node* node) {
  if (node == root_.get()) return root_w_;
  if (node->w.defined()) return node->w;
  Node* parent = node->parent;
  at::Tensor w = node_increment(parent);
  double h_reciprocal = 1 / (parent->end - parent->start);
  double left_diff = parent->midway - parent->start;
  double right_diff = parent->end - parent->midway;
  at::Tensor mean = w * left_diff * h_reciprocal;
  double var = left_diff * right_diff * h_reciprocal;
  at::Tensor left_w = mean + std::sqrt(var) * randn_rows(parent->w_seed);
  at::Tensor out = node->is_left ? left_w : w - left_w;
  cache_put(node, out);
  return out;
}

void BrownianTree::decompose(Node* node, double ta, double tb, std::vector<Node*>& out) {
  while (true) {
    if (ta == node->start && tb == node->end) {
      out.push_back(node);
      return;
    }
    if (!node->has_children) split(node);
    if (tb <= node->midway) {
      node = node->left.get();
    } else if (ta >= node->midway) {
      node = node->right.get();
    } else {
      decompose(node->left.get(), ta, node->midway, out);
      ta = node->midway;
      node = node->right.get();
    }
  }
}

at::Tensor BrownianTree::increment(double ta, double tb) {
  ta = std::min(std::max(ta, root_->start), root_->end);
  tb = std::min(std::max(tb, root_->start), root_->end);
  ND_ASSERT(ta <= tb, "BrownianTree::increment: ta > tb");
  std::vector<int64_t> shape = full_shape_;
  shape[0] = row_end_ - row_begin_;
  at::TensorOptions options = at::TensorOptions().dtype(dtype_).device(device_);
  if (ta == tb) return at::zeros(shape, options);
  ta = round_to_micro(ta);
  tb = round_to_micro(tb);
  if (ta == tb) return at::zeros(shape, options);
  std::vector<Node*> intervals;
  decompose(root_.get(), ta, tb, intervals);
  at::Tensor w = node_increment(intervals[0]);
  for (size_t i = 1; i < intervals.size(); ++i) w = w + node_increment(intervals[i]);
  return w;
}

BrownianTreeNoiseSampler::BrownianTreeNoiseSampler(const at::Tensor& sigma_min, const at::Tensor& sigma_max,
                                                   uint64_t seed, std::vector<int64_t> full_shape, int64_t row_begin,
                                                   int64_t row_end, at::ScalarType dtype, at::Device tree_device)
    : cpu_tree_(tree_device.is_cpu()) {
  bool ordered = (sigma_min < sigma_max).item<bool>();
  const at::Tensor& t0 = ordered ? sigma_min : sigma_max;
  const at::Tensor& t1 = ordered ? sigma_max : sigma_min;
  sign_ = ordered ? 1 : -1;
  tree_.emplace(t0.item<double>(), t1.item<double>(), seed, std::move(full_shape), row_begin, row_end, dtype,
                tree_device);
}

at::Tensor BrownianTreeNoiseSampler::operator()(const at::Tensor& sigma, const at::Tensor& sigma_next) {
  bool ordered = (sigma < sigma_next).item<bool>();
  const at::Tensor& a = ordered ? sigma : sigma_next;
  const at::Tensor& b = ordered ? sigma_next : sigma;
  int sign = ordered ? 1 : -1;
  double ta = a.to(at::kCPU).to(at::kFloat).item<double>();
  double tb = b.to(at::kCPU).to(at::kFloat).item<double>();
  at::Tensor w = tree_->increment(ta, tb);
  if (cpu_tree_) w = w.to(a.scalar_type()).to(a.device());
  w = w * (sign_ * sign);
  return w / (sigma_next - sigma).abs().sqrt();
}

}  // namespace netdist::sampling
