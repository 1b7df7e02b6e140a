#include "server/http_types.h"

#include "core/py_json.h"

namespace netdist::server {

std::optional<std::string> Request::query_value(const std::string& name) const {
  for (const auto& [k, v] : query)
    if (k == name) return v;
  return std::nullopt;
}

std::optional<std::string> Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

Response json_response(const nlohmann::ordered_json& value, int status) {
  Response r;
  r.status = status;
  r.content_type = "application/json; charset=utf-8";
  r.body = python_json_dumps(value);
  return r;
}

Response empty_response(int status) {
  Response r;
  r.status = status;
  return r;
}

Response error_response(int status, const std::string& type, const std::string& message, const std::string& details) {
  nlohmann::ordered_json body = {
      {"error", {{"type", type}, {"message", message}, {"details", details.empty() ? message : details},
                 {"extra_info", nlohmann::ordered_json::object()}}},
      {"node_errors", nlohmann::ordered_json::object()}};
  return json_response(body, status);
}

Result<nlohmann::ordered_json> parse_json_body(const std::string& body) {
  try {
    return nlohmann::ordered_json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    return Status::invalid_argument(std::string("request body is not valid JSON: ") + e.what());
  }
}

std::string url_decode(const std::string& text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(const std::string& query) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string part = query.substr(start, end - start);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      if (eq == std::string::npos) {
        out.emplace_back(url_decode(part, true), "");
      } else {
        out.emplace_back(url_decode(part.substr(0, eq), true), url_decode(part.substr(eq + 1), true));
      }
    }
    start = end + 1;
  }
  return out;
}

}  // namespace netdist::server
