#include "server/multipart.h"

#include <algorithm>
#include <cctype>

namespace netdist::server {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Value of `key` in a header value like `form-data; name="image"; filename="a.png"`.
std::optional<std::string> header_param(const std::string& value, const std::string& key) {
  size_t i = 0;
  while (i < value.size()) {
    size_t semi = value.find(';', i);
    // Quoted values may contain ';'.
    const size_t eq = value.find('=', i);
    if (eq != std::string::npos && (semi == std::string::npos || eq < semi)) {
      const std::string k = lower(trim(value.substr(i, eq - i)));
      size_t v = eq + 1;
      while (v < value.size() && value[v] == ' ') ++v;
      std::string val;
      if (v < value.size() && value[v] == '"') {
        size_t j = v + 1;
        while (j < value.size() && value[j] != '"') {
          if (value[j] == '\\' && j + 1 < value.size()) ++j;
          val += value[j++];
        }
        semi = value.find(';', j);
      } else {
        val = trim(value.substr(v, semi == std::string::npos ? std::string::npos : semi - v));
      }
      if (k == key) return val;
    }
    if (semi == std::string::npos) break;
    i = semi + 1;
  }
  return std::nullopt;
}

}  // namespace

Result<std::vector<FormPart>> parse_multipart(const std::string& content_type, const std::string& body) {
  if (lower(content_type).rfind("multipart/form-data", 0) != 0)
    return Status::invalid_argument("expected Content-Type multipart/form-data, got '" + content_type + "'");
  const auto boundary = header_param(content_type, "boundary");
  if (!boundary || boundary->empty()) return Status::invalid_argument("multipart/form-data without a boundary");
  const std::string delim = "--" + *boundary;
  std::vector<FormPart> parts;
  size_t pos = body.find(delim);
  if (pos == std::string::npos) return Status::invalid_argument("multipart body does not contain its boundary");
  pos += delim.size();
  for (;;) {
    if (body.compare(pos, 2, "--") == 0) return parts;
    if (body.compare(pos, 2, "\r\n") != 0) return Status::invalid_argument("multipart boundary not followed by CRLF");
    pos += 2;
    const size_t header_end = body.find("\r\n\r\n", pos);
    if (header_end == std::string::npos) return Status::invalid_argument("multipart part has unterminated headers");
    FormPart part;
    bool has_disposition = false;
    size_t line_start = pos;
    while (line_start < header_end) {
      size_t line_end = body.find("\r\n", line_start);
      if (line_end == std::string::npos || line_end > header_end) line_end = header_end;
      const std::string line = body.substr(line_start, line_end - line_start);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        const std::string name = lower(trim(line.substr(0, colon)));
        const std::string value = trim(line.substr(colon + 1));
        if (name == "content-disposition") {
          has_disposition = true;
          part.name = header_param(value, "name").value_or("");
          part.filename = header_param(value, "filename");
        } else if (name == "content-type") {
          part.content_type = value;
        }
      }
      line_start = line_end + 2;
    }
    if (!has_disposition) return Status::invalid_argument("multipart part without Content-Disposition");
    const size_t data_start = header_end + 4;
    const size_t next = body.find("\r\n" + delim, data_start);
    if (next == std::string::npos)
      return Status::invalid_argument("multipart part '" + part.name + "' is not terminated by its boundary");
    part.data = body.substr(data_start, next - data_start);
    parts.push_back(std::move(part));
    pos = next + 2 + delim.size();
  }
}

const FormPart* find_part(const std::vector<FormPart>& parts, const std::string& name) {
  for (const auto& p : parts)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace netdist::server
