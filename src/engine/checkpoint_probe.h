// What a model file is, read from its safetensors header alone (no weight is loaded): the family and
// prediction a checkpoint would load as, or the reason it would be refused. For `netdist doctor`, which checks a
// models folder without the memory or time that loading every file would take.
// Thread-safety: stateless; call from any thread. Defined in load.cpp beside the loader whose checks it runs.
#pragma once

#include <string>

#include "core/status.h"

namespace netdist {

// "SDXL (eps)", "SD2 (v)", "SD1 (eps, netdist.family metadata)": what CheckpointLoaderSimple would build from
// the file at `path`. The loader's own errors otherwise: kNotFound/kIoError for the file, kCorruption for a
// damaged header, kUnsupported naming what the UNet is (an inpainting UNet, an unknown width, ...).
Result<std::string> describe_checkpoint(const std::string& path);

}  // namespace netdist
