#include "engine/sampling/samplers.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <c10/util/Exception.h>

#include "engine/sampling/sampler_run.h"

namespace netdist::sampling {
namespace detail {

constexpr double kSNoise = 1.0;

Status SamplerRun::report(int step, int total, const at::Tensor& x, const at::Tensor& denoised) const {
  if (callback_ && !callback_(step, total, x, denoised)) {
    return Status::cancelled("sampling interrupted at step " + std::to_string(step + 1) + " of " +
                             std::to_string(total));
  }
  return Status::ok();
}

Result<std::unique_ptr<BrownianTreeNoiseSampler>> SamplerRun::brownian(const at::Tensor& sigmas,
                                                                       bool on_device) const {
  at::Tensor positive = sigmas.masked_select(sigmas > 0);
  if (positive.numel() == 0) return Status::invalid_argument("SDE sampler: the schedule has no positive sigma");
  at::Tensor sigma_min = positive.min();
  at::Tensor sigma_max = sigmas.max();
  bool cpu_tree = !on_device || noise_.where() == NoiseDevice::kCpu;
  at::Device tree_device = cpu_tree ? at::Device(at::kCPU) : noise_.device();
  return std::make_unique<BrownianTreeNoiseSampler>(sigma_min, sigma_max, noise_.seed(), noise_.full_shape(),
                                                    noise_.row_begin(), noise_.row_end(), noise_.dtype(),
                                                    tree_device);
}

at::Tensor to_d(const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& denoised) {
  return (x - denoised) / sigma;
}

AncestralStep get_ancestral_step(const at::Tensor& sigma_from, const at::Tensor& sigma_to, double eta) {
  if (eta == 0.0) return {sigma_to, at::zeros_like(sigma_to)};
  at::Tensor candidate =
      at::pow(at::pow(sigma_to, 2) * (at::pow(sigma_from, 2) - at::pow(sigma_to, 2)) / at::pow(sigma_from, 2), 0.5) *
      eta;
  at::Tensor sigma_up = is_true(candidate < sigma_to) ? candidate : sigma_to;
  at::Tensor sigma_down = at::pow(at::pow(sigma_to, 2) - at::pow(sigma_up, 2), 0.5);
  return {sigma_down, sigma_up};
}

bool is_true(const at::Tensor& condition) { return condition.item<bool>(); }

Result<at::Tensor> sample_euler(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor sigma_hat = sigmas[i];
    at::Tensor denoised = run.model(x, sigma_hat);
    at::Tensor d = to_d(x, sigma_hat, denoised);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    at::Tensor dt = sigmas[i + 1] - sigma_hat;
    x = x + d * dt;
  }
  return x;
}

Result<at::Tensor> sample_euler_ancestral(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  if (run.is_const()) return sample_euler_ancestral_rf(run, std::move(x), sigmas);
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    AncestralStep step = get_ancestral_step(sigmas[i], sigmas[i + 1]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(step.sigma_down == 0)) {
      x = denoised;
    } else {
      at::Tensor d = to_d(x, sigmas[i], denoised);
      at::Tensor dt = step.sigma_down - sigmas[i];
      x = x + d * dt + run.default_noise() * kSNoise * step.sigma_up;
    }
  }
  return x;
}

Result<at::Tensor> sample_heun(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor sigma_hat = sigmas[i] * 1;
    at::Tensor denoised = run.model(x, sigma_hat);
    at::Tensor d = to_d(x, sigma_hat, denoised);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    at::Tensor dt = sigmas[i + 1] - sigma_hat;
    if (is_true(sigmas[i + 1] == 0)) {
      x = x + d * dt;
    } else {
      at::Tensor x_2 = x + d * dt;
      at::Tensor denoised_2 = run.model(x_2, sigmas[i + 1]);
      at::Tensor d_2 = to_d(x_2, sigmas[i + 1], denoised_2);
      at::Tensor d_prime = (d + d_2) / 2;
      x = x + d_prime * dt;
    }
  }
  return x;
}

Result<at::Tensor> sample_dpm_2(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor sigma_hat = sigmas[i];
    at::Tensor denoised = run.model(x, sigma_hat);
    at::Tensor d = to_d(x, sigma_hat, denoised);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(sigmas[i + 1] == 0)) {
      at::Tensor dt = sigmas[i + 1] - sigma_hat;
      x = x + d * dt;
    } else {
      at::Tensor sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp();
      at::Tensor dt_1 = sigma_mid - sigma_hat;
      at::Tensor dt_2 = sigmas[i + 1] - sigma_hat;
      at::Tensor x_2 = x + d * dt_1;
      at::Tensor denoised_2 = run.model(x_2, sigma_mid);
      at::Tensor d_2 = to_d(x_2, sigma_mid, denoised_2);
      x = x + d_2 * dt_2;
    }
  }
  return x;
}

Result<at::Tensor> sample_dpm_2_ancestral(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  if (run.is_const()) return sample_dpm_2_ancestral_rf(run, std::move(x), sigmas);
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    AncestralStep step = get_ancestral_step(sigmas[i], sigmas[i + 1]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    at::Tensor d = to_d(x, sigmas[i], denoised);
    if (is_true(step.sigma_down == 0)) {
      at::Tensor dt = step.sigma_down - sigmas[i];
      x = x + d * dt;
    } else {
      at::Tensor sigma_mid = sigmas[i].log().lerp(step.sigma_down.log(), 0.5).exp();
      at::Tensor dt_1 = sigma_mid - sigmas[i];
      at::Tensor dt_2 = step.sigma_down - sigmas[i];
      at::Tensor x_2 = x + d * dt_1;
      at::Tensor denoised_2 = run.model(x_2, sigma_mid);
      at::Tensor d_2 = to_d(x_2, sigma_mid, denoised_2);
      x = x + d_2 * dt_2;
      x = x + run.default_noise() * kSNoise * step.sigma_up;
    }
  }
  return x;
}

Result<at::Tensor> sample_lms(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  constexpr int kOrder = 4;
  at::Tensor sigmas_cpu = sigmas.to(at::kCPU).to(at::kFloat).contiguous();
  std::vector<float> t(sigmas_cpu.data_ptr<float>(), sigmas_cpu.data_ptr<float>() + sigmas_cpu.numel());
  int total = static_cast<int>(sigmas.size(0)) - 1;
  std::vector<at::Tensor> ds;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ds.push_back(to_d(x, sigmas[i], denoised));
    if (static_cast<int>(ds.size()) > kOrder) ds.erase(ds.begin());
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    int cur_order = std::min(i + 1, kOrder);
    at::Tensor sum;
    for (int j = 0; j < cur_order; ++j) {
      at::Tensor term = ds[ds.size() - 1 - static_cast<size_t>(j)] * linear_multistep_coeff(cur_order, t, i, j);
      sum = j == 0 ? term + 0 : sum + term;
    }
    x = x + sum;
  }
  return x;
}

Result<at::Tensor> sample_lcm(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    x = denoised;
    if (is_true(sigmas[i + 1] > 0) && run.is_const()) {
      x = sigmas[i + 1] * run.default_noise() + (1.0 - sigmas[i + 1]) * x;
    } else if (is_true(sigmas[i + 1] > 0)) {
      at::Tensor scaled = run.default_noise() * sigmas[i + 1];
      scaled += x;
      x = scaled;
    }
  }
  return x;
}

namespace {

at::Tensor ddpm_step(SamplerRun& run, const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& sigma_prev,
                     const at::Tensor& noise) {
  at::Tensor alpha_cumprod = at::reciprocal(sigma * sigma + 1) * 1;
  at::Tensor alpha_cumprod_prev = at::reciprocal(sigma_prev * sigma_prev + 1) * 1;
  at::Tensor alpha = alpha_cumprod / alpha_cumprod_prev;
  at::Tensor mu = (at::reciprocal(alpha) * 1.0).sqrt() * (x - (1 - alpha) * noise / (1 - alpha_cumprod).sqrt());
  if (is_true(sigma_prev > 0)) {
    mu += ((1 - alpha) * (1. - alpha_cumprod_prev) / (1. - alpha_cumprod)).sqrt() * run.default_noise();
  }
  return mu;
}

}  // namespace

Result<at::Tensor> sample_ddpm(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    x = ddpm_step(run, x / at::sqrt(at::pow(sigmas[i], 2.0) + 1.0), sigmas[i], sigmas[i + 1],
                  (x - denoised) / sigmas[i]);
    if (is_true(sigmas[i + 1] != 0)) x *= at::sqrt(at::pow(sigmas[i + 1], 2.0) + 1.0);
  }
  return x;
}

}  // namespace detail

namespace {

struct SamplerEntry {
  const char* name;
  detail::SamplerFn fn;
};

const std::vector<SamplerEntry>& sampler_table() {
  static const std::vector<SamplerEntry> table = {
      {"euler", detail::sample_euler},
      {"euler_ancestral", detail::sample_euler_ancestral},
      {"heun", detail::sample_heun},
      {"dpm_2", detail::sample_dpm_2},
      {"dpm_2_ancestral", detail::sample_dpm_2_ancestral},
      {"lms", detail::sample_lms},
      {"dpmpp_2s_ancestral", detail::sample_dpmpp_2s_ancestral},
      {"dpmpp_sde", detail::sample_dpmpp_sde},
      {"dpmpp_sde_gpu", detail::sample_dpmpp_sde_gpu},
      {"dpmpp_2m", detail::sample_dpmpp_2m},
      {"dpmpp_2m_sde", detail::sample_dpmpp_2m_sde},
      {"dpmpp_2m_sde_gpu", detail::sample_dpmpp_2m_sde_gpu},
      {"dpmpp_3m_sde", detail::sample_dpmpp_3m_sde},
      {"dpmpp_3m_sde_gpu", detail::sample_dpmpp_3m_sde_gpu},
      {"ddpm", detail::sample_ddpm},
      {"lcm", detail::sample_lcm},
      {"ddim", detail::sample_euler},
      {"uni_pc", detail::sample_uni_pc},
      {"uni_pc_bh2", detail::sample_uni_pc_bh2},
  };
  return table;
}

detail::SamplerFn find_sampler(std::string_view name) {
  for (const SamplerEntry& entry : sampler_table()) {
    if (name == entry.name) return entry.fn;
  }
  return nullptr;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names = {
      "euler",           "euler_cfg_pp",     "euler_ancestral", "euler_ancestral_cfg_pp",
      "heun",            "heunpp2",          "dpm_2",           "dpm_2_ancestral",
      "lms",             "dpm_fast",         "dpm_adaptive",    "dpmpp_2s_ancestral",
      "dpmpp_2s_ancestral_cfg_pp",           "dpmpp_sde",       "dpmpp_sde_gpu",
      "dpmpp_2m",        "dpmpp_2m_cfg_pp",  "dpmpp_2m_sde",    "dpmpp_2m_sde_gpu",
      "dpmpp_3m_sde",    "dpmpp_3m_sde_gpu", "ddpm",            "lcm",
      "ipndm",           "ipndm_v",          "deis",            "res_multistep",
      "res_multistep_cfg_pp",                "ddim",            "uni_pc",
      "uni_pc_bh2"};
  return names;
}

const std::vector<std::string>& supported_sampler_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const std::string& name : sampler_names()) {
      if (find_sampler(name) != nullptr) out.push_back(name);
    }
    return out;
  }();
  return names;
}

bool is_supported_sampler(std::string_view name) { return find_sampler(name) != nullptr; }

Result<at::Tensor> sample(std::string_view name, const Denoiser& denoiser, at::Tensor x, at::Tensor sigmas,
                          NoiseSource& noise, const StepCallback& callback, const ModelSampling* model_sampling) {
  detail::SamplerFn fn = find_sampler(name);
  if (fn == nullptr) {
    bool known = false;
    for (const std::string& n : sampler_names()) known = known || n == name;
    if (known) {
      return Status::unsupported("sampler '" + std::string(name) + "' is not implemented; supported: " +
                                 join(supported_sampler_names()));
    }
    return Status::invalid_argument("unknown sampler '" + std::string(name) + "'; valid: " +
                                    join(supported_sampler_names()));
  }
  if (!denoiser) return Status::invalid_argument("sampler " + std::string(name) + ": no denoiser");
  if (!x.defined() || x.dim() < 1 || x.size(0) < 1) {
    return Status::invalid_argument("sampler " + std::string(name) + ": latent must have a batch dimension");
  }
  if (!sigmas.defined() || sigmas.dim() != 1) {
    return Status::invalid_argument("sampler " + std::string(name) + ": sigmas must be a 1-D tensor");
  }
  try {
    at::NoGradGuard no_grad;
    ND_RETURN_IF_ERROR(noise.begin(x));
    if (sigmas.size(0) <= 1) return x;
    sigmas = sigmas.to(x.device()).clone();
    detail::SamplerRun run(denoiser, callback, noise, x, model_sampling);
    return fn(run, std::move(x), sigmas);
  } catch (const c10::Error& e) {
    return Status::internal("sampler " + std::string(name) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Status::internal("sampler " + std::string(name) + ": " + e.what());
  }
}

double linear_multistep_coeff(int order, const std::vector<float>& t, int i, int j) {
  ND_ASSERT(order - 1 <= i && i + 1 < static_cast<int>(t.size()), "linear_multistep_coeff: order too high");
  static const double kXgk[11] = {0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
                                  0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
                                  0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
                                  0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
                                  0.294392862701460198131126603103866, 0.148874338981631210884826001129720,
                                  0.000000000000000000000000000000000};
  static const double kWgk[11] = {0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
                                  0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
                                  0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
                                  0.123491976262065851077208024427094, 0.134709217311473325928054001771707,
                                  0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
                                  0.149445554002916905664936468389821};
  auto fn = [&](double tau) -> double {
    if (order == 1) return 1.0;
    float tau32 = static_cast<float>(tau);
    float prod = 1.0f;
    for (int k = 0; k < order; ++k) {
      if (j == k) continue;
      float num = tau32 - t[static_cast<size_t>(i - k)];
      float den = t[static_cast<size_t>(i - j)] - t[static_cast<size_t>(i - k)];
      prod *= num / den;
    }
    return static_cast<double>(prod);
  };
  double lo = t[static_cast<size_t>(i)];
  double hi = t[static_cast<size_t>(i + 1)];
  bool flip = hi < lo;
  double a = flip ? hi : lo;
  double b = flip ? lo : hi;
  if (a == b) return 0.0;
  double centr = 0.5 * (a + b);
  double hlgth = 0.5 * (b - a);
  double resk = kWgk[10] * fn(centr);
  for (int jj = 1; jj <= 5; ++jj) {
    int jtw = 2 * jj - 1;
    double absc = hlgth * kXgk[jtw];
    double fsum = fn(centr - absc) + fn(centr + absc);
    resk = resk + kWgk[jtw] * fsum;
  }
  for (int jj = 1; jj <= 5; ++jj) {
    int jtwm1 = 2 * jj - 2;
    double absc = hlgth * kXgk[jtwm1];
    double fsum = fn(centr - absc) + fn(centr + absc);
    resk = resk + kWgk[jtwm1] * fsum;
  }
  double result = resk * hlgth;
  return flip ? -result : result;
}

}  // namespace netdist::sampling
