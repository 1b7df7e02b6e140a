#include "engine/text/unicode.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/text/unicode_data.h"

namespace netdist::text::unicode {
namespace {

using unicode_data::CodeRange;

constexpr char32_t kReplacement = 0xFFFD;
constexpr char32_t kHangulFirst = 0xAC00;
constexpr char32_t kHangulLBase = 0x1100;
constexpr char32_t kHangulVBase = 0x1161;
constexpr char32_t kHangulTBase = 0x11A7;
constexpr int kHangulLCount = 19;
constexpr int kHangulVCount = 21;
constexpr int kHangulTCount = 28;
constexpr int kHangulNCount = kHangulVCount * kHangulTCount;
constexpr int kHangulSCount = kHangulLCount * kHangulNCount;

bool in_ranges(const CodeRange* table, size_t size, char32_t c) {
  const CodeRange* end = table + size;
  const CodeRange* it =
      std::upper_bound(table, end, static_cast<uint32_t>(c), [](uint32_t v, const CodeRange& r) { return v < r.first; });
  if (it == table) return false;
  --it;
  return c <= it->last;
}

char32_t lower_simple(char32_t c) {
  const auto* table = unicode_data::kLower;
  const auto* end = table + unicode_data::kLowerSize;
  const auto* it = std::upper_bound(table, end, static_cast<uint32_t>(c),
                                    [](uint32_t v, const unicode_data::LowerRun& r) { return v < r.first; });
  if (it == table) return c;
  --it;
  if (c > it->last || (c - it->first) % it->stride != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + it->delta);
}

struct NormalizationTables {
  std::unordered_map<char32_t, const unicode_data::Decomposition*> decomposition;
  std::unordered_map<uint64_t, char32_t> composition;

  NormalizationTables() {
    decomposition.reserve(unicode_data::kDecompositionSize);
    for (size_t i = 0; i < unicode_data::kDecompositionSize; ++i) {
      const auto& d = unicode_data::kDecomposition[i];
      decomposition[d.code_point] = &d;
      if (d.composes) composition[pair_key(d.first, d.second)] = d.code_point;
    }
  }

  static uint64_t pair_key(char32_t a, char32_t b) { return (static_cast<uint64_t>(a) << 21) | b; }
};

const NormalizationTables& normalization_tables() {
  static const NormalizationTables tables;
  return tables;
}

void decompose(char32_t c, const NormalizationTables& tables, std::u32string& out) {
  if (c >= kHangulFirst && c < kHangulFirst + kHangulSCount) {
    int s = static_cast<int>(c - kHangulFirst);
    out.push_back(kHangulLBase + s / kHangulNCount);
    out.push_back(kHangulVBase + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulTBase + s % kHangulTCount);
    return;
  }
  auto it = tables.decomposition.find(c);
  if (it == tables.decomposition.end()) {
    out.push_back(c);
    return;
  }
  decompose(it->second->first, tables, out);
  if (it->second->second != 0) decompose(it->second->second, tables, out);
}

char32_t compose(char32_t a, char32_t b, const NormalizationTables& tables) {
  if (a >= kHangulLBase && a < kHangulLBase + kHangulLCount && b >= kHangulVBase && b < kHangulVBase + kHangulVCount) {
    return kHangulFirst + ((a - kHangulLBase) * kHangulVCount + (b - kHangulVBase)) * kHangulTCount;
  }
  if (a >= kHangulFirst && a < kHangulFirst + kHangulSCount && (a - kHangulFirst) % kHangulTCount == 0 &&
      b > kHangulTBase && b < kHangulTBase + kHangulTCount) {
    return a + (b - kHangulTBase);
  }
  auto it = tables.composition.find(NormalizationTables::pair_key(a, b));
  return it == tables.composition.end() ? 0 : it->second;
}

}  // namespace

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int length = 0;
    char32_t c = 0;
    char32_t min = 0;
    if ((b0 & 0xE0) == 0xC0) {
      length = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      length = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      length = 4, c = b0 & 0x07, min = 0x10000;
    }
    bool valid = length > 0 && i + length <= text.size();
    for (int k = 1; valid && k < length; ++k) {
      auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0) != 0x80) valid = false;
      c = (c << 6) | (b & 0x3F);
    }
    if (valid && (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))) valid = false;
    if (!valid) {
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    out.push_back(c);
    i += length;
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(c, out);
  return out;
}

bool is_letter(char32_t c) { return in_ranges(unicode_data::kLetter, unicode_data::kLetterSize, c); }
bool is_number(char32_t c) { return in_ranges(unicode_data::kNumber, unicode_data::kNumberSize, c); }

bool is_white_space(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_python_space(char32_t c) { return in_ranges(unicode_data::kPythonSpace, unicode_data::kPythonSpaceSize, c); }

int combining_class(char32_t c) {
  const auto* table = unicode_data::kCombiningClass;
  const auto* end = table + unicode_data::kCombiningClassSize;
  const auto* it = std::upper_bound(table, end, static_cast<uint32_t>(c),
                                    [](uint32_t v, const unicode_data::CombiningClassRange& r) { return v < r.first; });
  if (it == table) return 0;
  --it;
  return c <= it->last ? it->combining_class : 0;
}

std::u32string to_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {
      out.push_back('i');
      out.push_back(0x307);
    } else {
      out.push_back(lower_simple(c));
    }
  }
  return out;
}

std::u32string to_nfc(std::u32string_view text) {
  bool ascii_like = std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x300; });
  if (ascii_like) return std::u32string(text);
  const NormalizationTables& tables = normalization_tables();

  std::u32string decomposed;
  decomposed.reserve(text.size() + 8);
  for (char32_t c : text) decompose(c, tables, decomposed);

  for (size_t i = 0; i < decomposed.size();) {
    if (combining_class(decomposed[i]) == 0) {
      ++i;
      continue;
    }
    size_t run_end = i;
    while (run_end < decomposed.size() && combining_class(decomposed[run_end]) != 0) ++run_end;
    std::stable_sort(decomposed.begin() + static_cast<std::ptrdiff_t>(i),
                     decomposed.begin() + static_cast<std::ptrdiff_t>(run_end),
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = run_end;
  }

  std::u32string out;
  out.reserve(decomposed.size());
  std::ptrdiff_t starter = -1;
  int last_class = 0;
  for (char32_t c : decomposed) {
    int cls = combining_class(c);
    if (starter >= 0) {
      bool adjacent = static_cast<std::ptrdiff_t>(out.size()) - 1 == starter;
      if (adjacent || (last_class != 0 && last_class < cls)) {
        char32_t composite = compose(out[static_cast<size_t>(starter)], c, tables);
        if (composite != 0) {
          out[static_cast<size_t>(starter)] = composite;
          continue;
        }
      }
    }
    out.push_back(c);
    if (cls == 0) starter = static_cast<std::ptrdiff_t>(out.size()) - 1;
    last_class = cls;
  }
  return out;
}

}  // namespace netdist::text::unicode
