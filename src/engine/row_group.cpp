// Rows shared by a step group (src/engine/row_group.h).
#include "engine/row_group.h"

#include <algorithm>
#include <string>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "engine/micro_batch.h"
#include "netdist/step_group.h"

namespace netdist::rows {

Result<std::vector<int64_t>> shared_row_bounds(int64_t n, int64_t begin, int64_t end, int members) {
  const std::string range = "rows [" + std::to_string(begin) + ", " + std::to_string(end) + ")";
  if (members < 1) return Status::invalid_argument("sample: a row group needs at least 1 member");
  if (begin < 0 || begin >= end || end > n)
    return Status::invalid_argument("sample: " + range + " outside a batch of " + std::to_string(n));
  std::vector<int64_t> groups;  // micro-batch bounds inside the range
  for (int64_t b : micro_batch_bounds(n)) {
    if (b >= begin && b <= end) groups.push_back(b);
  }
  if (groups.empty() || groups.front() != begin || groups.back() != end)
    return Status::invalid_argument("sample: " + range + " cut a micro-batch of the batch of " + std::to_string(n));
  const int64_t g = static_cast<int64_t>(groups.size()) - 1;
  if (g < members) {
    return Status::invalid_argument("sample: a row group of " + std::to_string(members) + " members needs at least " +
                                    std::to_string(members) + " micro-batches, " + range + " hold " +
                                    std::to_string(g));
  }
  std::vector<int64_t> bounds;
  for (int a = 0; a <= members; ++a) bounds.push_back(groups[static_cast<size_t>(g * a / members)]);
  return bounds;
}

namespace {

// The status word a member sends: 0 = its rows are good, else 1 + its StatusCode.
double row_group_status_word(const Status& s) { return s.is_ok() ? 0.0 : 1.0 + static_cast<double>(s.code()); }

}  // namespace

Result<SampleOutput> sample_shared_rows(Model& model, const Conditioning& positive, const Conditioning& negative,
                                        const SampleRequest& req, const ProgressFn& progress) {
  StepGroup& group = *req.row_group;
  if (!req.latent.defined() || req.latent.dim() != 4)
    return Status::invalid_argument("sample: latent_image must be [N, C, h, w] to share its rows");
  const int64_t n = req.latent.size(0);
  const int k = group.size(), me = group.rank();
  ND_ASSIGN_OR_RETURN(std::vector<int64_t> bounds,
                      shared_row_bounds(n, req.row_begin, req.row_end < 0 ? n : req.row_end, k));
  SampleRequest mine = req;
  mine.row_group = nullptr;
  mine.row_begin = bounds[me];
  mine.row_end = bounds[me + 1];
  Result<SampleOutput> out = sample_with_denoised(model, positive, negative, mine, progress);

  int64_t most = 0;
  for (int a = 0; a < k; ++a) most = std::max(most, bounds[a + 1] - bounds[a]);
  const int64_t per_row = req.latent.size(1) * req.latent.size(2) * req.latent.size(3);
  // A normal tensor (not an inference tensor): c10d's Gloo work writes it on its own threads.
  c10::InferenceMode normal_tensors(false);
  at::Tensor packed = at::zeros({1 + 2 * most * per_row}, at::kFloat);
  packed[0] = row_group_status_word(out.status());
  if (out.is_ok()) {
    const int64_t rows = bounds[me + 1] - bounds[me];
    packed.narrow(0, 1, rows * per_row).copy_(out->samples.to(at::kFloat).reshape({-1}));
    packed.narrow(0, 1 + most * per_row, rows * per_row).copy_(out->denoised.to(at::kFloat).reshape({-1}));
  }
  Result<std::vector<at::Tensor>> all = group.all_gather(packed);
  if (!out.is_ok()) return out.status();
  if (!all.is_ok()) return all.status();
  std::vector<at::Tensor> samples, denoised;
  for (int a = 0; a < k; ++a) {
    const at::Tensor& t = (*all)[a];
    const auto word = static_cast<int64_t>(t[0].item<double>());
    if (word != 0) {
      const auto code = static_cast<StatusCode>(word - 1);
      return Status(code, "sample: rows [" + std::to_string(bounds[a]) + ", " + std::to_string(bounds[a + 1]) +
                              ") failed on " + group.describe(a) + " of the row group");
    }
    const int64_t rows = bounds[a + 1] - bounds[a];
    std::vector<int64_t> shape = {rows, req.latent.size(1), req.latent.size(2), req.latent.size(3)};
    samples.push_back(t.narrow(0, 1, rows * per_row).view(shape));
    denoised.push_back(t.narrow(0, 1 + most * per_row, rows * per_row).view(shape));
  }
  return SampleOutput{at::cat(samples, 0).clone(), at::cat(denoised, 0).clone()};
}

}  // namespace netdist::rows
