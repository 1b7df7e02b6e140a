// Generated Unicode tables behind engine/text/unicode.h (see tools/text/gen_unicode_data.py).
// Every table is sorted by code point and its ranges do not overlap.
#pragma once

#include <cstddef>
#include <cstdint>

namespace netdist::text::unicode_data {

struct CodeRange {
  uint32_t first;
  uint32_t last;
};

// Code points first..last whose lowercase is cp + delta; stride 2 covers alternating upper/lower blocks.
struct LowerRun {
  uint32_t first;
  uint32_t last;
  int32_t delta;
  uint32_t stride;
};

struct CombiningClassRange {
  uint32_t first;
  uint32_t last;
  uint8_t combining_class;
};

// One canonical decomposition step: code_point -> first [second]. second is 0 for singletons.
// composes: the pair is a primary composite (NFC recomposes it).
struct Decomposition {
  uint32_t code_point;
  uint32_t first;
  uint32_t second;
  uint8_t composes;
};

extern const CodeRange kLetter[];
extern const size_t kLetterSize;
extern const CodeRange kNumber[];
extern const size_t kNumberSize;
extern const CodeRange kPythonSpace[];
extern const size_t kPythonSpaceSize;
extern const LowerRun kLower[];
extern const size_t kLowerSize;
extern const CombiningClassRange kCombiningClass[];
extern const size_t kCombiningClassSize;
extern const Decomposition kDecomposition[];
extern const size_t kDecompositionSize;

}  // namespace netdist::text::unicode_data
