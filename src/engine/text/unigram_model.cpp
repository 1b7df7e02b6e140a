#include "engine/text/unigram_model.h"

#include <algorithm>
#include <limits>

namespace netdist::text {
namespace {

constexpr double kUnigramUnkPenalty = 10.0;

size_t unigram_char_bytes(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

}  // namespace

Result<UnigramModel> UnigramModel::create(std::vector<std::pair<std::string, double>> vocab, int unk_id,
                                          const std::string& source) {
  if (vocab.empty()) return Status::invalid_argument(source + ": model.vocab is empty");
  if (unk_id < 0 || static_cast<size_t>(unk_id) >= vocab.size()) {
    return Status::invalid_argument(source + ": model.unk_id " + std::to_string(unk_id) +
                                    " is outside the vocabulary of " + std::to_string(vocab.size()));
  }
  UnigramModel model;
  model.min_score_ = std::numeric_limits<double>::infinity();
  for (size_t id = 0; id < vocab.size(); ++id) {
    model.ids_[vocab[id].first] = static_cast<int>(id);
    model.max_piece_bytes_ = std::max(model.max_piece_bytes_, vocab[id].first.size());
    model.min_score_ = std::min(model.min_score_, vocab[id].second);
  }
  model.vocab_ = std::move(vocab);
  model.unk_id_ = unk_id;
  return model;
}

void UnigramModel::encode(std::string_view piece, std::vector<int>& out) const {
  struct Node {
    int id = -1;
    double score = 0.0;
    size_t start = std::string_view::npos;  // npos: no path ends here yet
  };
  const size_t size = piece.size();
  if (size == 0) return;
  std::vector<Node> best(size + 1);
  const double unk_score = min_score_ - kUnigramUnkPenalty;
  size_t start = 0;
  while (start < size) {
    const double here = best[start].score;
    const size_t char_bytes =
        std::min(unigram_char_bytes(static_cast<unsigned char>(piece[start])), size - start);
    bool has_single_char_token = false;
    const size_t longest = std::min(max_piece_bytes_, size - start);
    for (size_t length = 1; length <= longest; ++length) {
      auto it = ids_.find(piece.substr(start, length));
      if (it == ids_.end()) continue;
      Node& target = best[start + length];
      const double candidate = vocab_[static_cast<size_t>(it->second)].second + here;
      if (target.start == std::string_view::npos || candidate > target.score) {
        target = {it->second, candidate, start};
      }
      if (length == char_bytes) has_single_char_token = true;
    }
    if (!has_single_char_token) {
      Node& target = best[start + char_bytes];
      const double candidate = unk_score + here;
      if (target.start == std::string_view::npos || candidate > target.score) {
        target = {unk_id_, candidate, start};
      }
    }
    start += char_bytes;
  }
  // Walk back from the end; runs of unk nodes become one unk id.
  std::vector<int> reversed;
  bool in_unk_run = false;
  for (size_t end = size; end > 0;) {
    const Node& node = best[end];
    if (node.id == unk_id_) {
      if (!in_unk_run) reversed.push_back(unk_id_);
      in_unk_run = true;
    } else {
      reversed.push_back(node.id);
      in_unk_run = false;
    }
    end = node.start;
  }
  out.insert(out.end(), reversed.rbegin(), reversed.rend());
}

}  // namespace netdist::text
