#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>

namespace netdist::server {

namespace {

Response unauthorized(const std::string& type, const std::string& message) {
  Response r = error_response(401, type, message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"netdist\"");
  return r;
}

bool starts_with_bearer(const std::string& value) {
  static const char kScheme[] = "bearer ";
  if (value.size() < sizeof(kScheme) - 1) return false;
  for (size_t i = 0; i + 1 < sizeof(kScheme); ++i)
    if (std::tolower(static_cast<unsigned char>(value[i])) != kScheme[i]) return false;
  return true;
}

std::string trim(const std::string& s) {
  size_t begin = 0, end = s.size();
  while (begin < end && (s[begin] == ' ' || s[begin] == '\t')) ++begin;
  while (end > begin && (s[end - 1] == ' ' || s[end - 1] == '\t')) --end;
  return s.substr(begin, end - begin);
}

}  // namespace

bool token_equals(const std::string& given, const std::string& expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

std::optional<Response> check_auth(const std::string& token, const Request& request) {
  if (token.empty() || request.method == "OPTIONS") return std::nullopt;
  const std::optional<std::string> header = request.header("authorization");
  const std::optional<std::string> query = request.query_value("token");
  if (!header && !query) {
    return unauthorized("missing_token",
                        "authentication required: send the header 'Authorization: Bearer <token>' "
                        "(or the query parameter ?token=<token>) with the server's --auth-token");
  }
  bool ok = false;
  std::string problem;
  if (header) {
    if (starts_with_bearer(*header)) {
      ok = token_equals(trim(header->substr(7)), token);
      if (!ok) problem = "wrong token in the Authorization header";
    } else {
      problem = "the Authorization header is not 'Bearer <token>'";
    }
  }
  if (!ok && query) {
    ok = token_equals(*query, token);
    if (!ok && problem.empty()) problem = "wrong token in the query parameter 'token'";
  }
  if (ok) return std::nullopt;
  return unauthorized("wrong_token", "authentication failed: " + problem);
}

}  // namespace netdist::server
