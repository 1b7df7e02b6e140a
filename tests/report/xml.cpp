#include "tests/report/xml.h"

#include <cstdint>

namespace netdist::test_report {
namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<XmlElement> document() {
    ND_RETURN_IF_ERROR(skip_misc());
    if (!at("<")) return error("an element");
    XmlElement root;
    ND_RETURN_IF_ERROR(element(root, 0));
    ND_RETURN_IF_ERROR(skip_misc());
    if (pos_ != s_.size()) return error("the end of the document");
    return root;
  }

 private:
  bool at(std::string_view token) const { return s_.substr(pos_, token.size()) == token; }

  Status error(const std::string& expected) const {
    return Status::corruption("XML: expected " + expected + " at byte " + std::to_string(pos_));
  }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  // Skips from the current position past `end`.
  Status skip_past(std::string_view end) {
    const size_t found = s_.find(end, pos_);
    if (found == std::string_view::npos) return error(std::string("'").append(end).append("'"));
    pos_ = found + end.size();
    return Status::ok();
  }

  // Whitespace, comments, processing instructions and DOCTYPE between top-level items.
  Status skip_misc() {
    for (;;) {
      skip_space();
      if (at("<?")) {
        ND_RETURN_IF_ERROR(skip_past("?>"));
      } else if (at("<!--")) {
        ND_RETURN_IF_ERROR(skip_past("-->"));
      } else if (at("<!DOCTYPE")) {
        ND_RETURN_IF_ERROR(skip_past(">"));
      } else {
        return Status::ok();
      }
    }
  }

  Status decode(std::string_view raw, std::string& out) const {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '&') {
        out += raw[i];
        continue;
      }
      const size_t semi = raw.find(';', i);
      if (semi == std::string_view::npos) {
        return Status::corruption(
            std::string("XML: '&' without ';' near byte ").append(std::to_string(pos_)));
      }
      const std::string_view name = raw.substr(i + 1, semi - i - 1);
      if (name == "lt") {
        out += '<';
      } else if (name == "gt") {
        out += '>';
      } else if (name == "amp") {
        out += '&';
      } else if (name == "quot") {
        out += '"';
      } else if (name == "apos") {
        out += '\'';
      } else if (name.size() > 1 && name[0] == '#') {
        const bool hex = name[1] == 'x' || name[1] == 'X';
        const std::string digits(name.substr(hex ? 2 : 1));
        if (digits.empty() ||
            digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos) {
          return Status::corruption(std::string("XML: bad character reference '&").append(name).append(";'"));
        }
        append_utf8(out, static_cast<uint32_t>(std::stoul(digits, nullptr, hex ? 16 : 10)));
      } else {
        return Status::corruption(std::string("XML: unknown entity '&").append(name).append(";'"));
      }
      i = semi;
    }
    return Status::ok();
  }

  Status name(std::string& out) {
    const size_t begin = pos_;
    while (pos_ < s_.size() && s_[pos_] != ' ' && s_[pos_] != '\t' && s_[pos_] != '\n' && s_[pos_] != '\r' &&
           s_[pos_] != '/' && s_[pos_] != '>' && s_[pos_] != '=') {
      ++pos_;
    }
    if (pos_ == begin) return error("a name");
    out = std::string(s_.substr(begin, pos_ - begin));
    return Status::ok();
  }

  // At '<' of a start tag: reads the element and everything up to its end tag.
  Status element(XmlElement& e, int depth) {
    if (depth > 64) return error("nesting under 64 levels");
    ++pos_;
    ND_RETURN_IF_ERROR(name(e.name));
    for (;;) {
      skip_space();
      if (at("/>")) {
        pos_ += 2;
        return Status::ok();
      }
      if (at(">")) {
        ++pos_;
        break;
      }
      std::string key;
      ND_RETURN_IF_ERROR(name(key));
      skip_space();
      if (!at("=")) return error("'=' after attribute " + key);
      ++pos_;
      skip_space();
      if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\''))
        return error("a quoted value for " + key);
      const char quote = s_[pos_++];
      const size_t end = s_.find(quote, pos_);
      if (end == std::string_view::npos) return error("the closing quote of " + key);
      std::string value;
      ND_RETURN_IF_ERROR(decode(s_.substr(pos_, end - pos_), value));
      e.attributes[key] = std::move(value);
      pos_ = end + 1;
    }
    for (;;) {
      if (pos_ >= s_.size()) return error("</" + e.name + ">");
      if (at("</")) {
        pos_ += 2;
        std::string closing;
        ND_RETURN_IF_ERROR(name(closing));
        if (closing != e.name) return error("</" + e.name + "> (found </" + closing + ">)");
        skip_space();
        if (!at(">")) return error("'>'");
        ++pos_;
        return Status::ok();
      }
      if (at("<![CDATA[")) {
        pos_ += 9;
        const size_t end = s_.find("]]>", pos_);
        if (end == std::string_view::npos) return error("']]>'");
        e.text += s_.substr(pos_, end - pos_);
        pos_ = end + 3;
      } else if (at("<!--")) {
        ND_RETURN_IF_ERROR(skip_past("-->"));
      } else if (at("<?")) {
        ND_RETURN_IF_ERROR(skip_past("?>"));
      } else if (at("<")) {
        e.children.emplace_back();
        ND_RETURN_IF_ERROR(element(e.children.back(), depth + 1));
      } else {
        size_t end = s_.find('<', pos_);
        if (end == std::string_view::npos) end = s_.size();
        ND_RETURN_IF_ERROR(decode(s_.substr(pos_, end - pos_), e.text));
        pos_ = end;
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::string XmlElement::attribute(const std::string& key) const {
  auto it = attributes.find(key);
  return it == attributes.end() ? std::string() : it->second;
}

const XmlElement* XmlElement::child(const std::string& child_name) const {
  for (const XmlElement& c : children) {
    if (c.name == child_name) return &c;
  }
  return nullptr;
}

Result<XmlElement> parse_xml(std::string_view text) { return Parser(text).document(); }

}  // namespace netdist::test_report
