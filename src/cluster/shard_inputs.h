// Input files that travel with a shard. A shard whose nodes read a file from the input folder (LoadImage,
// LoadImageMask: their "image" input names a file under input_dir) carries those files in its request:
//   "inputs": {"<name as in the workflow>": {"sha256": "<hex of the bytes>", "data": "<base64>"}}
// The coordinator fills it from its own input folder (collect_shard_inputs). The worker checks every name
// and hash, writes each file content-addressed under <input_dir>/netdist-inputs/<sha256><ext> (atomically;
// a file already there with that name is reused) and rewrites the workflow's "image" values to point there
// (install_shard_inputs), so the worker's own input files are never overwritten and two shards with
// different files of the same name do not collide. Files are kept for later shards (no cleanup).
// A name that is empty, absolute, contains a ".." component, a backslash or a NUL byte is refused with
// invalid_argument naming it.
// Thread-safety: pure functions over values and the file system; concurrent installs of the same file are
// safe (atomic renames of identical bytes).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace netdist::cluster {

using Json = nlohmann::ordered_json;

inline constexpr const char* kShardInputFolder = "netdist-inputs";

// True for node classes whose "image" input names a file in the input folder.
bool reads_input_file(const std::string& class_type);

// invalid_argument naming `name` unless it is a plain relative path that stays inside the input folder.
Status check_input_name(const std::string& name);

// The "inputs" object for `workflow`: every file its LoadImage/LoadImageMask nodes name, read from
// `input_dir`. io_error / not_found naming the file when it cannot be read; {} when there is none.
Result<Json> collect_shard_inputs(const Json& workflow, const std::string& input_dir);

// Writes `inputs` under input_dir/netdist-inputs and returns `workflow` with every "image" value that names
// one of them rewritten to its installed name. invalid_argument naming the input when `inputs` is not an
// object of {"sha256", "data"}, a name is unsafe, the data is not base64 or its hash differs; io_error when
// the file cannot be written. A workflow node naming a file that `inputs` lacks is left as it is.
Result<Json> install_shard_inputs(Json workflow, const Json& inputs, const std::string& input_dir);

}  // namespace netdist::cluster
