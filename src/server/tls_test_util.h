// Test-only throwaway PKI (OpenSSL C API, no `openssl` program needed): a fresh CA and a server
// certificate it signs, written as PEM files. Each call makes new keys, so two calls give CAs that do not
// trust each other's certificates. Thread-safety: reentrant.
#pragma once

#include <string>
#include <vector>

namespace netdist::server {

struct TestPki {
  std::string ca_cert;      // PEM: the CA certificate (what a client's --tls-ca names)
  std::string server_cert;  // PEM: the server certificate, signed by the CA
  std::string server_key;   // PEM: its unencrypted private key
};

// Writes ca.pem, server.pem and server-key.pem under `dir` (created). `names` become the server
// certificate's subjectAltNames: IP addresses as iPAddress, anything else as dNSName. Aborts the test
// process with a message if OpenSSL fails (a broken test environment, not a test result).
TestPki make_test_pki(const std::string& dir,
                      const std::vector<std::string>& names = {"127.0.0.1", "localhost"});

}  // namespace netdist::server
