#include "engine/text/t5_tokenizer.h"

#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "engine/text/precompiled_charsmap.h"
#include "engine/text/t5_tokenizer_config.h"
#include "engine/text/unicode.h"
#include "engine/text/unigram_model.h"
#include "io/files.h"
#include "netdist/source_dir.h"

namespace netdist::text {
namespace {

namespace fs = std::filesystem;

struct T5Piece {
  std::string text;
  bool at_origin;  // starts at byte 0 of the whole input (Metaspace's prepend_scheme "first")
};

bool t5_is_space(char32_t c) { return unicode::is_white_space(c); }

// WhitespaceSplit: the runs of non-White_Space characters.
std::vector<T5Piece> t5_whitespace_split(const T5Piece& piece) {
  std::vector<T5Piece> out;
  const std::u32string chars = unicode::decode_utf8(piece.text);
  size_t i = 0;
  while (i < chars.size()) {
    const size_t word_start = i;
    while (i < chars.size() && t5_is_space(chars[i])) ++i;
    const bool leading_space = i > word_start;
    const size_t start = i;
    while (i < chars.size() && !t5_is_space(chars[i])) ++i;
    if (i > start) {
      out.push_back({unicode::encode_utf8(std::u32string_view(chars).substr(start, i - start)),
                     piece.at_origin && out.empty() && !leading_space});
    }
  }
  return out;
}

std::vector<T5Piece> t5_metaspace(const T5Piece& piece, const t5::MetaspaceStep& step) {
  std::string text;
  for (char c : piece.text) {
    if (c == ' ') {
      text += step.replacement;
    } else {
      text.push_back(c);
    }
  }
  if (text.empty()) return {};
  const bool prepend =
      step.prepend == t5::Prepend::kAlways || (step.prepend == t5::Prepend::kFirst && piece.at_origin);
  if (prepend && !text.starts_with(step.replacement)) text.insert(0, step.replacement);
  if (!step.split) return {{text, piece.at_origin}};
  std::vector<T5Piece> out;  // split before every replacement (MergedWithNext)
  const std::string& rep = step.replacement;
  size_t start = 0;
  while (start < text.size()) {
    const size_t search_from = text.compare(start, rep.size(), rep) == 0 ? start + rep.size() : start;
    size_t next = text.find(rep, search_from);
    if (next == std::string::npos) next = text.size();
    out.push_back({text.substr(start, next - start), piece.at_origin && out.empty()});
    start = next;
  }
  return out;
}

}  // namespace

struct T5Tokenizer::Impl {
  t5::TokenizerConfig config;
  std::optional<PrecompiledCharsmap> charsmap;
  std::optional<UnigramModel> model;

  std::string normalize(std::string_view text) const {
    std::string out(text);
    for (const t5::NormalizerStep& step : config.normalizers) {
      switch (step.kind) {
        case t5::NormalizerStep::Kind::kPrecompiled:
          out = charsmap->normalize(out);
          break;
        case t5::NormalizerStep::Kind::kStrip:
          out = t5::strip(out, step.strip_left, step.strip_right);
          break;
        case t5::NormalizerStep::Kind::kReplace:
          out = t5::replace(out, step);
          break;
      }
    }
    return out;
  }

  std::vector<T5Piece> pre_tokenize(std::string normalized, bool at_origin) const {
    std::vector<T5Piece> pieces = {{std::move(normalized), at_origin}};
    for (const t5::PreTokenizerStep& step : config.pre_tokenizers) {
      std::vector<T5Piece> next;
      for (const T5Piece& piece : pieces) {
        std::vector<T5Piece> split =
            step.whitespace_split ? t5_whitespace_split(piece) : t5_metaspace(piece, step.metaspace);
        for (T5Piece& p : split) next.push_back(std::move(p));
      }
      pieces = std::move(next);
    }
    return pieces;
  }
};

T5Tokenizer::T5Tokenizer() : impl_(std::make_unique<Impl>()) {}
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;
T5Tokenizer::~T5Tokenizer() = default;

Result<T5Tokenizer> T5Tokenizer::load(const std::string& path, Pipeline pipeline) {
  ND_ASSIGN_OR_RETURN(std::string json, io::read_file(path));
  return from_json(json, path, pipeline);
}

Result<T5Tokenizer> T5Tokenizer::from_json(std::string_view json, const std::string& source,
                                           Pipeline pipeline) {
  nlohmann::json root = nlohmann::json::parse(json, nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    return Status::invalid_argument(source + ": not a JSON object (a tokenizer.json is expected)");
  }
  T5Tokenizer out;
  ND_ASSIGN_OR_RETURN(out.impl_->config,
                      t5::parse_tokenizer_config(root, source, pipeline == Pipeline::kTransformers));
  t5::TokenizerConfig& config = out.impl_->config;
  if (!config.charsmap_blob.empty()) {
    ND_ASSIGN_OR_RETURN(PrecompiledCharsmap charsmap,
                        PrecompiledCharsmap::parse(config.charsmap_blob, source));
    out.impl_->charsmap = std::move(charsmap);
  }
  ND_ASSIGN_OR_RETURN(UnigramModel model,
                      UnigramModel::create(std::move(config.vocab), config.unk_id, source));
  config.vocab.clear();
  out.impl_->model = std::move(model);
  out.end_id_ = config.end_id;
  if (out.end_id_ < 0 || static_cast<size_t>(out.end_id_) >= out.impl_->model->size()) {
    return Status::invalid_argument(source + ": post_processor end token id " + std::to_string(out.end_id_) +
                                    " is outside the vocabulary");
  }
  return out;
}

std::vector<int> T5Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const t5::AddedTokens& added = impl_->config.added;
  size_t segment_start = 0;
  auto flush = [&](size_t end) {
    if (end <= segment_start) return;
    std::string normalized = impl_->normalize(text.substr(segment_start, end - segment_start));
    for (const T5Piece& piece : impl_->pre_tokenize(std::move(normalized), segment_start == 0)) {
      impl_->model->encode(piece.text, ids);
    }
  };
  size_t pos = 0;
  while (pos < text.size()) {
    std::optional<std::pair<size_t, int>> match = added.longest_at(text, pos);
    if (!match) {
      ++pos;
      continue;
    }
    flush(pos);
    ids.push_back(match->second);
    pos += match->first;
    segment_start = pos;
  }
  flush(text.size());
  return ids;
}

std::vector<std::string> T5Tokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (T5Piece& piece : impl_->pre_tokenize(impl_->normalize(text), true))
    out.push_back(std::move(piece.text));
  return out;
}

int T5Tokenizer::unk_id() const { return impl_->model->unk_id(); }
size_t T5Tokenizer::vocab_size() const { return impl_->model->size(); }

std::string T5Tokenizer::token_text(int id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->model->size()) return "";
  return impl_->model->piece(id);
}

Result<std::string> T5Tokenizer::find_tokenizer_json(const std::string& explicit_path) {
  std::error_code ec;
  if (!explicit_path.empty()) {
    if (fs::is_regular_file(explicit_path, ec)) return explicit_path;
    return Status::not_found("T5 tokenizer " + explicit_path + " does not exist");
  }
  std::vector<fs::path> candidates;
  if (const char* comfy = std::getenv("COMFYUI_PATH"); comfy != nullptr && *comfy != '\0') {
    candidates.push_back(fs::path(comfy) / "comfy" / "text_encoders" / "t5_tokenizer" / "tokenizer.json");
  }
  const fs::path shipped = fs::path("models") / "t5_tokenizer" / "tokenizer.json";
  candidates.push_back(shipped);
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / shipped);
    candidates.push_back(exe.parent_path() / ".." / ".." / shipped);
  }
  candidates.push_back(fs::path(NETDIST_SOURCE_DIR) / shipped);
  std::string searched;
  for (const fs::path& candidate : candidates) {
    if (fs::is_regular_file(candidate, ec)) return fs::weakly_canonical(candidate, ec).string();
    searched += (searched.empty() ? "" : ", ") + candidate.string();
  }
  return Status::not_found("T5 tokenizer (tokenizer.json) not found; searched: " + searched);
}

}  // namespace netdist::text
