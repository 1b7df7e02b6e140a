#include "engine/cond_masks.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace netdist::cond {

namespace {

std::string cond_masks_cells_text(const std::array<int64_t, 4>& a) {
  return std::to_string(a[1]) + "x" + std::to_string(a[0]) + " cells at x=" + std::to_string(a[3]) +
         " y=" + std::to_string(a[2]);
}

// An area in latent cells that get_area_and_mult can use: a positive clamped size and, without a mask, room
// for the 8-cell feather on every edge that is not a latent edge.
Status cond_masks_check_cells(const std::array<int64_t, 4>& area, int64_t h, int64_t w, bool feathered_edges,
                              const std::string& where) {
  const int64_t dims[2] = {h, w};
  for (int i = 0; i < 2; ++i) {
    const int64_t size = std::min(dims[i] - area[2 + i], area[i]);
    if (size <= 0 || area[2 + i] < 0) {
      return Status::invalid_argument(where + ": conditioning area " + cond_masks_cells_text(area) +
                                      " lies outside the " + std::to_string(w) + "x" + std::to_string(h) +
                                      "-cell latent");
    }
    const bool feathered = area[2 + i] != 0 || size + area[2 + i] < dims[i];
    if (feathered_edges && feathered && size < 8) {
      return Status::invalid_argument(where + ": conditioning area " + cond_masks_cells_text(area) +
                                      " is narrower than the 8-cell feather on a " + std::to_string(w) + "x" +
                                      std::to_string(h) + "-cell latent");
    }
  }
  return Status::ok();
}

// resolve_areas_and_cond_masks_multidim's "percentage" branch.
Result<std::array<int64_t, 4>> cond_masks_percent_area(const std::array<double, 4>& p, int64_t h, int64_t w,
                                                       const std::string& where) {
  for (double v : p) {
    if (!(v >= 0.0 && v <= 1.0))
      return Status::invalid_argument(where + ": area percentage " + std::to_string(v) +
                                      " is outside [0, 1]");
  }
  const double dims[2] = {static_cast<double>(h), static_cast<double>(w)};
  std::array<int64_t, 4> a{};
  for (int d = 0; d < 2; ++d) {
    a[d] = std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(p[d] * dims[d])));
    a[2 + d] = static_cast<int64_t>(std::nearbyint(p[2 + d] * dims[d]));
  }
  return a;
}

// The mask resized to the latent ([M, h, w] float32 on the device).
Result<at::Tensor> cond_masks_resize(const at::Tensor& mask, const CondShape& shape,
                                     const std::string& where) {
  if (!mask.defined() || mask.dim() < 2 || mask.dim() > 3 || !at::isFloatingType(mask.scalar_type()) ||
      mask.numel() == 0) {
    return Status::invalid_argument(where +
                                    ": ConditioningSetMask's mask must be a non-empty [M, H, W] float "
                                    "mask");
  }
  at::Tensor m = mask.to(shape.device, at::kFloat);
  if (m.dim() == 2) m = m.unsqueeze(0);
  if (m.size(1) != shape.latent_h || m.size(2) != shape.latent_w) {
    m = at::upsample_bilinear2d(m.unsqueeze(1), {shape.latent_h, shape.latent_w}, false).squeeze(1);
  }
  return m;
}

// get_mask_aabb of max(|mask|) over the rows → (H, W, Y, X), each side at least 8.
std::array<int64_t, 4> cond_masks_bounds(const at::Tensor& mask) {
  const at::Tensor bounds = std::get<0>(at::max(at::abs(mask), 0)).cpu();
  const at::Tensor nz = at::nonzero(bounds);  // [K, 2] (y, x)
  if (nz.size(0) == 0) return {8, 8, 0, 0};
  const int64_t y0 = nz.select(1, 0).min().item<int64_t>(), y1 = nz.select(1, 0).max().item<int64_t>();
  const int64_t x0 = nz.select(1, 1).min().item<int64_t>(), x1 = nz.select(1, 1).max().item<int64_t>();
  return {std::max<int64_t>(8, y1 - y0 + 1), std::max<int64_t>(8, x1 - x0 + 1), y0, x0};
}

// The weight rows of the sampled rows: mask[:B] · mask_strength repeated to B rows, rows
// [row_begin, row_end) → [b, 1, h, w].
Result<at::Tensor> cond_masks_rows(const at::Tensor& mask, float mask_strength, const CondShape& shape,
                                   const std::string& where) {
  const int64_t m = std::min(mask.size(0), shape.batch);
  if (shape.batch % m != 0) {
    return Status::invalid_argument(
        where + ": ConditioningSetMask's mask has " + std::to_string(mask.size(0)) +
        " rows, which do not repeat to a batch of " + std::to_string(shape.batch));
  }
  at::Tensor rows =
      (mask.slice(0, 0, m) * static_cast<double>(mask_strength)).repeat({shape.batch / m, 1, 1});
  return rows.slice(0, shape.row_begin, shape.row_end).unsqueeze(1).contiguous();
}

}  // namespace

double percent_to_sigma(const sampling::ModelSampling& sampling, double percent) {
  const bool discrete = sampling.schedule() == sampling::ScheduleKind::kDiscrete;
  if (percent <= 0.0) return discrete ? 999999999.9 : 1.0;
  if (percent >= 1.0) return 0.0;
  const double t = 1.0 - percent;
  switch (sampling.schedule()) {
    case sampling::ScheduleKind::kDiscrete:
      return sampling.sigma(at::scalar_tensor(static_cast<float>(t * 999.0), at::kFloat)).item<double>();
    case sampling::ScheduleKind::kDiscreteFlow: {
      const double shift = sampling.shift();
      if (shift == 1.0) return t;
      return shift * t / (1 + (shift - 1) * t);
    }
    case sampling::ScheduleKind::kFlux:
      return std::exp(sampling.shift()) / (std::exp(sampling.shift()) + (1 / t - 1));
  }
  return 0.0;
}

Status resolve_entry(const CondEntry& entry, const CondShape& shape, const sampling::ModelSampling& sampling,
                     const std::string& where, CondRow& row) {
  const bool has_mask = entry.mask.defined();
  std::optional<std::array<int64_t, 4>> area;
  if (entry.area_percent) {
    ND_ASSIGN_OR_RETURN(area,
                        cond_masks_percent_area(*entry.area_percent, shape.latent_h, shape.latent_w, where));
  } else if (entry.area) {
    if (!has_mask) {
      ND_ASSIGN_OR_RETURN(area, resolve_area(*entry.area, shape.latent_h, shape.latent_w));
    } else {
      const auto& p = *entry.area;
      area = std::array<int64_t, 4>{p[0] / 8, p[1] / 8, p[2] / 8, p[3] / 8};
    }
  }
  if (has_mask) {
    ND_ASSIGN_OR_RETURN(at::Tensor mask, cond_masks_resize(entry.mask, shape, where));
    if (entry.set_area_to_bounds) area = cond_masks_bounds(mask);
    ND_ASSIGN_OR_RETURN(row.mask, cond_masks_rows(mask, entry.mask_strength, shape, where));
  }
  if (area) {
    ND_RETURN_IF_ERROR(cond_masks_check_cells(*area, shape.latent_h, shape.latent_w, !has_mask, where));
  }
  row.area = area;
  if (entry.start_percent) row.sigma_start = percent_to_sigma(sampling, *entry.start_percent);
  if (entry.end_percent) row.sigma_end = percent_to_sigma(sampling, *entry.end_percent);
  return Status::ok();
}

}  // namespace netdist::cond
