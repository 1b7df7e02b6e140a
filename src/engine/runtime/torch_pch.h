// Precompiled header for every translation unit that uses libtorch. Only engine-side targets use it;
// code that does not need tensors must not include libtorch at all (build time on 2 cores).
#pragma once

#include <torch/torch.h>
