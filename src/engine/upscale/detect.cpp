#include "engine/upscale/detect.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <regex>
#include <set>
#include <vector>

namespace netdist::upscale {

namespace {

bool upscale_has(const runtime::WeightMap& w, const std::string& key) { return w.count(key) != 0; }

bool upscale_has_all(const runtime::WeightMap& w, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (!upscale_has(w, k)) return false;
  return true;
}

bool upscale_starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// spandrel util.get_seq_len: 1 + the largest i with a key "<seq>.<i>.…" (0 when none). A non-numeric
// index, which makes spandrel's int() raise, is an error here.
Result<int64_t> upscale_seq_len(const runtime::WeightMap& w, const std::string& seq, const std::string& what) {
  const std::string prefix = seq + ".";
  int64_t best = -1;
  for (const auto& [k, v] : w) {
    if (!upscale_starts_with(k, prefix)) continue;
    const std::string index = k.substr(prefix.size(), k.find('.', prefix.size()) - prefix.size());
    if (index.empty() || index.size() > 6 || !std::all_of(index.begin(), index.end(), ::isdigit))
      return Status::invalid_argument(what + ": key '" + k + "' has no numeric index after '" + prefix + "'");
    best = std::max<int64_t>(best, std::stoll(index));
  }
  return best + 1;
}

Result<at::Tensor> upscale_tensor(const runtime::WeightMap& w, const std::string& key, int64_t dims,
                                  const std::string& what) {
  auto it = w.find(key);
  if (it == w.end()) return Status::invalid_argument(what + ": tensor '" + key + "' is missing");
  if (it->second.dim() != dims) {
    return Status::invalid_argument(what + ": tensor '" + key + "' has " + std::to_string(it->second.dim()) +
                                    " dimensions, expected " + std::to_string(dims));
  }
  return it->second;
}

// spandrel canonicalize_state_dict for a flat dict: remove "module." then "netG." when every key has it.
runtime::WeightMap upscale_canonicalize(runtime::WeightMap w) {
  for (const std::string prefix : {"module.", "netG."}) {
    if (w.empty()) break;
    bool all = true;
    for (const auto& [k, v] : w) all = all && upscale_starts_with(k, prefix);
    if (all) w = runtime::strip_prefix(w, prefix);
  }
  return w;
}

bool upscale_is_esrgan(const runtime::WeightMap& w) {
  return upscale_has_all(w, {"model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"}) ||
         upscale_has_all(w, {"conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight",
                             "conv_last.weight"}) ||
         upscale_has_all(w, {"conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight",
                             "conv_last.weight"}) ||
         upscale_has_all(w, {"model.0.weight", "model.1.sub.0.RDB1.conv1x1.weight"});
}

// spandrel ESRGAN _to_old_arch / _new_to_old_arch: the BasicSR and BSRGAN layouts renamed to the old one.
Result<runtime::WeightMap> upscale_to_old_arch(const runtime::WeightMap& w, const std::string& what) {
  const std::regex body_patterns[] = {
      std::regex(R"(RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d+)\.(weight|bias))"),
      std::regex(R"(body\.(\d+)\.rdb(\d)\.conv(\d+)\.(weight|bias))"),
      std::regex(R"(model\.\d+\.sub\.(\d+)\.RDB(\d+)\.conv(\d+)\.0\.(weight|bias))")};
  // _get_num_blocks: the first pattern with any match decides; spandrel's max(*nbs) needs two matches.
  std::vector<int64_t> nbs;
  for (const std::regex& re : body_patterns) {
    for (const auto& [k, v] : w) {
      std::smatch m;
      if (std::regex_search(k, m, re) && m[1].length() <= 6) nbs.push_back(std::stoll(m[1].str()));
    }
    if (!nbs.empty()) break;
  }
  if (nbs.size() < 2) return Status::invalid_argument(what + ": ESRGAN keys without RRDB block convolutions");
  const int64_t num_blocks = *std::max_element(nbs.begin(), nbs.end()) + 1;
  if (!upscale_has(w, "conv_first.weight")) return w;

  runtime::WeightMap old;
  const std::string nb = "model.1.sub." + std::to_string(num_blocks);
  const std::pair<std::string, std::vector<std::string>> renames[] = {
      {"model.0.weight", {"conv_first.weight"}},
      {"model.0.bias", {"conv_first.bias"}},
      {nb + ".weight", {"trunk_conv.weight", "conv_body.weight"}},
      {nb + ".bias", {"trunk_conv.bias", "conv_body.bias"}}};
  for (const auto& [old_key, new_keys] : renames) {
    for (const std::string& k : new_keys)
      if (upscale_has(w, k)) old[old_key] = w.at(k);
  }
  for (int i = 0; i < 2; ++i) {
    for (const auto& [k, v] : w) {
      const std::string sub = std::regex_replace(k, body_patterns[i], "model.1.sub.$1.RDB$2.conv$3.0.$4");
      if (sub != k) old[sub] = v;
    }
  }
  static const std::regex upconv(R"((upconv|conv_up)(\d)\.(weight|bias).*)");
  int64_t max_upconv = 0;
  for (const auto& [k, v] : w) {
    std::smatch m;
    if (!std::regex_match(k, m, upconv)) continue;
    const int64_t index = std::stoll(m[2].str()) * 3;
    old["model." + std::to_string(index) + "." + m[3].str()] = v;
    max_upconv = std::max(max_upconv, index);
  }
  for (const auto& [k, v] : w) {
    if (k == "HRconv.weight" || k == "conv_hr.weight") old["model." + std::to_string(max_upconv + 2) + ".weight"] = v;
    if (k == "HRconv.bias" || k == "conv_hr.bias") old["model." + std::to_string(max_upconv + 2) + ".bias"] = v;
    if (k == "conv_last.weight") old["model." + std::to_string(max_upconv + 4) + ".weight"] = v;
    if (k == "conv_last.bias") old["model." + std::to_string(max_upconv + 4) + ".bias"] = v;
  }
  return old;
}

Result<ArchConfig> upscale_esrgan_config(const runtime::WeightMap& w, const std::string& what) {
  ArchConfig c;
  c.arch = Arch::kEsrgan;
  ND_ASSIGN_OR_RETURN(const int64_t seq_len, upscale_seq_len(w, "model", what));
  if (seq_len < 5) {
    return Status::invalid_argument(what + ": ESRGAN model sequence of " + std::to_string(seq_len) +
                                    " layers (at least 5: conv, RRDB trunk, HR conv, activation, conv)");
  }
  const int64_t log2_scale = (seq_len - 5) / 3;
  if (log2_scale > 4) return Status::invalid_argument(what + ": ESRGAN scale 2^" + std::to_string(log2_scale));
  c.net_scale = int64_t{1} << log2_scale;
  ND_ASSIGN_OR_RETURN(at::Tensor first, upscale_tensor(w, "model.0.weight", 4, what));
  ND_ASSIGN_OR_RETURN(at::Tensor last, upscale_tensor(w, "model." + std::to_string(seq_len - 1) + ".weight", 4, what));
  c.in_nc = first.size(1);
  c.out_nc = last.size(0);
  c.num_filters = first.size(0);
  ND_ASSIGN_OR_RETURN(const int64_t sub_len, upscale_seq_len(w, "model.1.sub", what));
  c.num_blocks = sub_len - 1;
  if (c.num_blocks < 1) return Status::invalid_argument(what + ": ESRGAN model without RRDB blocks");
  for (const auto& [k, v] : w) c.plus = c.plus || k.find(".conv1x1.") != std::string::npos;
  if ((c.in_nc == c.out_nc * 4 || c.in_nc == c.out_nc * 16) &&
      (c.out_nc * 4 == c.in_nc || c.out_nc * 16 == c.in_nc)) {
    c.shuffle = c.in_nc == c.out_nc * 4 ? 2 : 4;
    if (c.net_scale % c.shuffle != 0) {
      return Status::invalid_argument(what + ": ESRGAN with pixel-unshuffle " + std::to_string(c.shuffle) +
                                      " but network scale " + std::to_string(c.net_scale));
    }
  }
  if (c.in_nc < 1 || c.out_nc < 1 || c.num_filters < 1)
    return Status::invalid_argument(what + ": ESRGAN with empty convolutions");
  return c;
}

// spandrel util.get_scale_and_output_channels.
std::optional<std::pair<int64_t, int64_t>> upscale_scale_and_channels(int64_t x, int64_t in_nc) {
  for (int64_t c : {in_nc, int64_t{3}, int64_t{4}, int64_t{1}}) {
    if (c <= 0 || x % c != 0) continue;
    const double root = std::sqrt(static_cast<double>(x / c));
    if (root == std::floor(root)) return std::make_pair(static_cast<int64_t>(root), c);
  }
  return std::nullopt;
}

Result<ArchConfig> upscale_compact_config(const runtime::WeightMap& w, const std::string& what) {
  ArchConfig c;
  c.arch = Arch::kCompact;
  ND_ASSIGN_OR_RETURN(const int64_t body_len, upscale_seq_len(w, "body", what));
  const int64_t highest = body_len - 1;
  ND_ASSIGN_OR_RETURN(at::Tensor first, upscale_tensor(w, "body.0.weight", 4, what));
  ND_ASSIGN_OR_RETURN(at::Tensor last_bias, upscale_tensor(w, "body." + std::to_string(highest) + ".bias", 1, what));
  c.in_nc = first.size(1);
  c.num_filters = first.size(0);
  c.num_conv = (highest - 2) / 2;
  if (highest < 2 || c.in_nc < 1 || c.num_filters < 1)
    return Status::invalid_argument(what + ": Compact model with " + std::to_string(body_len) + " body layers");
  auto sc = upscale_scale_and_channels(last_bias.size(0), c.in_nc);
  if (!sc || sc->first < 1) {
    return Status::invalid_argument(what + ": Compact model's last convolution has " +
                                    std::to_string(last_bias.size(0)) +
                                    " outputs, not scale² × 1, 3 or 4 channels");
  }
  c.net_scale = sc->first;
  c.out_nc = sc->second;
  return c;
}

double upscale_conv_params(int64_t in, int64_t out, int64_t kernel, bool bias) {
  return static_cast<double>(out) * static_cast<double>(in) * static_cast<double>(kernel * kernel) +
         (bias ? static_cast<double>(out) : 0.0);
}

// How many numbers the network of `c` has (nets.h), computed without building it.
double upscale_expected_params(const ArchConfig& c) {
  const int64_t nf = c.num_filters;
  if (c.arch == Arch::kCompact) {
    return upscale_conv_params(c.in_nc, nf, 3, true) + static_cast<double>(nf) +
           static_cast<double>(c.num_conv) * (upscale_conv_params(nf, nf, 3, true) + static_cast<double>(nf)) +
           upscale_conv_params(nf, c.out_nc * c.net_scale * c.net_scale, 3, true);
  }
  const int64_t gc = 32;
  double rdb = upscale_conv_params(nf + 4 * gc, nf, 3, true) + (c.plus ? upscale_conv_params(nf, gc, 1, false) : 0.0);
  for (int64_t i = 0; i < 4; ++i) rdb += upscale_conv_params(nf + i * gc, gc, 3, true);
  int64_t ups = 0;
  for (int64_t s = c.net_scale; s > 1; s /= 2) ++ups;
  return upscale_conv_params(c.in_nc, nf, 3, true) + static_cast<double>(c.num_blocks) * 3.0 * rdb +
         static_cast<double>(ups + 2) * upscale_conv_params(nf, nf, 3, true) + upscale_conv_params(nf, c.out_nc, 3, true);
}

// The tensors must hold exactly what the network needs (spandrel loads strictly): checked before the network
// is built, so that a small file cannot make it allocate more than the file holds.
Status upscale_check_size(const Detected& d, const std::string& what) {
  double have = 0;
  for (const auto& [k, v] : d.weights) have += static_cast<double>(v.numel());
  const double want = upscale_expected_params(d.config);
  if (have == want) return Status::ok();
  return Status::invalid_argument(what + ": its tensors hold " + std::to_string(static_cast<int64_t>(have)) +
                                  " numbers but a " + d.config.name() + " with " +
                                  std::to_string(d.config.num_filters) + " filters needs " +
                                  std::to_string(static_cast<int64_t>(want)) + " (missing, extra or misshaped tensors)");
}

}  // namespace

int64_t ArchConfig::min_size() const {
  if (arch != Arch::kEsrgan) return 0;
  return shuffle ? 4 : 2;
}

std::string ArchConfig::name() const {
  if (arch == Arch::kCompact) return "SRVGGNetCompact";
  return shuffle ? "RealESRGAN" : "ESRGAN";
}

Result<Detected> detect_upscale_arch(runtime::WeightMap weights, const std::string& what) {
  weights = upscale_canonicalize(std::move(weights));
  Detected d;
  if (upscale_is_esrgan(weights)) {
    ND_ASSIGN_OR_RETURN(d.weights, upscale_to_old_arch(weights, what));
    ND_ASSIGN_OR_RETURN(d.config, upscale_esrgan_config(d.weights, what));
    ND_RETURN_IF_ERROR(upscale_check_size(d, what));
    return d;
  }
  if (upscale_has_all(weights, {"body.0.weight", "body.1.weight"})) {
    ND_ASSIGN_OR_RETURN(d.config, upscale_compact_config(weights, what));
    d.weights = std::move(weights);
    ND_RETURN_IF_ERROR(upscale_check_size(d, what));
    return d;
  }
  std::set<std::string> sorted;
  for (const auto& [k, v] : weights) sorted.insert(k);
  std::string keys;
  int shown = 0;
  for (const std::string& k : sorted) {
    if (shown == 5) break;
    keys += (shown++ ? ", '" : "'") + k + "'";
  }
  if (sorted.size() > 5) keys += ", … (" + std::to_string(sorted.size()) + " keys)";
  return Status::unsupported(what + ": not an upscale model architecture netdist knows (ESRGAN, RealESRGAN, "
                             "SRVGGNetCompact); unrecognised keys: " + (keys.empty() ? "none" : keys));
}

}  // namespace netdist::upscale
