#include "engine/text/bpe_trainer.h"

#include <nlohmann/json.hpp>

namespace netdist::text {

namespace {

void append_utf8_bytes(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

using Symbols = std::vector<std::string>;

}  // namespace

const std::vector<std::string>& byte_to_unicode() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t c = printable ? char32_t(b) : char32_t(256 + extra++);
      append_utf8_bytes(c, t[b]);
    }
    return t;
  }();
  return table;
}

BpeVocab train_bpe(const std::map<std::string, int>& words, int merge_count, int min_pair_count) {
  const auto& bytes = byte_to_unicode();
  BpeVocab vocab;
  for (const std::string& s : bytes) vocab.tokens.push_back(s);
  for (const std::string& s : bytes) vocab.tokens.push_back(s + "</w>");

  std::vector<std::pair<Symbols, int>> corpus;
  for (const auto& [word, count] : words) {
    if (word.empty()) continue;
    Symbols symbols;
    for (unsigned char b : word) symbols.push_back(bytes[b]);
    symbols.back() += "</w>";
    corpus.emplace_back(std::move(symbols), count);
  }

  for (int m = 0; m < merge_count; ++m) {
    std::map<std::pair<std::string, std::string>, long> pairs;
    for (const auto& [symbols, count] : corpus) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += count;
    }
    const std::pair<std::string, std::string>* best = nullptr;
    long best_count = 0;
    for (const auto& [pair, count] : pairs) {
      if (count > best_count) {  // std::map order: ties keep the lexicographically smallest pair
        best = &pair;
        best_count = count;
      }
    }
    if (!best || best_count < min_pair_count) break;
    const auto merged_pair = *best;
    const std::string joined = merged_pair.first + merged_pair.second;
    vocab.merges.push_back(merged_pair);
    vocab.tokens.push_back(joined);
    for (auto& [symbols, count] : corpus) {
      Symbols next;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merged_pair.first && symbols[i + 1] == merged_pair.second) {
          next.push_back(joined);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols = std::move(next);
    }
  }
  vocab.tokens.push_back("<|startoftext|>");
  vocab.tokens.push_back("<|endoftext|>");
  return vocab;
}

std::string vocab_json(const BpeVocab& vocab) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (size_t i = 0; i < vocab.tokens.size(); ++i) j[vocab.tokens[i]] = i;
  return j.dump();
}

std::string merges_txt(const BpeVocab& vocab) {
  std::string out = "#version: 0.2\n";
  for (const auto& [a, b] : vocab.merges) out += a + " " + b + "\n";
  return out;
}

}  // namespace netdist::text
