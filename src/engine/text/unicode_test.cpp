#include "engine/text/unicode.h"

#include <gtest/gtest.h>

namespace netdist::text::unicode {
namespace {

TEST(ClipUnicode, Utf8RoundTripAndInvalidBytes) {
  const std::string text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x90\xB1";
  EXPECT_EQ(decode_utf8(text), (std::u32string{U'a', 0xE9, 0x65E5, 0x1F431}));
  EXPECT_EQ(encode_utf8(decode_utf8(text)), text);
  EXPECT_EQ(decode_utf8(std::string("\xFF" "a\xE6\x97", 4)), (std::u32string{0xFFFD, U'a', 0xFFFD, 0xFFFD}));
  EXPECT_EQ(decode_utf8("\xC0\xAF"), (std::u32string{0xFFFD, 0xFFFD}));  // overlong
  EXPECT_EQ(decode_utf8("\xED\xA0\x80"), (std::u32string{0xFFFD, 0xFFFD, 0xFFFD}));  // surrogate
}

TEST(ClipUnicode, CharacterClasses) {
  EXPECT_TRUE(is_letter(U'a'));
  EXPECT_TRUE(is_letter(0x65E5));   // 日
  EXPECT_TRUE(is_letter(0xE9));     // é
  EXPECT_FALSE(is_letter(0x301));   // combining acute
  EXPECT_FALSE(is_letter(U'1'));
  EXPECT_TRUE(is_number(U'7'));
  EXPECT_TRUE(is_number(0xBD));     // ½
  EXPECT_TRUE(is_number(0x2165));   // Ⅵ
  EXPECT_FALSE(is_number(U'x'));
  EXPECT_TRUE(is_white_space(0x3000));
  EXPECT_FALSE(is_white_space(0x200B));
  EXPECT_FALSE(is_white_space(0x1C));
  EXPECT_TRUE(is_python_space(0x1C));
  EXPECT_EQ(combining_class(0x301), 230);
  EXPECT_EQ(combining_class(U'a'), 0);
}

TEST(ClipUnicode, LowercaseIsPerCharacter) {
  EXPECT_EQ(to_lower(U"ABC xyz \u00C9"), U"abc xyz \u00E9");
  EXPECT_EQ(to_lower(U"\u03A3\u0391\u03A3"), U"\u03C3\u03B1\u03C3");  // no Final_Sigma
  EXPECT_EQ(to_lower(U"\u0130"), U"i\u0307");
  EXPECT_EQ(to_lower(U"\u01C5\u2160\u24B6"), U"\u01C6\u2170\u24D0");
}

TEST(ClipUnicode, Nfc) {
  EXPECT_EQ(to_nfc(U"cafe\u0301"), U"caf\u00E9");
  EXPECT_EQ(to_nfc(U"a\u0302\u0323"), U"\u1EAD");
  EXPECT_EQ(to_nfc(U"a\u0323\u0302"), U"\u1EAD");
  EXPECT_EQ(to_nfc(U"A\u030A\u0301"), U"\u01FA");
  EXPECT_EQ(to_nfc(U"\u1100\u1161\u11A8"), U"\uAC01");
  EXPECT_EQ(to_nfc(U"\u212B"), U"\u00C5");
  EXPECT_EQ(to_nfc(U"\uF900"), U"\u8C48");
  EXPECT_EQ(to_nfc(U"plain ascii"), U"plain ascii");
}

}  // namespace
}  // namespace netdist::text::unicode
