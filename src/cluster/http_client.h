// A small blocking HTTP/1.1 client (Boost.Beast) for coordinator ↔ worker calls and the cluster tests.
// http:// and https:// URLs. For https the peer's certificate chain must lead to a trusted CA (the
// TlsClientContext's CA file, or the system's default verify paths) and name the URL's host (a DNS name
// or IP address subjectAltName; the host is also sent as SNI). There is no way to skip verification.
// One connection per call; every call gives up after `timeout` (connect, write and read together), or as
// soon as its `cancel` flag is set (checked every 50 ms; for long polls that a shutdown must not wait for).
// Thread-safety: reentrant; calls on distinct threads are independent.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace netdist::cluster {

struct HttpUrl {
  bool tls = false;  // https://
  std::string host;
  std::string port = "80";  // "443" for https:// without a port
  std::string base_path;    // without a trailing '/', e.g. "" or "/proxy"
};

// "http[s]://host[:port][/path]" → parts; invalid_argument naming the URL otherwise.
Result<HttpUrl> parse_http_url(const std::string& url);

// Which CAs an https:// call trusts (--tls-ca). Built once and shared by every call.
// Thread-safety: immutable after create; share it freely.
class TlsClientContext {
 public:
  // `ca_file`: PEM file of trusted CA certificates; empty = the system's default verify paths.
  // invalid_argument naming the file when it cannot be read or holds no certificate.
  static Result<std::shared_ptr<const TlsClientContext>> create(const std::string& ca_file);
  ~TlsClientContext();
  // What the context trusts, for messages: "CA file 'ca.pem'" or "the system CA store".
  const std::string& trust() const { return trust_; }

  struct Impl;  // the asio ssl::context (http_client.cpp)
  Impl& impl() const { return *impl_; }

 private:
  TlsClientContext();
  std::unique_ptr<Impl> impl_;
  std::string trust_;
};

struct HttpReply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers = {};  // every response header, names lower-case
};

struct HttpCall {
  std::string method = "GET";
  std::string target;  // "/netdist/v1/shard", appended to the URL's base path
  std::string body;
  std::string content_type = "application/json";
  std::string auth_token;  // non-empty: "Authorization: Bearer <token>"
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers (e.g. Range)
  std::chrono::milliseconds timeout{30000};
  const std::atomic<bool>* cancel = nullptr;  // set → the call ends with kCancelled
  std::shared_ptr<const TlsClientContext> tls;  // https:// URLs; null = the system's default verify paths
};

// unavailable naming the URL when the connection fails, is reset or the deadline passes, or the TLS
// handshake fails (with OpenSSL's reason, e.g. "certificate verify failed: unable to get local issuer
// certificate" or "...: hostname mismatch"); cancelled when `cancel` was set; any HTTP status (also
// 4xx/5xx) is a reply.
Result<HttpReply> http_call(const std::string& url, const HttpCall& call);

}  // namespace netdist::cluster
