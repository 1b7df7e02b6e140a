// multipart/form-data parsing (RFC 7578) for /upload/image and /upload/mask.
// Thread-safety: pure function.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace netdist::server {

struct FormPart {
  std::string name;                     // Content-Disposition name
  std::optional<std::string> filename;  // present for file parts
  std::string content_type;
  std::string data;
};

// `content_type` is the request's Content-Type header (its boundary parameter is required). Errors name
// what is malformed (missing boundary, unterminated part, missing Content-Disposition).
Result<std::vector<FormPart>> parse_multipart(const std::string& content_type, const std::string& body);

// First part named `name`, or null.
const FormPart* find_part(const std::vector<FormPart>& parts, const std::string& name);

}  // namespace netdist::server
