#include "engine/cond_batch.h"

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <string>

namespace netdist::cond {

namespace {

constexpr int64_t kFeather = 8;  // ComfyUI's rr

int64_t lcm(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

std::string area_text(const std::array<int, 4>& a) {
  return "area " + std::to_string(a[1]) + "x" + std::to_string(a[0]) + " at x=" + std::to_string(a[3]) +
         " y=" + std::to_string(a[2]);
}

// One entry of one list, as get_area_and_mult prepares it.
struct Item {
  const CondRow* row;
  size_t list;
  std::array<int64_t, 4> area;  // clamped; the whole latent for entries without an area
};

// can_concat_cond: same input size, same conditioning keys, CONDCrossAttn's padding limit.
bool can_concat(const Item& a, const Item& first) {
  if (a.area[0] != first.area[0] || a.area[1] != first.area[1]) return false;
  if (a.row->y.defined() != first.row->y.defined()) return false;
  if (a.row->concat.defined() != first.row->concat.defined()) return false;
  if (a.row->control != first.row->control) return false;
  if (a.row->y.defined() && !a.row->y.sizes().equals(first.row->y.sizes())) return false;
  const int64_t l1 = a.row->context.size(1), l2 = first.row->context.size(1);
  if (l1 != l2) {
    if (a.row->context.size(2) != first.row->context.size(2)) return false;
    if (lcm(l1, l2) / std::min(l1, l2) > 4) return false;
  }
  return true;
}

// create_cond_with_same_area_if_none(conds, c).
void same_area_if_none(std::vector<CondRow>& conds, const CondRow& c) {
  if (!c.area) return;
  const auto& ca = *c.area;
  const CondRow* smallest = nullptr;
  for (const CondRow& x : conds) {
    if (x.area) {
      const auto& a = *x.area;
      if (ca[2] >= a[2] && ca[3] >= a[3] && a[0] + a[2] >= ca[0] + ca[2] && a[1] + a[3] >= ca[1] + ca[3]) {
        if (smallest == nullptr || !smallest->area) {
          smallest = &x;
        } else if ((*smallest->area)[0] * (*smallest->area)[1] > a[0] * a[1]) {
          smallest = &x;
        }
      }
    } else if (smallest == nullptr) {
      smallest = &x;
    }
  }
  if (smallest == nullptr) return;
  if (smallest->area && *smallest->area == ca) return;
  CondRow out = c;
  out.context = smallest->context;
  out.y = smallest->y;
  out.concat = smallest->concat;
  conds.push_back(std::move(out));
}

}  // namespace

Result<std::array<int64_t, 4>> resolve_area(const std::array<int, 4>& pixels, int64_t latent_h,
                                            int64_t latent_w) {
  for (int v : pixels) {
    if (v < 0) return Status::invalid_argument("conditioning " + area_text(pixels) + " has a negative value");
  }
  std::array<int64_t, 4> area = {pixels[0] / 8, pixels[1] / 8, pixels[2] / 8, pixels[3] / 8};
  const int64_t dims[2] = {latent_h, latent_w};
  const std::string where =
      " on a " + std::to_string(latent_w * 8) + "x" + std::to_string(latent_h * 8) + " latent";
  for (int i = 0; i < 2; ++i) {
    const int64_t size = std::min(dims[i] - area[2 + i], area[i]);
    if (size <= 0)
      return Status::invalid_argument("conditioning " + area_text(pixels) + " lies outside the image" +
                                      where);
    const bool feathered = area[2 + i] != 0 || size + area[2 + i] < dims[i];
    if (feathered && size < kFeather) {
      return Status::invalid_argument("conditioning " + area_text(pixels) +
                                      " is narrower than the 64-pixel feather" + where);
    }
  }
  return area;
}

std::array<int64_t, 4> clamp_area(const std::array<int64_t, 4>& area, int64_t latent_h, int64_t latent_w) {
  std::array<int64_t, 4> a = area;
  a[0] = std::min(latent_h - a[2], a[0]);
  a[1] = std::min(latent_w - a[3], a[1]);
  return a;
}

at::Tensor area_mult(const CondRow& row, int64_t latent_h, int64_t latent_w) {
  const std::array<int64_t, 4> a =
      row.area ? clamp_area(*row.area, latent_h, latent_w) : std::array<int64_t, 4>{latent_h, latent_w, 0, 0};
  if (row.mask.defined()) {
    return row.mask.narrow(2, a[2], a[0]).narrow(3, a[3], a[1]) * static_cast<double>(row.strength);
  }
  at::Tensor mult = at::ones({1, 1, a[0], a[1]}, at::kFloat) * static_cast<double>(row.strength);
  if (!row.area) return mult;
  const int64_t dims[2] = {latent_h, latent_w};
  for (int i = 0; i < 2; ++i) {
    if (a[2 + i] != 0) {
      for (int64_t t = 0; t < kFeather; ++t) mult.narrow(i + 2, t, 1).mul_((1.0 / kFeather) * (t + 1));
    }
    if (a[i] + a[2 + i] < dims[i]) {
      for (int64_t t = 0; t < kFeather; ++t)
        mult.narrow(i + 2, a[i] - 1 - t, 1).mul_((1.0 / kFeather) * (t + 1));
    }
  }
  return mult;
}

void apply_control_to_uncond(const std::vector<CondRow>& positive, std::vector<CondRow>& negative) {
  std::vector<std::shared_ptr<const ControlApply>> cond_cnets;
  for (const CondRow& r : positive) {
    if (r.control_apply_to_uncond && !r.area && r.control) cond_cnets.push_back(r.control);
  }
  std::vector<size_t> other;
  for (size_t i = 0; i < negative.size(); ++i) {
    if (negative[i].area) continue;
    if (negative[i].control) return;
    other.push_back(i);
  }
  if (other.empty()) return;
  for (size_t x = 0; x < cond_cnets.size(); ++x) negative[other[x % other.size()]].control = cond_cnets[x];
}

bool in_timestep_range(const CondRow& row, const at::Tensor& sigma) {
  if (!row.sigma_start && !row.sigma_end) return true;
  const float s = sigma.reshape({-1})[0].item<float>();
  if (row.sigma_start && s > static_cast<float>(*row.sigma_start)) return false;
  if (row.sigma_end && s < static_cast<float>(*row.sigma_end)) return false;
  return true;
}

void add_opposite_areas(std::vector<CondRow>& positive, std::vector<CondRow>& negative) {
  for (size_t i = 0; i < positive.size(); ++i) same_area_if_none(negative, CondRow(positive[i]));
  for (size_t i = 0; i < negative.size(); ++i) same_area_if_none(positive, CondRow(negative[i]));
}

std::vector<at::Tensor> calc_cond_batch(const ModelFn& model,
                                        const std::vector<const std::vector<CondRow>*>& conds,
                                        const at::Tensor& x, const at::Tensor& sigma, const CallHook& hook) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  std::vector<at::Tensor> out(conds.size()), count(conds.size());
  std::vector<Item> to_run;
  for (size_t i = 0; i < conds.size(); ++i) {
    out[i] = at::zeros_like(x);
    count[i] = at::ones_like(x) * 1e-37;
    if (!conds[i]) continue;
    for (const CondRow& row : *conds[i]) {
      if (!in_timestep_range(row, sigma)) continue;
      to_run.push_back(
          {&row, i, row.area ? clamp_area(*row.area, h, w) : std::array<int64_t, 4>{h, w, 0, 0}});
    }
  }
  while (!to_run.empty()) {
    std::vector<size_t> batch;
    for (size_t k = to_run.size(); k-- > 0;) {
      if (can_concat(to_run[k], to_run[0])) batch.push_back(k);
    }
    std::vector<Item> items;
    for (size_t k : batch) {
      items.push_back(to_run[k]);
      to_run.erase(to_run.begin() + static_cast<std::ptrdiff_t>(k));
    }
    int64_t length = 1;
    for (const Item& it : items) length = lcm(length, it.row->context.size(1));
    std::vector<at::Tensor> xs, ctx, ys, sig;
    for (const Item& it : items) {
      at::Tensor xa = x.narrow(2, it.area[2], it.area[0]).narrow(3, it.area[3], it.area[1]);
      if (it.row->concat.defined()) {
        xa = at::cat({xa, it.row->concat.narrow(2, it.area[2], it.area[0]).narrow(3, it.area[3], it.area[1])}, 1);
      }
      xs.push_back(xa);
      at::Tensor c = it.row->context.repeat({1, length / it.row->context.size(1), 1});
      ctx.push_back(c.expand({b, length, c.size(2)}));
      if (it.row->y.defined()) ys.push_back(it.row->y.expand({b, it.row->y.size(1)}));
      sig.push_back(sigma);
    }
    if (hook) hook(*items[0].row);
    at::Tensor pred = model(at::cat(xs), at::cat(sig), at::cat(ctx), ys.empty() ? at::Tensor() : at::cat(ys));
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& it = items[i];
      at::Tensor part = pred.slice(0, int64_t(i) * b, int64_t(i + 1) * b);
      at::Tensor mult = area_mult(*it.row, h, w).to(x.device());
      at::Tensor o = out[it.list].narrow(2, it.area[2], it.area[0]).narrow(3, it.area[3], it.area[1]);
      at::Tensor c = count[it.list].narrow(2, it.area[2], it.area[0]).narrow(3, it.area[3], it.area[1]);
      o += part * mult;
      c += mult;
    }
  }
  std::vector<at::Tensor> result(conds.size());
  for (size_t l = 0; l < conds.size(); ++l) {
    if (conds[l]) result[l] = out[l] / count[l];
  }
  return result;
}

}  // namespace netdist::cond
