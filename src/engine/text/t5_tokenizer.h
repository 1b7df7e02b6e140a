// T5 v1.1's SentencePiece-unigram tokenizer, read from a Hugging Face `tokenizer.json`, matching what
// ComfyUI's T5XXLTokenizer (SD3, SD3.5, Flux) gets from transformers.T5TokenizerFast.
//
// encode(text) does, in order:
//   1. split out the added (special) tokens ("<pad>", "</s>", "<unk>", "<extra_id_N>"): leftmost-longest
//      exact matches in the raw text become their ids;
//   2. normalize each remaining piece: SentencePiece's precompiled charsmap (precompiled_charsmap.h; NFKC and
//      T5's extra rules), then, in kTokenizerJson mode only, the file's Strip / Replace steps;
//   3. pre-split: kTransformers mode: on White_Space, then "▁" is put in front of every word (Metaspace,
//      prepend_scheme "always"); kTokenizerJson mode: the file's Metaspace (spaces -> "▁", "▁" in front of
//      the text's first piece only); both then split before every "▁";
//   4. each piece: Viterbi segmentation over the unigram vocabulary (unigram_model.h): best total score, a
//      character no token starts with scores min_score - 10 and becomes unk; unk runs fuse into one unk id.
// The end token ("</s>", from the file's post-processor) is not appended: ComfyUI drops it per segment.
//
// The two modes differ only after an added token in the text ("</s>x": transformers 5 gives "▁x", the file
// gives "x"). transformers 5's T5Tokenizer builds its own pipeline (WhitespaceSplit + Metaspace "always") and
// takes only the vocabulary and the charsmap from the file, so kTransformers is the default; parity with
// ComfyUI is checked on the GPU machine (tools/parity/t5_reference.py).
//
// Thread-safety: immutable after load; const methods may be called from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace netdist::text {

class T5Tokenizer {
 public:
  enum class Pipeline { kTransformers, kTokenizerJson };

  // Reads a tokenizer.json (model.type "Unigram" with byte_fallback false; normalizer null, Precompiled,
  // Strip, Replace or a Sequence of them; pre_tokenizer Metaspace / WhitespaceSplit / Sequence; added tokens
  // not normalized; a TemplateProcessing post-processor ending in the end token). Anything else, or malformed
  // JSON, is an error naming the file and the field.
  static Result<T5Tokenizer> load(const std::string& path, Pipeline pipeline = Pipeline::kTransformers);
  static Result<T5Tokenizer> from_json(std::string_view json, const std::string& source,
                                       Pipeline pipeline = Pipeline::kTransformers);

  // The tokenizer.json to use: explicit_path when non-empty (the only place looked, must exist); else
  // $COMFYUI_PATH/comfy/text_encoders/t5_tokenizer/tokenizer.json; else models/t5_tokenizer/tokenizer.json
  // shipped with netdist (beside the working directory, the executable, or the source tree). not_found lists
  // every place it looked.
  static Result<std::string> find_tokenizer_json(const std::string& explicit_path);

  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
  ~T5Tokenizer();

  // Ids for text, without the end token.
  std::vector<int> encode(std::string_view text) const;
  // Normalized and pre-split pieces of text that holds no added token (for tests and diagnostics).
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  int end_id() const { return end_id_; }
  int unk_id() const;
  size_t vocab_size() const;
  // The vocabulary piece of id ("▁photo"), or "" when out of range.
  std::string token_text(int id) const;

 private:
  struct Impl;
  T5Tokenizer();

  std::unique_ptr<Impl> impl_;
  int end_id_ = -1;
};

}  // namespace netdist::text
