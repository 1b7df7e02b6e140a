// Runs a tiled computation (engine/upscale/tiled.h, engine/vae/vae_tiled.h) with its tiles computed by a
// TileRunner (include/netdist/tile_runner.h): first the tiled code runs with a tile function that only
// records each input tile (and returns zeros of the output shape), then the runner computes the recorded
// tiles, then the tiled code runs again with a tile function that returns those outputs in order. Both runs
// cut the same tiles in the same order, so the second blends exactly what the local code would have.
// The recorded tiles keep the memory format the local code's tiles suggest (channels-last for an IMAGE's
// tiles): the runner must compute them in it to get the local bits.
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <functional>

#include <ATen/ATen.h>

#include "core/status.h"
#include "netdist/tile_runner.h"

namespace netdist::runtime {

using ReplayTileFn = std::function<at::Tensor(const at::Tensor&)>;
// The tiled computation, given the tile function to use (called twice).
using TiledPass = std::function<Result<at::Tensor>(const ReplayTileFn& fn)>;

// `scale` and `out_channels`: each tile [1, C, h, w] gives [1, out_channels, h·scale, w·scale]. `count`, when
// given, receives the number of tiles. Errors: the runner's; invalid_argument naming the tile when the runner
// returns the wrong count, or a tile of the wrong shape or type.
Result<at::Tensor> run_tiles_by(const TiledPass& pass, const TileRunner& runner, int64_t scale,
                                int64_t out_channels, int64_t* count = nullptr);

}  // namespace netdist::runtime
