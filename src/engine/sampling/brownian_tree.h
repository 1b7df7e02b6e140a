// Brownian-tree noise for the SDE samplers (dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde and their _gpu forms),
// reproducing ComfyUI's BrownianTreeNoiseSampler over torchsde.BrownianTree(t0, w0, t1, entropy=seed):
// a halfway (dyadic) BrownianInterval with tol 1e-6 (interval ends rounded as Python round(x, 6)),
// pool_size 24, no Lévy area.
//  - Root: numpy SeedSequence(entropy=seed, pool_size=24).generate_state(3)[0] seeds
//    W = randn(shape) * sqrt(t1 - t0).
//  - A node split at its rounded midpoint takes seeds from SeedSequence(entropy=seed,
//    spawn_key=(key, depth), pool_size=24).generate_state(4) (root key 0, child key 2·key + {0 left, 1 right});
//    the left child's increment is the Brownian bridge (Δl/h)·W + sqrt(Δl·Δr/h)·randn(seed = W seed of the
//    parent), the right child's is W − left.
//  - A query W(tb) − W(ta) sums the increments of the canonical dyadic decomposition of [ta, tb], left to right.
// Every randn has the FULL batch shape (one tree for the whole batch, as ComfyUI with a scalar seed) and a
// shard keeps its rows, so split = unsplit. Generators are fresh per node: CPU MT19937 for the default
// samplers (cpu=True), the sampling device's generator for the _gpu samplers.
// Known difference: a query whose two ends round to the same 6-digit value returns zeros (torchsde would
// not terminate). The node cache (LRU of 45, like torchsde's) changes speed only, never values.
// Thread-safety: not thread-safe; one instance per sampler run.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

namespace netdist::sampling {

// numpy.random.SeedSequence(entropy, spawn_key=spawn_key, pool_size=pool_size).generate_state(n_words)
// with uint32 output (numpy/random/bit_generator.pyx). entropy_words: the entropy as numpy coerces it
// (an int → its 32-bit words, least significant first; a list of ints → their words concatenated).
std::vector<uint32_t> seed_sequence_state(const std::vector<uint32_t>& entropy_words,
                                          const std::vector<uint64_t>& spawn_key, int pool_size, int n_words);
// The same for a non-negative integer entropy.
std::vector<uint32_t> seed_sequence_state(uint64_t entropy, const std::vector<uint64_t>& spawn_key, int pool_size,
                                          int n_words);

// Python round(x, 6): the nearest 6-decimal value, ties to even on the exact binary value.
double round_to_micro(double x);

class BrownianTree {
 public:
  // full_shape: [N, ...]; rows [row_begin, row_end) are returned by increment(). t0 <= t1.
  BrownianTree(double t0, double t1, uint64_t entropy, std::vector<int64_t> full_shape, int64_t row_begin,
               int64_t row_end, at::ScalarType dtype, at::Device device);
  ~BrownianTree();

  // W(tb) − W(ta), ta <= tb after clamping both into [t0, t1]: [rows, ...] on the tree's device and dtype.
  at::Tensor increment(double ta, double tb);

 private:
  struct Node;
  at::Tensor node_increment(Node* node);
  void split(Node* node);
  void decompose(Node* node, double ta, double tb, std::vector<Node*>& out);
  at::Tensor randn_rows(uint32_t seed) const;
  void cache_put(Node* node, at::Tensor w);

  uint64_t entropy_;
  std::vector<int64_t> full_shape_;
  int64_t row_begin_;
  int64_t row_end_;
  at::ScalarType dtype_;
  at::Device device_;
  std::unique_ptr<Node> root_;
  at::Tensor root_w_;
  std::list<Node*> cache_order_;
};

// ComfyUI BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed, cpu): noise(σ, σ') =
// sign · tree(min(σ,σ'), max(σ,σ')) / sqrt(|σ' − σ|), a unit-variance draw on σ's device and dtype.
class BrownianTreeNoiseSampler {
 public:
  // sigma_min/sigma_max: 0-dim tensors (the smallest positive and the largest sigma of the schedule).
  // tree_device: CPU for the default samplers, the sampling device for the _gpu samplers.
  BrownianTreeNoiseSampler(const at::Tensor& sigma_min, const at::Tensor& sigma_max, uint64_t seed,
                           std::vector<int64_t> full_shape, int64_t row_begin, int64_t row_end, at::ScalarType dtype,
                           at::Device tree_device);

  at::Tensor operator()(const at::Tensor& sigma, const at::Tensor& sigma_next);

 private:
  int sign_;
  bool cpu_tree_;
  std::optional<BrownianTree> tree_;
};

}  // namespace netdist::sampling
