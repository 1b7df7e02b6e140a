// CLIP byte-level BPE tokenizer, matching transformers.CLIPTokenizer as ComfyUI's SDTokenizer calls it
// (transformers 5.x: the `tokenizers`-backed pipeline; verified against golden ids from 5.17.0).
//
// encode(text) does, in order:
//   1. split out the exact strings "<|startoftext|>" / "<|endoftext|>" (they become BOS / EOS ids);
//   2. normalize each remaining piece: NFC, every run of White_Space -> ' ', lowercase per character;
//   3. pre-split with  <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
//      (a special-token string that only appears after lowercasing is then cut as "<|", word, "|>" by
//      the byte-level pre-tokenizer's GPT-2 pattern);
//   4. each piece: UTF-8 bytes -> GPT-2 byte-to-unicode characters, "</w>" on the last; a character
//      missing from the vocab becomes the unk (EOS) id; then the lowest-ranked mergeable adjacent pair
//      (leftmost on ties) is merged until none is left.
// Unlike the Python (pre-5.x, no ftfy) CLIPTokenizer, control characters are kept and CJK ideographs are
// not split apart; the two agree on everything else.
//
// Thread-safety: after load(), every const method may be called from any number of threads at once; the
// BPE cache is guarded by a mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace netdist::text {

class ClipTokenizer {
 public:
  static constexpr const char* kStartToken = "<|startoftext|>";
  static constexpr const char* kEndToken = "<|endoftext|>";

  // Reads dir/vocab.json (a JSON object token -> id) and dir/merges.txt (an optional "#version" header,
  // then one "left right" pair per line, best rank first). Vocabs of any size work; both special tokens
  // must be present, and both sides of a merge and their concatenation must be vocab tokens (as the
  // `tokenizers` BPE requires). Errors name the file (and line) at fault.
  static Result<ClipTokenizer> load(const std::string& dir);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // The same from in-memory file contents; vocab_name / merges_name are used in error messages.
  static Result<ClipTokenizer> from_strings(std::string_view vocab_json, std::string_view merges_txt,
                                            const std::string& vocab_name = "vocab.json",
                                            const std::string& merges_name = "merges.txt");

  // The first folder holding both vocab.json and merges.txt, searching, in order:
  //   explicit_dir (when non-empty it is the only place searched: --clip-vocab must not be ignored);
  //   model_dir (its parent when it names a file) and model_dir/tokenizer;
  //   $COMFYUI_PATH/comfy/sd1_tokenizer;
  //   Hugging Face hub caches ($HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub,
  //   ~/.cache/huggingface/hub) at models--openai--clip-vit-large-patch14/snapshots/*/ (sorted).
  // Not found: a not_found Status listing every folder it looked in.
  static Result<std::string> find_vocab_dir(const std::string& model_dir, const std::string& explicit_dir);

  // BPE ids for text, without BOS/EOS.
  std::vector<int> encode(std::string_view text) const;

  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }
  int unk_id() const { return eos_id_; }
  size_t vocab_size() const { return vocab_.size(); }
  size_t merge_count() const { return merges_.size(); }
  // The vocab token for id ("photo</w>"), or "" if no token has that id. A linear scan: for diagnostics.
  std::string token_text(int id) const;

 private:
  struct Cache;

  ClipTokenizer();

  struct Merge {
    int rank;
    int merged_id;
  };

  void encode_normalized(std::u32string_view text, std::vector<int>& out) const;
  void encode_piece(std::string_view piece, std::vector<int>& out) const;
  std::vector<int> bpe(std::string_view piece) const;

  std::unordered_map<std::string, int> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;  // key: left id << 32 | right id
  std::vector<std::string> byte_symbols_;       // byte -> its UTF-8 byte-to-unicode character
  int bos_id_ = -1;
  int eos_id_ = -1;
  std::unique_ptr<Cache> cache_;
};

}  // namespace netdist::text
