#include "server/tls_test_util.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace netdist::server {

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "make_test_pki: %s failed\n", what);
  std::abort();
}

EVP_PKEY* new_key() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (!key) fail("EVP_EC_gen");
  return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext || X509_add_ext(cert, ext, -1) != 1) fail("X509_add_ext");
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by issuer_key (self-signed when issuer is null).
X509* new_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key, long serial) {
  X509* cert = X509_new();
  if (!cert) fail("X509_new");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 7L * 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
  return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) == 0) fail("X509_sign");
}

void write_cert(const std::string& path, X509* cert) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f || PEM_write_X509(f, cert) != 1) fail(("writing " + path).c_str());
  std::fclose(f);
}

void write_key(const std::string& path, EVP_PKEY* key) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f || PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail(("writing " + path).c_str());
  std::fclose(f);
}

bool is_ip(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

TestPki make_test_pki(const std::string& dir, const std::vector<std::string>& names) {
  std::filesystem::create_directories(dir);
  EVP_PKEY* ca_key = new_key();
  X509* ca = new_cert(ca_key, "netdist test CA", nullptr, nullptr, 1);
  add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(ca, ca, NID_subject_key_identifier, "hash");
  sign(ca, ca_key);

  EVP_PKEY* key = new_key();
  X509* cert = new_cert(key, names.empty() ? "netdist test server" : names.front(), ca, ca_key, 2);
  add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert, ca, NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(cert, ca, NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const std::string& n : names) {
    if (!san.empty()) san += ',';
    san += is_ip(n) ? "IP:" : "DNS:";
    san += n;
  }
  if (!san.empty()) add_ext(cert, ca, NID_subject_alt_name, san);
  sign(cert, ca_key);

  TestPki pki;
  pki.ca_cert = (std::filesystem::path(dir) / "ca.pem").string();
  pki.server_cert = (std::filesystem::path(dir) / "server.pem").string();
  pki.server_key = (std::filesystem::path(dir) / "server-key.pem").string();
  write_cert(pki.ca_cert, ca);
  write_cert(pki.server_cert, cert);
  write_key(pki.server_key, key);
  X509_free(cert);
  EVP_PKEY_free(key);
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  return pki;
}

}  // namespace netdist::server
