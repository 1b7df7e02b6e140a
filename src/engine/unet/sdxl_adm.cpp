#include "engine/unet/sdxl_adm.h"

#include "core/status.h"
#include "engine/unet/unet_blocks.h"

namespace netdist::unet {

at::Tensor sdxl_adm(const at::Tensor& pooled, int64_t width, int64_t height, int64_t crop_w, int64_t crop_h,
                    int64_t target_width, int64_t target_height) {
  ND_ASSERT(pooled.dim() == 2, "sdxl_adm expects pooled [B, 1280]");
  const double values[] = {static_cast<double>(height),      static_cast<double>(width),
                           static_cast<double>(crop_h),      static_cast<double>(crop_w),
                           static_cast<double>(target_height), static_cast<double>(target_width)};
  at::Tensor t = at::tensor(at::ArrayRef<double>(values, 6), at::TensorOptions().dtype(at::kFloat));
  at::Tensor flat = timestep_embedding(t, 256).reshape({1, -1}).to(pooled.device());
  flat = flat.expand({pooled.size(0), flat.size(1)});
  return at::cat({pooled.to(at::kFloat), flat}, 1);
}

at::Tensor sdxl_refiner_adm(const at::Tensor& pooled, int64_t width, int64_t height, int64_t crop_w, int64_t crop_h,
                            double aesthetic_score) {
  ND_ASSERT(pooled.dim() == 2, "sdxl_refiner_adm expects pooled [B, 1280]");
  // Each value through torch.Tensor([v]) (float32), as ComfyUI's embedder calls.
  const float values[] = {static_cast<float>(height), static_cast<float>(width), static_cast<float>(crop_h),
                          static_cast<float>(crop_w), static_cast<float>(aesthetic_score)};
  at::Tensor t = at::tensor(at::ArrayRef<float>(values, 5), at::TensorOptions().dtype(at::kFloat));
  at::Tensor flat = timestep_embedding(t, 256).reshape({1, -1}).to(pooled.device());
  flat = flat.expand({pooled.size(0), flat.size(1)});
  return at::cat({pooled.to(at::kFloat), flat}, 1);
}

}  // namespace netdist::unet
