// Learns a CLIP-style byte-level BPE vocabulary (vocab.json + merges.txt) from a word list, for the
// embedded model's own text encoder (tools/train_tiny). The result loads with ClipTokenizer::load.
//
// Layout of the vocabulary, as CLIP's: the 256 byte-to-unicode characters, the same 256 with "</w>",
// one token per merge in rank order, then "<|startoftext|>" and "<|endoftext|>". Every byte stays
// encodable, so any text tokenizes.
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace netdist::text {

struct BpeVocab {
  std::vector<std::string> tokens;                          // id → token
  std::vector<std::pair<std::string, std::string>> merges;  // rank → pair
};

// words: pre-split, lowercased words (as the tokenizer's pre-split produces them) with their counts.
// Merges the most frequent adjacent pair (ties: the lexicographically smallest pair) until `merge_count`
// merges exist or no pair occurs at least `min_pair_count` times. Deterministic.
BpeVocab train_bpe(const std::map<std::string, int>& words, int merge_count, int min_pair_count = 2);

// vocab.json (compact JSON object token → id) and merges.txt ("#version: 0.2" header, one pair a line).
std::string vocab_json(const BpeVocab& vocab);
std::string merges_txt(const BpeVocab& vocab);

// GPT-2's byte-to-unicode map: byte → its printable character, UTF-8 encoded.
const std::vector<std::string>& byte_to_unicode();

}  // namespace netdist::text
