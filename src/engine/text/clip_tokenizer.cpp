#include "engine/text/clip_tokenizer.h"

#include "io/files.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "engine/text/unicode.h"

namespace netdist::text {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxCacheEntries = 1 << 16;
constexpr std::u32string_view kStartToken32 = U"<|startoftext|>";
constexpr std::u32string_view kEndToken32 = U"<|endoftext|>";

std::vector<std::string> make_byte_symbols() {
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  std::vector<std::string> symbols(256);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    bool is_printable = std::find(printable.begin(), printable.end(), b) != printable.end();
    char32_t c = is_printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
    unicode::append_utf8(c, symbols[static_cast<size_t>(b)]);
  }
  return symbols;
}

bool has_vocab_files(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec);
}

// Length of the contraction ('s 't 're 've 'm 'll 'd) at text[i] == '\'', or 0.
size_t contraction_length(std::u32string_view text, size_t i) {
  std::u32string_view rest = text.substr(i + 1);
  for (std::u32string_view suffix : {U"s", U"t", U"re", U"ve", U"m", U"ll", U"d"}) {
    if (rest.starts_with(suffix)) return 1 + suffix.size();
  }
  return 0;
}

// NFC, runs of White_Space -> ' ', per-character lowercase (the CLIP normalizer of `tokenizers`).
std::u32string normalize(std::string_view text) {
  std::u32string nfc = unicode::to_nfc(unicode::decode_utf8(text));
  std::u32string collapsed;
  collapsed.reserve(nfc.size());
  for (char32_t c : nfc) {
    if (!unicode::is_white_space(c)) {
      collapsed.push_back(c);
    } else if (collapsed.empty() || collapsed.back() != ' ') {
      collapsed.push_back(' ');
    }
  }
  return unicode::to_lower(collapsed);
}

uint64_t pair_key(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

struct ClipTokenizer::Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int>> ids;
};

ClipTokenizer::ClipTokenizer() : byte_symbols_(make_byte_symbols()), cache_(std::make_unique<Cache>()) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

Result<ClipTokenizer> ClipTokenizer::load(const std::string& dir) {
  fs::path root(dir);
  fs::path vocab_path = root / "vocab.json";
  fs::path merges_path = root / "merges.txt";
  ND_ASSIGN_OR_RETURN(std::string vocab_json, io::read_file(vocab_path.string()));
  ND_ASSIGN_OR_RETURN(std::string merges_txt, io::read_file(merges_path.string()));
  return from_strings(vocab_json, merges_txt, vocab_path.string(), merges_path.string());
}

Result<ClipTokenizer> ClipTokenizer::from_strings(std::string_view vocab_json, std::string_view merges_txt,
                                                  const std::string& vocab_name, const std::string& merges_name) {
  ClipTokenizer tokenizer;
  nlohmann::json vocab = nlohmann::json::parse(vocab_json, nullptr, false);
  if (vocab.is_discarded()) return Status::corruption(vocab_name + ": not valid JSON");
  if (!vocab.is_object() || vocab.empty()) {
    return Status::corruption(vocab_name + ": expected a non-empty JSON object of token -> id");
  }
  tokenizer.vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT_MAX) {
      return Status::corruption(vocab_name + ": token '" + token + "' has id " + id.dump() +
                                ", expected a non-negative integer");
    }
    tokenizer.vocab_[token] = static_cast<int>(id.get<int64_t>());
  }
  auto bos = tokenizer.vocab_.find(kStartToken);
  auto eos = tokenizer.vocab_.find(kEndToken);
  if (bos == tokenizer.vocab_.end()) return Status::corruption(vocab_name + ": no '" + kStartToken + "' token");
  if (eos == tokenizer.vocab_.end()) return Status::corruption(vocab_name + ": no '" + kEndToken + "' token");
  tokenizer.bos_id_ = bos->second;
  tokenizer.eos_id_ = eos->second;

  size_t line_start = 0;
  size_t line_number = 0;
  std::string_view body = merges_txt;
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r' || body.back() == ' ')) body.remove_suffix(1);
  int rank = 0;
  while (line_start < body.size()) {
    size_t line_end = body.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = body.size();
    std::string_view line = body.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1 && line.starts_with("#version")) continue;
    size_t space = line.find(' ');
    bool two_symbols = space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                       line.find(' ', space + 1) == std::string_view::npos;
    if (!two_symbols) {
      return Status::corruption(merges_name + ": line " + std::to_string(line_number) + " is '" + std::string(line) +
                                "', expected two symbols separated by one space");
    }
    std::string left(line.substr(0, space));
    std::string right(line.substr(space + 1));
    auto left_id = tokenizer.vocab_.find(left);
    auto right_id = tokenizer.vocab_.find(right);
    auto merged_id = tokenizer.vocab_.find(left + right);
    if (left_id == tokenizer.vocab_.end() || right_id == tokenizer.vocab_.end() ||
        merged_id == tokenizer.vocab_.end()) {
      return Status::corruption(merges_name + ": line " + std::to_string(line_number) + " merges '" + left + "' + '" +
                                right + "', which " + vocab_name + " does not fully contain");
    }
    tokenizer.merges_[pair_key(left_id->second, right_id->second)] = {rank++, merged_id->second};
  }
  return tokenizer;
}

Result<std::string> ClipTokenizer::find_vocab_dir(const std::string& model_dir, const std::string& explicit_dir) {
  std::vector<fs::path> candidates;
  if (!explicit_dir.empty()) {
    candidates.push_back(explicit_dir);
  } else {
    if (!model_dir.empty()) {
      std::error_code ec;
      fs::path model(model_dir);
      if (fs::is_regular_file(model, ec)) model = model.parent_path();
      candidates.push_back(model);
      candidates.push_back(model / "tokenizer");
    }
    if (const char* comfy = std::getenv("COMFYUI_PATH"); comfy != nullptr && *comfy != '\0') {
      candidates.push_back(fs::path(comfy) / "comfy" / "sd1_tokenizer");
    }
    std::vector<fs::path> hubs;
    if (const char* v = std::getenv("HF_HUB_CACHE"); v != nullptr && *v != '\0') hubs.push_back(v);
    if (const char* v = std::getenv("HF_HOME"); v != nullptr && *v != '\0') hubs.push_back(fs::path(v) / "hub");
    if (const char* v = std::getenv("XDG_CACHE_HOME"); v != nullptr && *v != '\0') {
      hubs.push_back(fs::path(v) / "huggingface" / "hub");
    }
    if (const char* v = std::getenv("HOME"); v != nullptr && *v != '\0') {
      hubs.push_back(fs::path(v) / ".cache" / "huggingface" / "hub");
    }
    for (const fs::path& hub : hubs) {
      fs::path snapshots = hub / "models--openai--clip-vit-large-patch14" / "snapshots";
      std::error_code ec;
      std::vector<fs::path> found;
      for (fs::directory_iterator it(snapshots, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_directory(ec)) found.push_back(it->path());
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) found.push_back(snapshots / "*");
      candidates.insert(candidates.end(), found.begin(), found.end());
    }
  }
  std::string searched;
  for (const fs::path& dir : candidates) {
    if (has_vocab_files(dir)) return dir.string();
    searched += searched.empty() ? "" : ", ";
    searched += dir.string();
  }
  if (candidates.empty()) searched = "(no model folder, --clip-vocab, COMFYUI_PATH, HF_HOME or HOME)";
  return Status::not_found("CLIP tokenizer vocab (vocab.json + merges.txt) not found; searched: " + searched +
                           "; pass --clip-vocab DIR");
}

std::vector<int> ClipTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t bos_at = text.find(kStartToken, start);
    size_t eos_at = text.find(kEndToken, start);
    size_t special_at = std::min(bos_at, eos_at);
    std::string_view piece = text.substr(start, special_at == std::string_view::npos ? text.npos : special_at - start);
    encode_normalized(normalize(piece), ids);
    if (special_at == std::string_view::npos) break;
    bool is_bos = special_at == bos_at;
    ids.push_back(is_bos ? bos_id_ : eos_id_);
    start = special_at + std::string_view(is_bos ? kStartToken : kEndToken).size();
  }
  return ids;
}

void ClipTokenizer::encode_normalized(std::u32string_view text, std::vector<int>& out) const {
  size_t i = 0;
  while (i < text.size()) {
    char32_t c = text[i];
    if (unicode::is_white_space(c)) {
      ++i;
      continue;
    }
    std::u32string_view special;
    if (text.substr(i).starts_with(kStartToken32)) special = kStartToken32;
    if (text.substr(i).starts_with(kEndToken32)) special = kEndToken32;
    if (!special.empty()) {
      encode_piece("<|", out);
      encode_piece(unicode::encode_utf8(special.substr(2, special.size() - 4)), out);
      encode_piece("|>", out);
      i += special.size();
      continue;
    }
    size_t length = c == '\'' ? contraction_length(text, i) : 0;
    if (length == 0 && unicode::is_letter(c)) {
      while (i + length < text.size() && unicode::is_letter(text[i + length])) ++length;
    } else if (length == 0 && unicode::is_number(c)) {
      length = 1;
    } else if (length == 0) {
      while (i + length < text.size()) {
        char32_t d = text[i + length];
        if (unicode::is_white_space(d) || unicode::is_letter(d) || unicode::is_number(d)) break;
        ++length;
      }
    }
    encode_piece(unicode::encode_utf8(text.substr(i, length)), out);
    i += length;
  }
}

void ClipTokenizer::encode_piece(std::string_view piece, std::vector<int>& out) const {
  std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->ids.find(key);
    if (it != cache_->ids.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int> ids = bpe(piece);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (cache_->ids.size() >= kMaxCacheEntries) cache_->ids.clear();
  cache_->ids.emplace(std::move(key), std::move(ids));
}

std::vector<int> ClipTokenizer::bpe(std::string_view piece) const {
  std::vector<int> word;
  word.reserve(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    std::string symbol = byte_symbols_[static_cast<unsigned char>(piece[i])];
    if (i + 1 == piece.size()) symbol += "</w>";
    auto it = vocab_.find(symbol);
    word.push_back(it == vocab_.end() ? unk_id() : it->second);
  }
  while (word.size() > 1) {
    int best_rank = std::numeric_limits<int>::max();
    size_t best = 0;
    int best_id = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merges_.find(pair_key(word[i], word[i + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        best_id = it->second.merged_id;
        best = i;
      }
    }
    if (best_rank == std::numeric_limits<int>::max()) break;
    word[best] = best_id;
    word.erase(word.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  return word;
}

std::string ClipTokenizer::token_text(int id) const {
  for (const auto& [token, token_id] : vocab_) {
    if (token_id == id) return token;
  }
  return "";
}

}  // namespace netdist::text
