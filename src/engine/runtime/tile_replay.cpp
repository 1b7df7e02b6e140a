#include "engine/runtime/tile_replay.h"

#include <string>
#include <vector>

namespace netdist::runtime {

Result<at::Tensor> run_tiles_by(const TiledPass& pass, const TileRunner& runner, int64_t scale,
                                int64_t out_channels, int64_t* count) {
  std::vector<at::Tensor> inputs;
  const ReplayTileFn record = [&](const at::Tensor& tile) {
    // In the tile's memory format: libtorch picks its kernels (and so the last bits) by the layout, and the
    // local code's tiles are often channels-last views (an IMAGE permuted to [N, C, H, W]).
    inputs.push_back(tile.to(at::kCPU, at::kFloat).contiguous(tile.suggest_memory_format()));
    return at::zeros({1, out_channels, tile.size(2) * scale, tile.size(3) * scale},
                     at::TensorOptions().dtype(at::kFloat).device(tile.device()));
  };
  ND_RETURN_IF_ERROR(pass(record).status());
  if (count) *count = int64_t(inputs.size());
  std::vector<std::vector<int64_t>> want;
  for (const at::Tensor& t : inputs) want.push_back({1, out_channels, t.size(2) * scale, t.size(3) * scale});
  ND_ASSIGN_OR_RETURN(std::vector<at::Tensor> outputs, runner(std::move(inputs)));
  if (outputs.size() != want.size())
    return Status::invalid_argument("the tile runner returned " + std::to_string(outputs.size()) + " tiles for " +
                                    std::to_string(want.size()));
  for (size_t i = 0; i < outputs.size(); ++i) {
    const at::Tensor& o = outputs[i];
    if (!o.defined() || o.scalar_type() != at::kFloat || o.sizes().vec() != want[i])
      return Status::invalid_argument("tile " + std::to_string(i) + " came back " +
                                      (o.defined() ? std::string(c10::toString(o.scalar_type())) + " " +
                                                         c10::str(o.sizes())
                                                   : std::string("empty")) +
                                      ", not float32 " + c10::str(at::IntArrayRef(want[i])));
  }
  size_t next = 0;
  const ReplayTileFn replay = [&](const at::Tensor& tile) {
    ND_ASSERT(next < outputs.size(), "run_tiles_by: the second pass cut more tiles than the first");
    return outputs[next++].to(tile.device());
  };
  ND_ASSIGN_OR_RETURN(at::Tensor out, pass(replay));
  ND_ASSERT(next == outputs.size(), "run_tiles_by: the second pass cut fewer tiles than the first");
  return out;
}

}  // namespace netdist::runtime
