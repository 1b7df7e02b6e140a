// Test helpers: random-weight upscale models of each architecture and key layout (engine and node tests).
#pragma once

#include <cmath>
#include <regex>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "engine/runtime/torch_pch.h"
#include "engine/runtime/weights.h"
#include "engine/upscale/nets.h"

namespace netdist::upscale::testing {

inline ArchConfig esrgan_config(int64_t nf, int64_t blocks, int64_t net_scale, int64_t in_nc = 3,
                                int64_t out_nc = 3, int64_t shuffle = 0, bool plus = false) {
  ArchConfig c;
  c.arch = Arch::kEsrgan;
  c.num_filters = nf;
  c.num_blocks = blocks;
  c.net_scale = net_scale;
  c.in_nc = in_nc;
  c.out_nc = out_nc;
  c.shuffle = shuffle;
  c.plus = plus;
  return c;
}

inline ArchConfig compact_config(int64_t nf, int64_t num_conv, int64_t scale, int64_t channels = 3) {
  ArchConfig c;
  c.arch = Arch::kCompact;
  c.num_filters = nf;
  c.num_conv = num_conv;
  c.net_scale = scale;
  c.in_nc = c.out_nc = channels;
  return c;
}

// The network's parameters (old layout for ESRGAN) drawn from a seeded normal, scaled by 1/sqrt(fan-in) so
// outputs stay in a useful range; PReLU slopes 0.1.
inline runtime::WeightMap random_upscale_weights(const ArchConfig& config, uint64_t seed) {
  auto net = make_upscale_net(config);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  runtime::WeightMap out;
  for (const auto& p : net->named_parameters()) {
    at::Tensor t = at::empty(p.value().sizes(), at::kFloat);
    if (t.dim() == 4) {
      t.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(t.size(1) * t.size(2) * t.size(3))), gen);
    } else if (p.key().size() > 7 && p.key().compare(p.key().size() - 7, 7, ".weight") == 0) {
      t.fill_(0.1);  // PReLU
    } else {
      t.normal_(0.0, 0.02, gen);
    }
    out[p.key()] = t;
  }
  return out;
}

// ESRGAN old layout → BasicSR / Real-ESRGAN ("new") layout, or (bsrgan = true) the BSRGAN/RealSR layout.
inline runtime::WeightMap esrgan_to_new_layout(const runtime::WeightMap& old, const ArchConfig& c,
                                               bool bsrgan = false) {
  const std::string nb = "model.1.sub." + std::to_string(c.num_blocks) + ".";
  int64_t ups = 0;
  for (int64_t s = c.net_scale; s > 1; s /= 2) ++ups;
  const int64_t hr = 3 * ups + 2, last = 3 * ups + 4;
  const std::regex rdb(R"(model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias))");
  runtime::WeightMap out;
  for (const auto& [k, v] : old) {
    std::string key;
    std::smatch m;
    const std::string tail = k.substr(k.rfind('.') + 1);
    if (k.rfind("model.0.", 0) == 0) key = "conv_first." + tail;
    else if (k.rfind(nb, 0) == 0) key = (bsrgan ? "trunk_conv." : "conv_body.") + tail;
    else if (std::regex_match(k, m, rdb))
      key = bsrgan ? "RRDB_trunk." + m[1].str() + ".RDB" + m[2].str() + ".conv" + m[3].str() + "." + m[4].str()
                   : "body." + m[1].str() + ".rdb" + m[2].str() + ".conv" + m[3].str() + "." + m[4].str();
    else if (k.rfind("model." + std::to_string(hr) + ".", 0) == 0) key = (bsrgan ? "HRconv." : "conv_hr.") + tail;
    else if (k.rfind("model." + std::to_string(last) + ".", 0) == 0) key = "conv_last." + tail;
    else {
      for (int64_t u = 1; u <= ups; ++u)
        if (k.rfind("model." + std::to_string(3 * u) + ".", 0) == 0)
          key = (bsrgan ? "upconv" : "conv_up") + std::to_string(u) + "." + tail;
    }
    if (!key.empty()) out[key] = v;
  }
  return out;
}

}  // namespace netdist::upscale::testing
