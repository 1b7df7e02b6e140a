// Textual-inversion embeddings as ComfyUI's comfy/sd1_clip.py load_embed finds and reads them, for
// "embedding:name" in a prompt (tokenize_prompt.h TokenizeOptions::embedding_lookup):
//   - folders searched: `dir`, then every folder below it (recursive, symlinks followed, sorted; ComfyUI's
//     expand_directory_list — its order is a set's, so a name present in two folders may resolve to either
//     there); a name that leaves the folder ("../x") is skipped there;
//   - in each folder: the name as a file, else name + ".safetensors", ".pt", ".bin" (first that exists);
//   - only .safetensors files are read: a .pt / .bin (or any other) file is a pickle, refused with
//     kUnsupported naming the file (ComfyUI torch.loads it);
//   - the tensor: the encoder's key ("clip_l", "clip_g"; SD2's OpenCLIP-H tokenizer uses "clip_l", as
//     ComfyUI's SD2ClipHTokenizer), else the "bundle_emb.*.string_to_param.*" tensors, else the
//     "bundle_emb.*.<key>" ones (concatenated, key order), else the first tensor in key order ("emb_params",
//     "string_to_param.*", a single tensor); 1-D = one vector, 2-D = one vector per row;
//   - a file that cannot be read is skipped with ComfyUI's warning ("error loading embedding, skipping
//     loading: name") and counts as missing.
// Vectors of another width than the encoder's are dropped at encode time (text_encoder.h), with ComfyUI's
// warning. Thread-safety: pure functions (reads files).
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "engine/text/tokenize_prompt.h"

namespace netdist::text {

// The file `name` resolves to under `dir` (as above), or nullopt.
std::optional<std::string> find_embedding_file(const std::string& dir, const std::string& name);

// The vectors of embedding `name` for the encoder whose file key is `key` (float32). nullopt when no file
// matches or it cannot be read (warned); kUnsupported for a pickle; invalid_argument for a tensor of rank
// > 2.
Result<std::optional<EmbeddingVectors>> load_embedding(const std::string& dir, const std::string& name,
                                                       const std::string& key);

// The file key ComfyUI's tokenizer of this encoder ("clip_l", "clip_h", "clip_g") looks up.
std::string embedding_key_for(const std::string& encoder_name);

}  // namespace netdist::text
