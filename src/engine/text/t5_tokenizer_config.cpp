#include "engine/text/t5_tokenizer_config.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/text/precompiled_charsmap.h"
#include "engine/text/unicode.h"

namespace netdist::text::t5 {
namespace {

using nlohmann::json;

Status t5_bad(const std::string& source, const std::string& field, const std::string& what) {
  return Status::invalid_argument(source + ": " + field + " " + what);
}

bool t5_bool(const json& node, const char* key, bool fallback) {
  auto it = node.find(key);
  return it != node.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

Result<std::vector<std::pair<std::string, double>>> t5_parse_vocab(const json& model,
                                                                   const std::string& source) {
  auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_array())
    return t5_bad(source, "model.vocab", "is not an array");
  if (vocab_it->empty()) return t5_bad(source, "model.vocab", "is empty");
  std::vector<std::pair<std::string, double>> vocab;
  vocab.reserve(vocab_it->size());
  for (size_t i = 0; i < vocab_it->size(); ++i) {
    const json& entry = (*vocab_it)[i];
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
      return t5_bad(source, "model.vocab[" + std::to_string(i) + "]", "is not a [piece, score] pair");
    }
    vocab.emplace_back(entry[0].get<std::string>(), entry[1].get<double>());
  }
  return vocab;
}

Result<NormalizerStep> t5_parse_normalizer(const json& node, const std::string& source,
                                           std::string& charsmap) {
  const std::string type = node.value("type", "");
  NormalizerStep step;
  if (type == "Precompiled") {
    auto it = node.find("precompiled_charsmap");
    if (it == node.end() || !it->is_string()) {
      return t5_bad(source, "normalizer Precompiled", "has no precompiled_charsmap string");
    }
    std::optional<std::string> blob = decode_base64(it->get<std::string>());
    if (!blob) return t5_bad(source, "normalizer precompiled_charsmap", "is not base64");
    charsmap = std::move(*blob);
    step.kind = NormalizerStep::Kind::kPrecompiled;
    return step;
  }
  if (type == "Strip") {
    step.kind = NormalizerStep::Kind::kStrip;
    step.strip_left = t5_bool(node, "strip_left", true);
    step.strip_right = t5_bool(node, "strip_right", true);
    return step;
  }
  if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    const json pattern = node.value("pattern", json::object());
    step.content = node.value("content", "");
    if (pattern.contains("String") && pattern["String"].is_string()) {
      step.pattern = pattern["String"].get<std::string>();
      return step;
    }
    // Only "c{n,}" regexes: a run of at least n of one ASCII character.
    const std::string regex = pattern.value("Regex", "");
    const size_t brace = regex.find('{');
    if (brace == 1 && regex.size() > 4 && regex.ends_with(",}") &&
        std::string_view("\\.^$|?*+()[]{}").find(regex[0]) == std::string_view::npos) {
      const std::string digits = regex.substr(2, regex.size() - 4);
      if (!digits.empty() &&
          std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        step.pattern = regex.substr(0, 1);
        step.min_repeat = static_cast<size_t>(std::stoul(digits));
        if (step.min_repeat > 0) return step;
      }
    }
    return Status::unsupported(source + ": normalizer Replace pattern " + pattern.dump() +
                               " is not supported (only literal strings and \"c{n,}\" regexes)");
  }
  return Status::unsupported(source + ": normalizer type \"" + type +
                             "\" is not supported by the T5 tokenizer");
}

Status t5_parse_normalizers(const json& root, const std::string& source, bool transformers,
                            TokenizerConfig& config) {
  auto it = root.find("normalizer");
  if (it == root.end() || it->is_null()) return Status::ok();
  std::vector<json> nodes;
  if (it->value("type", "") == "Sequence") {
    const json list = it->value("normalizers", json::array());
    nodes.assign(list.begin(), list.end());
  } else {
    nodes.push_back(*it);
  }
  for (const json& node : nodes) {
    if (!node.is_object()) return t5_bad(source, "normalizer", "entry is not an object");
    if (transformers && node.value("type", "") != "Precompiled") continue;
    ND_ASSIGN_OR_RETURN(NormalizerStep step, t5_parse_normalizer(node, source, config.charsmap_blob));
    config.normalizers.push_back(std::move(step));
  }
  return Status::ok();
}

Result<PreTokenizerStep> t5_parse_pre_tokenizer(const json& node, const std::string& source) {
  const std::string type = node.value("type", "");
  PreTokenizerStep step;
  if (type == "WhitespaceSplit") {
    step.whitespace_split = true;
    return step;
  }
  if (type != "Metaspace") {
    return Status::unsupported(source + ": pre_tokenizer type \"" + type +
                               "\" is not supported by the T5 tokenizer");
  }
  step.metaspace.replacement = node.value("replacement", std::string("\xE2\x96\x81"));
  if (unicode::decode_utf8(step.metaspace.replacement).size() != 1) {
    return t5_bad(source, "pre_tokenizer Metaspace replacement", "is not one character");
  }
  step.metaspace.split = t5_bool(node, "split", true);
  const std::string scheme =
      node.value("prepend_scheme", t5_bool(node, "add_prefix_space", true) ? "always" : "never");
  if (scheme == "always") {
    step.metaspace.prepend = Prepend::kAlways;
  } else if (scheme == "first") {
    step.metaspace.prepend = Prepend::kFirst;
  } else if (scheme == "never") {
    step.metaspace.prepend = Prepend::kNever;
  } else {
    return t5_bad(source, "pre_tokenizer Metaspace prepend_scheme", "\"" + scheme + "\" is unknown");
  }
  return step;
}

Status t5_parse_pre_tokenizers(const json& root, const std::string& source, TokenizerConfig& config) {
  auto it = root.find("pre_tokenizer");
  if (it == root.end() || it->is_null()) return Status::ok();
  std::vector<json> nodes;
  if (it->value("type", "") == "Sequence") {
    const json list = it->value("pretokenizers", json::array());
    nodes.assign(list.begin(), list.end());
  } else {
    nodes.push_back(*it);
  }
  for (const json& node : nodes) {
    if (!node.is_object()) return t5_bad(source, "pre_tokenizer", "entry is not an object");
    ND_ASSIGN_OR_RETURN(PreTokenizerStep step, t5_parse_pre_tokenizer(node, source));
    config.pre_tokenizers.push_back(std::move(step));
  }
  return Status::ok();
}

Status t5_parse_added(const json& root, const std::string& source, size_t vocab_size,
                      TokenizerConfig& config) {
  const json added = root.value("added_tokens", json::array());
  if (!added.is_array()) return t5_bad(source, "added_tokens", "is not an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const json& token = added[i];
    const std::string field = "added_tokens[" + std::to_string(i) + "]";
    if (!token.is_object() || !token.contains("id") || !token["id"].is_number_integer() ||
        !token.contains("content") || !token["content"].is_string() ||
        token["content"].get<std::string>().empty()) {
      return t5_bad(source, field, "needs an integer id and a non-empty content string");
    }
    const int64_t id = token["id"].get<int64_t>();
    if (id < 0 || static_cast<size_t>(id) >= vocab_size) {
      return t5_bad(source, field, "id " + std::to_string(id) + " is outside the vocabulary");
    }
    if (t5_bool(token, "normalized", false) || t5_bool(token, "lstrip", false) ||
        t5_bool(token, "rstrip", false) || t5_bool(token, "single_word", false)) {
      return Status::unsupported(
          source + ": " + field +
          " is normalized, lstrip, rstrip or single_word: not supported by the T5 tokenizer");
    }
    config.added.add(token["content"].get<std::string>(), static_cast<int>(id));
  }
  return Status::ok();
}

Result<int> t5_parse_end_id(const json& root, const std::string& source) {
  auto it = root.find("post_processor");
  if (it == root.end() || !it->is_object() || it->value("type", "") != "TemplateProcessing") {
    return t5_bad(source, "post_processor", "is not a TemplateProcessing (the end token comes from it)");
  }
  const json single = it->value("single", json::array());
  if (!single.is_array() || single.empty() || !single.back().contains("SpecialToken")) {
    return t5_bad(source, "post_processor.single", "does not end with a SpecialToken");
  }
  const std::string name = single.back()["SpecialToken"].value("id", "");
  const json special = it->value("special_tokens", json::object());
  if (!special.contains(name) || !special[name].contains("ids") || !special[name]["ids"].is_array() ||
      special[name]["ids"].size() != 1 || !special[name]["ids"][0].is_number_integer()) {
    return t5_bad(source, "post_processor.special_tokens", "has no single id for \"" + name + "\"");
  }
  return special[name]["ids"][0].get<int>();
}

}  // namespace

void AddedTokens::add(std::string content, int id) {
  for (auto& token : tokens_) {
    if (token.first == content) {
      token.second = id;
      return;
    }
  }
  tokens_.emplace_back(std::move(content), id);
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

std::optional<std::pair<size_t, int>> AddedTokens::longest_at(std::string_view text, size_t pos) const {
  const std::string_view rest = text.substr(pos);
  for (const auto& [content, id] : tokens_) {
    if (rest.starts_with(content)) return std::make_pair(content.size(), id);
  }
  return std::nullopt;
}

Result<TokenizerConfig> parse_tokenizer_config(const json& root, const std::string& source,
                                               bool transformers_pipeline) {
  auto model = root.find("model");
  if (model == root.end() || !model->is_object()) return t5_bad(source, "model", "is missing");
  if (model->value("type", "") != "Unigram") {
    return Status::unsupported(source + ": model.type \"" + model->value("type", "") +
                               "\" is not Unigram (the T5 tokenizer reads SentencePiece-unigram files)");
  }
  if (t5_bool(*model, "byte_fallback", false)) {
    return Status::unsupported(source + ": model.byte_fallback is true: not supported by the T5 tokenizer");
  }
  TokenizerConfig config;
  ND_ASSIGN_OR_RETURN(config.vocab, t5_parse_vocab(*model, source));
  auto unk = model->find("unk_id");
  if (unk == model->end() || !unk->is_number_integer())
    return t5_bad(source, "model.unk_id", "is not an integer");
  config.unk_id = unk->get<int>();
  ND_RETURN_IF_ERROR(t5_parse_normalizers(root, source, transformers_pipeline, config));
  if (transformers_pipeline) {
    config.pre_tokenizers = {PreTokenizerStep{true, {}}, PreTokenizerStep{false, {}}};
  } else {
    ND_RETURN_IF_ERROR(t5_parse_pre_tokenizers(root, source, config));
  }
  ND_RETURN_IF_ERROR(t5_parse_added(root, source, config.vocab.size(), config));
  ND_ASSIGN_OR_RETURN(config.end_id, t5_parse_end_id(root, source));
  return config;
}

std::string strip(std::string_view text, bool left, bool right) {
  std::u32string chars = unicode::decode_utf8(text);
  size_t first = 0;
  size_t last = chars.size();
  if (left) {
    while (first < last && unicode::is_white_space(chars[first])) ++first;
  }
  if (right) {
    while (last > first && unicode::is_white_space(chars[last - 1])) --last;
  }
  return unicode::encode_utf8(std::u32string_view(chars).substr(first, last - first));
}

std::string replace(std::string_view text, const NormalizerStep& step) {
  std::string out;
  if (step.pattern.empty()) return std::string(text);
  size_t i = 0;
  while (i < text.size()) {
    if (step.min_repeat == 0) {
      if (text.compare(i, step.pattern.size(), step.pattern) == 0) {
        out += step.content;
        i += step.pattern.size();
        continue;
      }
    } else if (text[i] == step.pattern[0]) {
      size_t run = i;
      while (run < text.size() && text[run] == step.pattern[0]) ++run;
      if (run - i >= step.min_repeat) {
        out += step.content;
      } else {
        out.append(text.substr(i, run - i));
      }
      i = run;
      continue;
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

}  // namespace netdist::text::t5
