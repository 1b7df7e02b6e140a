// parity_check --tiled (tools/parity/tiled_check.cpp): netdist's TiledDiffusion against the reference file of
// tools/parity/tiled_reference.py. Prints a markdown table; returns 1 when a row misses its bound.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "engine/runtime/weights.h"
#include "netdist/engine.h"

namespace netdist::parity {

int tiled_check(const std::shared_ptr<Model>& model, runtime::WeightMap& ref, std::map<std::string, std::string>& meta,
                const std::string& precision);

}  // namespace netdist::parity
