#include "engine/cfg_split.h"

#include <chrono>
#include <stdexcept>
#include <string>

namespace netdist::cond {

Status CfgSplit::check(const StepGroup* group) {
  if (group == nullptr) return Status::invalid_argument("sample: cfg_split needs a step group");
  if (group->size() != 2) {
    return Status::invalid_argument("sample: cfg_split needs a step group of 2 members, got " +
                                    std::to_string(group->size()));
  }
  return Status::ok();
}

at::Tensor CfgSplit::denoise(const ModelFn& model, const std::vector<CondRow>& positive,
                             const std::vector<CondRow>& negative, const at::Tensor& x,
                             const at::Tensor& sigma, const CallHook& hook) {
  if (!status_.is_ok()) throw std::runtime_error(status_.message());
  const int rank = group_.rank();
  at::Tensor mine;
  if (stop_requested_) {
    mine = at::zeros_like(x);
  } else {
    std::vector<const std::vector<CondRow>*> lists = {rank == 0 ? &positive : nullptr,
                                                      rank == 0 ? nullptr : &negative};
    mine = calc_cond_batch(model, lists, x, sigma, hook)[rank == 0 ? 0 : 1];
  }
  at::Tensor flag = at::full({1}, stop_requested_ ? 1.0 : 0.0, mine.options());
  at::Tensor packed = at::cat({mine.reshape({-1}), flag});

  const auto start = std::chrono::steady_clock::now();
  Result<std::vector<at::Tensor>> all = group_.all_gather(packed);
  exchange_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++exchanges_;
  if (!all.is_ok()) {
    status_ = all.status();
    throw std::runtime_error(status_.message());
  }
  const int64_t numel = mine.numel();
  for (int r = 0; r < 2; ++r) {
    if ((*all)[r][numel].item<double>() != 0.0) {
      status_ = Status::cancelled("sampling interrupted on " + group_.describe(r) + " of a CFG-split group");
      throw std::runtime_error(status_.message());
    }
  }
  at::Tensor cond = (*all)[0].narrow(0, 0, numel).view(mine.sizes());
  at::Tensor uncond = (*all)[1].narrow(0, 0, numel).view(mine.sizes());
  if (patches_) return patches::combine_cfg(*patches_, cond, uncond, cfg_, x, sigma);
  return uncond + (cond - uncond) * cfg_;
}

}  // namespace netdist::cond
