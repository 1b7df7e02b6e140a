// UniPC (ComfyUI comfy/extra_samplers/uni_pc.py sample_unipc): multistep B(h) predictor–corrector in data
// prediction mode over ComfyUI's SigmaConvert schedule, transcribed op for op.
#include <algorithm>
#include <string>
#include <vector>

#include "engine/sampling/sampler_run.h"

namespace netdist::sampling::detail {
namespace {

at::Tensor marginal_log_mean_coeff(const at::Tensor& sigma) {
  return at::log(at::reciprocal(sigma * sigma + 1) * 1) * 0.5;
}
at::Tensor marginal_alpha(const at::Tensor& t) { return at::exp(marginal_log_mean_coeff(t)); }
at::Tensor marginal_std(const at::Tensor& t) { return at::sqrt(1. - at::exp(marginal_log_mean_coeff(t) * 2.)); }
at::Tensor marginal_lambda(const at::Tensor& t) {
  at::Tensor log_mean_coeff = marginal_log_mean_coeff(t);
  at::Tensor log_std = at::log(1. - at::exp(log_mean_coeff * 2.)) * 0.5;
  return log_mean_coeff - log_std;
}

at::Tensor expand_dims(const at::Tensor& v, int64_t dims) {
  std::vector<int64_t> shape(v.sizes().begin(), v.sizes().end());
  for (int64_t i = 1; i < dims; ++i) shape.push_back(1);
  return v.reshape(shape);
}

std::string einsum_equation(int64_t dims) {
  if (dims == 4) return "k,bkchw->bchw";
  std::string rest;
  for (int64_t i = 1; i < dims; ++i) rest += static_cast<char>('c' + i);
  return "k,bk" + rest + "->b" + rest;
}

class UniPC {
 public:
  UniPC(SamplerRun& run, bool bh2, int64_t dims) : run_(run), bh2_(bh2), dims_(dims) {}

  at::Tensor model_fn(const at::Tensor& x, const at::Tensor& t) const {
    at::Tensor noise = noise_pred_fn(x, t);
    at::Tensor alpha_t = marginal_alpha(t);
    at::Tensor sigma_t = marginal_std(t);
    return (x - expand_dims(sigma_t, dims_) * noise) / expand_dims(alpha_t, dims_);
  }

  // Returns (x_t, model_t); model_t is undefined when the corrector is off.
  std::pair<at::Tensor, at::Tensor> update(const at::Tensor& x, const std::vector<at::Tensor>& model_prev_list,
                                           const std::vector<at::Tensor>& t_prev_list, const at::Tensor& t,
                                           int order, bool use_corrector) const {
    const at::Tensor& t_prev_0 = t_prev_list.back();
    at::Tensor lambda_prev_0 = marginal_lambda(t_prev_0);
    at::Tensor lambda_t = marginal_lambda(t);
    const at::Tensor& model_prev_0 = model_prev_list.back();
    at::Tensor sigma_prev_0 = marginal_std(t_prev_0);
    at::Tensor sigma_t = marginal_std(t);
    at::Tensor log_alpha_t = marginal_log_mean_coeff(t);
    at::Tensor alpha_t = at::exp(log_alpha_t);
    at::Tensor h = lambda_t - lambda_prev_0;

    std::vector<at::Tensor> rks;
    std::vector<at::Tensor> d1s;
    for (int i = 1; i < order; ++i) {
      const at::Tensor& t_prev_i = t_prev_list[t_prev_list.size() - 1 - static_cast<size_t>(i)];
      const at::Tensor& model_prev_i = model_prev_list[model_prev_list.size() - 1 - static_cast<size_t>(i)];
      at::Tensor lambda_prev_i = marginal_lambda(t_prev_i);
      at::Tensor rk = ((lambda_prev_i - lambda_prev_0) / h)[0];
      rks.push_back(rk);
      d1s.push_back((model_prev_i - model_prev_0) / rk);
    }
    at::TensorOptions f32 = at::TensorOptions().dtype(at::kFloat).device(x.device());
    rks.push_back(at::ones({}, f32));
    at::Tensor rks_t = at::stack(rks).to(at::kFloat);

    at::Tensor hh = h[0].neg();
    at::Tensor h_phi_1 = at::expm1(hh);
    at::Tensor h_phi_k = h_phi_1 / hh - 1;
    int64_t factorial_i = 1;
    at::Tensor b_h = bh2_ ? at::expm1(hh) : hh;
    std::vector<at::Tensor> r_rows;
    std::vector<at::Tensor> b_values;
    for (int i = 1; i <= order; ++i) {
      r_rows.push_back(at::pow(rks_t, static_cast<int64_t>(i - 1)));
      b_values.push_back(h_phi_k * factorial_i / b_h);
      factorial_i *= (i + 1);
      h_phi_k = h_phi_k / hh - 1.0 / static_cast<double>(factorial_i);
    }
    at::Tensor r_mat = at::stack(r_rows);
    at::Tensor b = at::stack(b_values).to(at::kFloat);

    bool use_predictor = !d1s.empty();
    at::Tensor d1s_t;
    at::Tensor rhos_p;
    if (!d1s.empty()) {
      d1s_t = at::stack(d1s, 1);
      if (order == 2) {
        rhos_p = at::full({1}, 0.5, f32);
      } else {
        rhos_p = at::linalg_solve(r_mat.slice(0, 0, -1).slice(1, 0, -1), b.slice(0, 0, -1));
      }
    }
    at::Tensor rhos_c;
    if (use_corrector) rhos_c = order == 1 ? at::full({1}, 0.5, f32) : at::linalg_solve(r_mat, b);

    std::string equation = einsum_equation(dims_);
    at::Tensor x_t_ = expand_dims(sigma_t / sigma_prev_0, dims_) * x - expand_dims(alpha_t * h_phi_1, dims_) * model_prev_0;
    at::Tensor x_t = use_predictor ? x_t_ - expand_dims(alpha_t * b_h, dims_) * at::einsum(equation, {rhos_p, d1s_t})
                                   : x_t_ - expand_dims(alpha_t * b_h, dims_) * 0;
    at::Tensor model_t;
    if (use_corrector) {
      model_t = model_fn(x_t, t);
      at::Tensor d1_t = model_t - model_prev_0;
      at::Tensor correction = d1s_t.defined()
                                  ? at::einsum(equation, {rhos_c.slice(0, 0, -1), d1s_t}) + rhos_c[-1] * d1_t
                                  : rhos_c[-1] * d1_t + 0;
      x_t = x_t_ - expand_dims(alpha_t * b_h, dims_) * correction;
    }
    return {x_t, model_t};
  }

 private:
  at::Tensor noise_pred_fn(const at::Tensor& x, const at::Tensor& t_continuous) const {
    at::Tensor t = t_continuous.numel() == 1 ? t_continuous.reshape({-1}).expand({x.size(0)}) : t_continuous;
    at::Tensor sigma = expand_dims(t, dims_);
    at::Tensor input = x * at::pow(at::pow(sigma, 2) + 1.0, 0.5);
    return (input - run_.model_batched(input, t)) / sigma;
  }

  SamplerRun& run_;
  bool bh2_;
  int64_t dims_;
};

Result<at::Tensor> sample_unipc(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas, bool bh2) {
  at::Tensor timesteps = sigmas.clone();
  if (is_true(sigmas[-1] == 0)) timesteps[-1].fill_(0.001);
  x = x / at::sqrt(at::pow(timesteps[0], 2.0) + 1.0);
  int steps = static_cast<int>(timesteps.size(0)) - 1;
  int order = std::min(3, steps - 1);
  int64_t batch = x.size(0);
  UniPC uni_pc(run, bh2, x.dim());

  std::vector<at::Tensor> model_prev_list;
  std::vector<at::Tensor> t_prev_list;
  for (int step_index = 0; step_index < steps; ++step_index) {
    if (step_index == 0) {
      at::Tensor vec_t = timesteps[0].expand({batch});
      model_prev_list = {uni_pc.model_fn(x, vec_t)};
      t_prev_list = {vec_t};
    } else if (step_index < order) {
      int init_order = step_index;
      at::Tensor vec_t = timesteps[init_order].expand({batch});
      auto [x_next, model_x] = uni_pc.update(x, model_prev_list, t_prev_list, vec_t, init_order, true);
      x = x_next;
      if (!model_x.defined()) model_x = uni_pc.model_fn(x, vec_t);
      model_prev_list.push_back(model_x);
      t_prev_list.push_back(vec_t);
    } else {
      int extra_final_step = step_index == steps - 1 ? 1 : 0;
      for (int step = step_index; step < step_index + 1 + extra_final_step; ++step) {
        at::Tensor vec_t = timesteps[step].expand({batch});
        int step_order = std::min(order, steps + 1 - step);
        bool use_corrector = step != steps;
        auto [x_next, model_x] = uni_pc.update(x, model_prev_list, t_prev_list, vec_t, step_order, use_corrector);
        x = x_next;
        for (int i = 0; i < order - 1; ++i) {
          t_prev_list[static_cast<size_t>(i)] = t_prev_list[static_cast<size_t>(i) + 1];
          model_prev_list[static_cast<size_t>(i)] = model_prev_list[static_cast<size_t>(i) + 1];
        }
        t_prev_list.back() = vec_t;
        if (step < steps) {
          if (!model_x.defined()) model_x = uni_pc.model_fn(x, vec_t);
          model_prev_list.back() = model_x;
        }
      }
    }
    ND_RETURN_IF_ERROR(run.report(step_index, steps, x, model_prev_list.back()));
  }
  x /= marginal_alpha(timesteps[-1]);
  return x;
}

}  // namespace

Result<at::Tensor> sample_uni_pc(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return sample_unipc(run, std::move(x), sigmas, false);
}

Result<at::Tensor> sample_uni_pc_bh2(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return sample_unipc(run, std::move(x), sigmas, true);
}

}  // namespace netdist::sampling::detail
