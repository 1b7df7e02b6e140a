// The unigram language-model segmenter of Hugging Face `tokenizers` (models/unigram, encode_optimized),
// reproduced exactly: Viterbi over the byte positions of a piece, candidate tokens tried shortest first and
// kept only on a strictly better total score (on a tie the path found first wins: the one whose last token
// starts earliest), a character no token starts with scored min_score - 10 as the
// unk id, and consecutive unk pieces fused into one unk (fuse_unk, always on for Unigram).
// Thread-safety: immutable after create(); encode() may be called from any thread.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace netdist::text {

class UnigramModel {
 public:
  // vocab: (piece, log-probability score) by id. A repeated piece maps to its last id, as in `tokenizers`.
  // Errors (naming source): an empty vocabulary, unk_id outside it.
  static Result<UnigramModel> create(std::vector<std::pair<std::string, double>> vocab, int unk_id,
                                     const std::string& source);

  // Appends the ids of piece's best segmentation to out.
  void encode(std::string_view piece, std::vector<int>& out) const;

  int unk_id() const { return unk_id_; }
  size_t size() const { return vocab_.size(); }
  const std::string& piece(int id) const { return vocab_[static_cast<size_t>(id)].first; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::pair<std::string, double>> vocab_;
  std::unordered_map<std::string, int, Hash, std::equal_to<>> ids_;
  size_t max_piece_bytes_ = 0;
  double min_score_ = 0.0;
  int unk_id_ = 0;
};

}  // namespace netdist::text
