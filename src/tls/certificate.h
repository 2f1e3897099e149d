// Certificates as the TLS contexts use them: a server certificate (leaf, chain, private key, the
// names it covers) or a CA bundle that verifies client certificates. Parsed and checked on the
// control thread; immutable afterwards and shared by every context that lists it. [control]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

// OpenSSL's types, declared here so that no header of this module includes OpenSSL.
struct x509_st;
struct evp_pkey_st;
struct stack_st_X509;

namespace fulcrum::tls {

enum class KeyType : uint8_t { kRsa, kEcdsa, kOther };

class ServerCertificate {
 public:
  // Parses a PEM chain (leaf first, then intermediates) and its PEM private key, and checks that
  // the key belongs to the leaf and that the leaf is valid at `now_unix_s`. Errors are
  // configuration errors whose field is "cert" or "key" (the caller prefixes the certificate's
  // path); a message never quotes key material.
  static base::Result<std::shared_ptr<const ServerCertificate>> parse(std::string_view cert_pem,
                                                                      std::string_view key_pem,
                                                                      int64_t now_unix_s);
  ~ServerCertificate();
  ServerCertificate(const ServerCertificate&) = delete;
  ServerCertificate& operator=(const ServerCertificate&) = delete;

  // DNS names of the subjectAltName extension, lower-case ("*.example.com" kept as written);
  // the subject's CN when there is no DNS name.
  const std::vector<std::string>& names() const { return names_; }
  KeyType key_type() const { return key_type_; }
  int64_t not_after_unix_s() const { return not_after_; }
  x509_st* leaf() const { return leaf_; }
  stack_st_X509* chain() const { return chain_; }
  evp_pkey_st* key() const { return key_; }

 private:
  ServerCertificate() = default;
  x509_st* leaf_ = nullptr;
  stack_st_X509* chain_ = nullptr;  // intermediates, may be empty
  evp_pkey_st* key_ = nullptr;
  std::vector<std::string> names_;
  KeyType key_type_ = KeyType::kOther;
  int64_t not_after_ = 0;
};

// One or more CA certificates (PEM) that client certificates must chain to (mutual TLS).
class CaCertificates {
 public:
  // Errors have the field "cert". Expired CA certificates are refused like server ones.
  static base::Result<std::shared_ptr<const CaCertificates>> parse(std::string_view pem,
                                                                   int64_t now_unix_s);
  ~CaCertificates();
  CaCertificates(const CaCertificates&) = delete;
  CaCertificates& operator=(const CaCertificates&) = delete;
  const std::vector<x509_st*>& certificates() const { return certs_; }

 private:
  CaCertificates() = default;
  std::vector<x509_st*> certs_;
};

}  // namespace fulcrum::tls
