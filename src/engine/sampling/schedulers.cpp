#include "engine/sampling/schedulers.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace netdist::sampling {
namespace {

at::Tensor append_zero(const at::Tensor& x) { return at::cat({x, x.new_zeros({1})}); }

at::Tensor float_tensor(const std::vector<double>& values) {
  at::Tensor out = at::empty({static_cast<int64_t>(values.size())}, at::kFloat);
  float* p = out.data_ptr<float>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<float>(values[i]);
  return out;
}

double table_sigma(const ModelSampling& ms, int64_t index) { return ms.sigmas()[index].item<double>(); }

// Continued fraction for the regularized incomplete beta (modified Lentz).
double beta_continued_fraction(double x, double a, double b) {
  const double tiny = 1e-300;
  double c = 1.0;
  double d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 1000; ++m) {
    double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < 1e-16) break;
  }
  return h;
}

double regularized_incomplete_beta(double x, double a, double b) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * beta_continued_fraction(x, a, b) / a;
  return 1.0 - std::exp(log_front) * beta_continued_fraction(1.0 - x, b, a) / b;
}

}  // namespace

const std::vector<std::string>& scheduler_names() {
  static const std::vector<std::string> names = {"normal", "karras",       "exponential", "sgm_uniform",     "simple",
                                                 "ddim_uniform", "beta", "linear_quadratic", "kl_optimal"};
  return names;
}

bool discards_penultimate_sigma(std::string_view sampler_name) {
  return sampler_name == "dpm_2" || sampler_name == "dpm_2_ancestral" || sampler_name == "uni_pc" ||
         sampler_name == "uni_pc_bh2";
}

double beta_ppf(double p, double alpha, double beta) {
  if (p <= 0.0) return 0.0;
  if (p >= 1.0) return 1.0;
  if (alpha == beta && p == 0.5) return 0.5;
  double lo = 0.0;
  double hi = 1.0;
  for (int i = 0; i < 200 && hi - lo > 0.0; ++i) {
    double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (regularized_incomplete_beta(mid, alpha, beta) < p) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return 0.5 * (lo + hi);
}

at::Tensor normal_schedule(const ModelSampling& ms, int n, bool sgm) {
  at::Tensor start = ms.timestep(ms.sigma_max());
  at::Tensor end = ms.timestep(ms.sigma_min());
  bool add_zero = true;
  at::Tensor timesteps;
  if (sgm) {
    timesteps = at::linspace(start.item(), end.item(), n + 1).slice(0, 0, n);
  } else {
    if (std::fabs(ms.sigma(end).item<double>()) <= 0.00001) {
      n += 1;
      add_zero = false;
    }
    timesteps = at::linspace(start.item(), end.item(), n);
  }
  std::vector<double> sigs;
  for (int64_t i = 0; i < timesteps.size(0); ++i) sigs.push_back(ms.sigma(timesteps[i]).item<double>());
  if (add_zero) sigs.push_back(0.0);
  return float_tensor(sigs);
}

at::Tensor karras_schedule(int n, double sigma_min, double sigma_max, double rho) {
  at::Tensor ramp = at::linspace(0, 1, n);
  double min_inv_rho = std::pow(sigma_min, 1 / rho);
  double max_inv_rho = std::pow(sigma_max, 1 / rho);
  at::Tensor sigmas = at::pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho);
  return append_zero(sigmas);
}

at::Tensor exponential_schedule(int n, double sigma_min, double sigma_max) {
  return append_zero(at::linspace(std::log(sigma_max), std::log(sigma_min), n).exp());
}

at::Tensor simple_schedule(const ModelSampling& ms, int n) {
  int64_t len = ms.num_timesteps();
  double ss = static_cast<double>(len) / n;
  std::vector<double> sigs;
  for (int x = 0; x < n; ++x) sigs.push_back(table_sigma(ms, len - (1 + static_cast<int64_t>(x * ss))));
  sigs.push_back(0.0);
  return float_tensor(sigs);
}

at::Tensor ddim_uniform_schedule(const ModelSampling& ms, int n) {
  int64_t len = ms.num_timesteps();
  int64_t x = 1;
  std::vector<double> sigs;
  if (std::fabs(table_sigma(ms, x)) <= 0.00001) {
    n += 1;
  } else {
    sigs.push_back(0.0);
  }
  int64_t ss = std::max<int64_t>(len / n, 1);
  while (x < len) {
    sigs.push_back(table_sigma(ms, x));
    x += ss;
  }
  std::reverse(sigs.begin(), sigs.end());
  return float_tensor(sigs);
}

at::Tensor beta_schedule(const ModelSampling& ms, int n, double alpha, double beta) {
  int64_t total_timesteps = ms.num_timesteps() - 1;
  std::vector<double> sigs;
  double last_t = -1;
  double step = 1.0 / n;
  for (int i = 0; i < n; ++i) {
    double ts = 1 - (static_cast<double>(i) * step + 0.0);
    double t = std::nearbyint(beta_ppf(ts, alpha, beta) * static_cast<double>(total_timesteps));
    if (t != last_t) sigs.push_back(table_sigma(ms, static_cast<int64_t>(t)));
    last_t = t;
  }
  sigs.push_back(0.0);
  return float_tensor(sigs);
}

at::Tensor linear_quadratic_schedule(const ModelSampling& ms, int n, double threshold_noise, int linear_steps) {
  std::vector<double> schedule;
  if (n == 1) {
    schedule = {1.0, 0.0};
  } else {
    if (linear_steps < 0) linear_steps = n / 2;
    for (int i = 0; i < linear_steps; ++i) schedule.push_back(i * threshold_noise / linear_steps);
    double threshold_noise_step_diff = linear_steps - threshold_noise * n;
    int quadratic_steps = n - linear_steps;
    double quadratic_coef =
        threshold_noise_step_diff / (linear_steps * static_cast<double>(quadratic_steps * quadratic_steps));
    double linear_coef = threshold_noise / linear_steps -
                         2 * threshold_noise_step_diff / static_cast<double>(quadratic_steps * quadratic_steps);
    double constant = quadratic_coef * static_cast<double>(linear_steps * linear_steps);
    for (int i = linear_steps; i < n; ++i) {
      schedule.push_back(quadratic_coef * static_cast<double>(i * i) + linear_coef * i + constant);
    }
    schedule.push_back(1.0);
    for (double& v : schedule) v = 1.0 - v;
  }
  return float_tensor(schedule) * ms.sigma_max();
}

at::Tensor kl_optimal_schedule(int n, double sigma_min, double sigma_max) {
  at::Tensor adj_idxs = at::arange(n, at::kFloat).div_(n - 1);
  at::Tensor sigmas = adj_idxs.new_zeros({n + 1});
  sigmas.slice(0, 0, n).copy_((adj_idxs * std::atan(sigma_min) + (1 - adj_idxs) * std::atan(sigma_max)).tan_());
  return sigmas;
}

Result<at::Tensor> calculate_sigmas(const ModelSampling& ms, std::string_view scheduler_name, int steps) {
  double sigma_min = ms.sigma_min().item<double>();
  double sigma_max = ms.sigma_max().item<double>();
  if (scheduler_name == "normal") return normal_schedule(ms, steps, false);
  if (scheduler_name == "karras") return karras_schedule(steps, sigma_min, sigma_max);
  if (scheduler_name == "exponential") return exponential_schedule(steps, sigma_min, sigma_max);
  if (scheduler_name == "sgm_uniform") return normal_schedule(ms, steps, true);
  if (scheduler_name == "simple") return simple_schedule(ms, steps);
  if (scheduler_name == "ddim_uniform") return ddim_uniform_schedule(ms, steps);
  if (scheduler_name == "beta") return beta_schedule(ms, steps);
  if (scheduler_name == "linear_quadratic") return linear_quadratic_schedule(ms, steps);
  if (scheduler_name == "kl_optimal") return kl_optimal_schedule(steps, sigma_min, sigma_max);
  std::string valid;
  for (const std::string& name : scheduler_names()) valid += (valid.empty() ? "" : ", ") + name;
  return Status::invalid_argument("unknown scheduler '" + std::string(scheduler_name) + "'; valid: " + valid);
}

namespace {

Result<at::Tensor> sampler_sigmas(std::string_view scheduler_name, const ModelSampling& ms, int steps,
                                  std::string_view sampler_name) {
  bool discard = discards_penultimate_sigma(sampler_name);
  ND_ASSIGN_OR_RETURN(at::Tensor sigmas, calculate_sigmas(ms, scheduler_name, discard ? steps + 1 : steps));
  if (discard && sigmas.size(0) >= 2) {
    sigmas = at::cat({sigmas.slice(0, 0, sigmas.size(0) - 2), sigmas.slice(0, sigmas.size(0) - 1)});
  }
  return sigmas;
}

}  // namespace

Result<at::Tensor> make_sigmas(std::string_view scheduler_name, const ModelSampling& ms, int steps, double denoise,
                               std::string_view sampler_name) {
  if (steps < 1) return Status::invalid_argument("steps must be >= 1, got " + std::to_string(steps));
  if (!(denoise == denoise)) return Status::invalid_argument("denoise is NaN");
  if (denoise > 0.9999) return sampler_sigmas(scheduler_name, ms, steps, sampler_name);
  if (denoise <= 0.0) {
    ND_RETURN_IF_ERROR(calculate_sigmas(ms, scheduler_name, 1).status());
    return at::empty({0}, at::kFloat);
  }
  double new_steps_real = steps / denoise;
  if (new_steps_real > 1e6) return Status::invalid_argument("denoise " + std::to_string(denoise) + " is too small");
  int new_steps = static_cast<int>(new_steps_real);
  ND_ASSIGN_OR_RETURN(at::Tensor sigmas, sampler_sigmas(scheduler_name, ms, new_steps, sampler_name));
  int64_t keep = std::min<int64_t>(steps + 1, sigmas.size(0));
  return sigmas.slice(0, sigmas.size(0) - keep).clone();
}

}  // namespace netdist::sampling
