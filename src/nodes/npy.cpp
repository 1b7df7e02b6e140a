#include "nodes/npy.h"

#include <cctype>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

namespace netdist::nodes {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;

// One value of the header dict: a quoted string, True/False, or a tuple of non-negative ints.
struct HeaderValue {
  enum class Kind { kString, kBool, kTuple } kind = Kind::kString;
  std::string text;
  bool flag = false;
  std::vector<int64_t> ints;
};

// The Python dict literal np.save writes: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
class HeaderParser {
 public:
  HeaderParser(std::string_view s, const std::string& what) : s_(s), what_(what) {}

  Result<std::map<std::string, HeaderValue>> parse() {
    std::map<std::string, HeaderValue> out;
    skip_space();
    if (!eat('{')) return error("does not start with '{'");
    while (true) {
      skip_space();
      if (eat('}')) break;
      ND_ASSIGN_OR_RETURN(std::string key, string_literal());
      skip_space();
      if (!eat(':')) return error("expected ':' after key '" + key + "'");
      skip_space();
      ND_ASSIGN_OR_RETURN(HeaderValue value, parse_value());
      if (out.count(key)) return error("repeats key '" + key + "'");
      out[key] = std::move(value);
      skip_space();
      if (eat(',')) continue;
      skip_space();
      if (eat('}')) break;
      return error("expected ',' or '}' after the value of '" + key + "'");
    }
    skip_space();
    if (pos_ != s_.size()) return error("has text after the closing '}'");
    return out;
  }

 private:
  Status error(const std::string& problem) const {
    return Status::corruption(what_ + ": .npy header " + problem + " (at byte " + std::to_string(pos_) +
                              " of the header)");
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool eat_word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  Result<std::string> string_literal() {
    if (pos_ >= s_.size() || (s_[pos_] != '\'' && s_[pos_] != '"')) return error("expected a quoted string");
    const char quote = s_[pos_++];
    const size_t end = s_.find(quote, pos_);
    if (end == std::string_view::npos) return error("has an unterminated string");
    std::string out(s_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return out;
  }
  Result<HeaderValue> parse_value() {
    HeaderValue v;
    if (pos_ < s_.size() && (s_[pos_] == '\'' || s_[pos_] == '"')) {
      ND_ASSIGN_OR_RETURN(v.text, string_literal());
      return v;
    }
    if (eat_word("True")) {
      v.kind = HeaderValue::Kind::kBool;
      v.flag = true;
      return v;
    }
    if (eat_word("False")) {
      v.kind = HeaderValue::Kind::kBool;
      return v;
    }
    if (!eat('(')) return error("has a value that is not a string, True/False or a tuple");
    v.kind = HeaderValue::Kind::kTuple;
    while (true) {
      skip_space();
      if (eat(')')) break;
      const size_t start = pos_;
      uint64_t n = 0;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
        const uint64_t digit = static_cast<uint64_t>(s_[pos_] - '0');
        if (n > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - digit) / 10)
          return error("has a dimension that does not fit in 64 bits");
        n = n * 10 + digit;
        ++pos_;
      }
      if (pos_ == start) return error("has a shape entry that is not a non-negative integer");
      while (pos_ < s_.size() && (s_[pos_] == 'L' || s_[pos_] == 'l')) ++pos_;  // Python 2 longs
      v.ints.push_back(static_cast<int64_t>(n));
      skip_space();
      if (eat(',')) continue;
      skip_space();
      if (eat(')')) break;
      return error("has a shape tuple without ',' or ')'");
    }
    return v;
  }

  std::string_view s_;
  const std::string& what_;
  size_t pos_ = 0;
};

uint32_t read_le(std::string_view b, size_t at, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return v;
}

std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<NpyArray> parse_npy(std::string_view bytes, const std::string& what) {
  if (bytes.size() < kMagicLen || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    return Status::corruption(what + ": not a .npy file (bad magic: the file must start with \\x93NUMPY)");
  if (bytes.size() < kMagicLen + 2) return Status::corruption(what + ": truncated .npy file (no version bytes)");
  const int major = static_cast<uint8_t>(bytes[6]), minor = static_cast<uint8_t>(bytes[7]);
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    return Status::unsupported(what + ": unsupported .npy format version " + std::to_string(major) + "." +
                               std::to_string(minor) + " (1.0, 2.0 and 3.0 are read)");
  const size_t len_size = major == 1 ? 2 : 4;
  const size_t prefix = kMagicLen + 2 + len_size;
  if (bytes.size() < prefix) return Status::corruption(what + ": truncated .npy file (no header length)");
  const size_t header_len = read_le(bytes, kMagicLen + 2, len_size);
  if (bytes.size() < prefix + header_len)
    return Status::corruption(what + ": truncated .npy header: it declares " + std::to_string(header_len) +
                              " bytes, the file has " + std::to_string(bytes.size() - prefix));
  ND_ASSIGN_OR_RETURN(auto dict, HeaderParser(bytes.substr(prefix, header_len), what).parse());
  for (const char* key : {"descr", "fortran_order", "shape"}) {
    if (!dict.count(key)) return Status::corruption(what + ": .npy header has no '" + std::string(key) + "' key");
  }
  const HeaderValue& descr = dict["descr"];
  const HeaderValue& fortran = dict["fortran_order"];
  const HeaderValue& shape = dict["shape"];
  if (descr.kind != HeaderValue::Kind::kString)
    return Status::unsupported(what + ": .npy 'descr' is not a simple dtype string (structured arrays are not supported)");
  if (fortran.kind != HeaderValue::Kind::kBool)
    return Status::corruption(what + ": .npy 'fortran_order' is not True or False");
  if (shape.kind != HeaderValue::Kind::kTuple) return Status::corruption(what + ": .npy 'shape' is not a tuple");

  NpyArray out;
  if (descr.text == "<f4" || descr.text == "=f4") {
    out.dtype = NpyDtype::kFloat32;
  } else if (descr.text == "<f2" || descr.text == "=f2") {
    out.dtype = NpyDtype::kFloat16;
  } else if (descr.text == ">f4" || descr.text == ">f2") {
    return Status::unsupported(what + ": .npy dtype '" + descr.text +
                               "' is big-endian; only little-endian float32 ('<f4') and float16 ('<f2') are supported");
  } else {
    return Status::unsupported(what + ": .npy dtype '" + descr.text +
                               "' is not supported; expected float32 ('<f4') or float16 ('<f2')");
  }
  if (fortran.flag)
    return Status::unsupported(what + ": .npy array is in Fortran order (fortran_order: True); only C order is "
                               "supported (save np.ascontiguousarray(x))");
  out.shape = shape.ints;
  uint64_t numel = 1;
  for (int64_t d : out.shape) {
    if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / static_cast<uint64_t>(d))
      return Status::corruption(what + ": .npy shape " + shape_repr(out.shape) + " is too large");
    numel *= static_cast<uint64_t>(d);
  }
  const uint64_t want = numel * out.element_size();
  const uint64_t have = bytes.size() - prefix - header_len;
  if (have < want)
    return Status::corruption(what + ": truncated .npy data: shape " + shape_repr(out.shape) + " needs " +
                              std::to_string(want) + " bytes, the file has " + std::to_string(have));
  if (have > want)
    return Status::corruption(what + ": .npy file has " + std::to_string(have - want) +
                              " bytes after the data of shape " + shape_repr(out.shape));
  out.data.assign(bytes.data() + prefix + header_len, want);
  return out;
}

Result<std::string> serialize_npy(const NpyArray& array) {
  for (int64_t d : array.shape) {
    if (d < 0) return Status::invalid_argument("npy: negative dimension in shape " + shape_repr(array.shape));
  }
  if (array.data.size() != static_cast<uint64_t>(array.numel()) * array.element_size())
    return Status::invalid_argument("npy: " + std::to_string(array.data.size()) + " data bytes do not match shape " +
                                    shape_repr(array.shape));
  std::string header = std::string("{'descr': '") + (array.dtype == NpyDtype::kFloat16 ? "<f2" : "<f4") +
                       "', 'fortran_order': False, 'shape': " + shape_repr(array.shape) + ", }";
  const size_t hlen = header.size() + 1;
  const size_t pad = kAlign - ((kMagicLen + 2 + 2 + hlen) % kAlign);
  const size_t total = hlen + pad;
  if (total > 0xffff) return Status::invalid_argument("npy: header of shape " + shape_repr(array.shape) + " is too long");
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(total & 0xff);
  out += static_cast<char>((total >> 8) & 0xff);
  out += header;
  out.append(pad, ' ');
  out += '\n';
  out += array.data;
  return out;
}

}  // namespace netdist::nodes
