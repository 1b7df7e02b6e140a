// libFuzzer target for the T5 tokenizer. The first byte picks what the rest is:
//   0: text for the shipped tokenizer (both pipelines): every id is in the vocabulary, encoding is
//   repeatable; 1: a whole tokenizer.json: either a Status naming "fuzz" or a tokenizer whose ids stay in its
//   vocabulary; 2: a precompiled_charsmap blob: parsing fails cleanly or normalizing any text stays in
//   bounds.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "engine/text/precompiled_charsmap.h"
#include "engine/text/t5_tokenizer.h"
#include "netdist/source_dir.h"

namespace {

void t5_fuzz_check(bool ok) {
  if (!ok) std::abort();
}

void t5_fuzz_ids_in_range(const netdist::text::T5Tokenizer& tokenizer, std::string_view text) {
  const std::vector<int> ids = tokenizer.encode(text);
  for (int id : ids) t5_fuzz_check(id >= 0 && static_cast<size_t>(id) < tokenizer.vocab_size());
  t5_fuzz_check(tokenizer.encode(text) == ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using netdist::text::T5Tokenizer;
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      static const std::string path =
          (std::filesystem::path(NETDIST_SOURCE_DIR) / "models" / "t5_tokenizer" / "tokenizer.json").string();
      static const T5Tokenizer transformers = T5Tokenizer::load(path).value();
      static const T5Tokenizer file = T5Tokenizer::load(path, T5Tokenizer::Pipeline::kTokenizerJson).value();
      t5_fuzz_ids_in_range(transformers, rest);
      t5_fuzz_ids_in_range(file, rest);
      break;
    }
    case 1: {
      for (auto pipeline : {T5Tokenizer::Pipeline::kTransformers, T5Tokenizer::Pipeline::kTokenizerJson}) {
        auto tokenizer = T5Tokenizer::from_json(rest, "fuzz", pipeline);
        if (!tokenizer.is_ok()) {
          t5_fuzz_check(tokenizer.status().message().rfind("fuzz", 0) == 0);
          continue;
        }
        t5_fuzz_ids_in_range(*tokenizer, "a photo of a cat </s> \xEF\xBC\xA1\xCC\x81 \xE6\x97\xA5");
      }
      break;
    }
    default: {
      auto charsmap = netdist::text::PrecompiledCharsmap::parse(rest, "fuzz");
      if (!charsmap.is_ok()) break;
      (void)charsmap->normalize(rest);
      (void)charsmap->normalize("a\xCC\x81 \xEF\xBC\xA1 \xE2\x80\xA6");
      break;
    }
  }
  return 0;
}
