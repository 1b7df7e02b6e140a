// Prompt -> CLIP token windows with per-token weights, exactly as ComfyUI's
// SDTokenizer.tokenize_with_weights (comfy/sd1_clip.py) does it:
//   * the prompt is split into weighted segments (prompt_weights.h); each segment (and each
//     "embedding:" piece of it) is one group of tokens, encoded without BOS/EOS; an embedding's vectors are
//     one group of their own (one position per vector, the segment's weight);
//   * groups are packed into windows of max_length: BOS (weight 1), up to max_length - 2 tokens, EOS
//     (weight 1), then pad (weight 1). A group that does not fit in the current window moves whole to the
//     next window, unless it has >= 8 tokens: then it fills the current window and continues in the next;
//   * an empty prompt gives one window: BOS, EOS, pad...
// The T5 overload follows the same code with T5XXLTokenizer's settings: no BOS, EOS "</s>", pad 0, no
// max_length padding, max_length 99999999 (one window), min_length 77 (SD3) or 256 (Flux).
// Thread-safety: safe to call concurrently (ClipTokenizer::encode is).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/text/clip_tokenizer.h"
#include "engine/text/t5_tokenizer.h"

namespace netdist::text {

// ids and weights have the same length: max_length when pad_to_max_length (the default), otherwise as
// long as the window's tokens (or min_length, for the last window).
// A textual-inversion embedding for one encoder: `rows` vectors of width `dim`, row-major float32.
struct EmbeddingVectors {
  int64_t rows = 0, dim = 0;
  std::vector<float> data;
};

// embeddings: the positions that hold an embedding vector instead of a token (ComfyUI puts the tensor in the
// token list); ids[pos] is 0 there.
struct TokenWindow {
  std::vector<int> ids;
  std::vector<float> weights;
  std::map<size_t, std::vector<float>> embeddings;
};

struct TokenizeOptions {
  // Pad token after EOS. Unset: the vocab's end token (ComfyUI pad_with_end=True: SD1, SDXL clip_l).
  // OpenCLIP encoders (SD2, SDXL clip_g) pad with 0.
  std::optional<int> pad_id;
  int max_length = 77;
  bool pad_to_max_length = true;
  // The last window is padded to at least min_length tokens (0: no minimum).
  int min_length = 0;
  // ComfyUI's embedding_directory. Empty (SD1Tokenizer's default of None): "embedding:name" is plain text.
  // Set: ComfyUI's load_embed for this encoder (engine/text/embeddings.h): the named embedding's vectors,
  // nullopt when no file matches (the word is dropped with ComfyUI's warning "warning, embedding:X does not
  // exist, ignoring", and reported), or an error (a pickle, a broken file) that fails the tokenization.
  std::function<Result<std::optional<EmbeddingVectors>>(const std::string& name)> embedding_lookup;

  static TokenizeOptions clip_l() { return {}; }
  // ComfyUI's T5XXLTokenizer: sd3_clip.py (SD3, SD3.5) pads to 77, flux.py to 256.
  static TokenizeOptions t5xxl(int min_length) {
    TokenizeOptions options;
    options.pad_id = 0;
    options.max_length = 99999999;
    options.pad_to_max_length = false;
    options.min_length = min_length;
    return options;
  }
  static TokenizeOptions t5xxl_sd3() { return t5xxl(77); }
  static TokenizeOptions t5xxl_flux() { return t5xxl(256); }
  static TokenizeOptions open_clip() {
    TokenizeOptions options;
    options.pad_id = 0;
    return options;
  }
};

struct TokenizeReport {
  std::vector<std::string> missing_embeddings;  // names dropped because embedding_lookup found no file
};

// The embedding names a prompt's "embedding:" words try, in order (for the cluster's model fetch): each
// name as written and, when it has leading or trailing commas, without them.
std::vector<std::string> embedding_names_in(std::string_view prompt);

// Errors: invalid_argument for max_length < 10 or min_length < 0; embedding_lookup's errors.
Result<std::vector<TokenWindow>> tokenize_with_weights(const ClipTokenizer& tokenizer,
                                                       std::string_view prompt,
                                                       const TokenizeOptions& options,
                                                       TokenizeReport* report = nullptr);

// The same for T5 (no start token; the end token is the tokenizer's "</s>"; pad_id unset means 0).
Result<std::vector<TokenWindow>> tokenize_with_weights(const T5Tokenizer& tokenizer, std::string_view prompt,
                                                       const TokenizeOptions& options,
                                                       TokenizeReport* report = nullptr);

}  // namespace netdist::text
