#include "tls/policy.h"

#include <array>

namespace fulcrum::tls {

namespace {

// Forward secrecy and AEAD first; server order decides (SSL_OP_CIPHER_SERVER_PREFERENCE).
// ECDSA before RSA only matters when both certificate types are loaded for one name.
constexpr const char* kModern =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// The default policy adds CBC suites with SHA-2 and static RSA key exchange with AES-GCM for old
// TLS 1.2 clients (as the cloud load balancers' TLS 1.2 policies do).
constexpr const char* kCompatible =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
    "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256";
// TLS 1.0 and 1.1 have only SHA-1 CBC suites and sign the handshake with MD5+SHA-1, which
// OpenSSL 3 allows only at security level 0 (Debian builds it with level 2 as the default).
constexpr const char* kLegacy =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
    "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:"
    "@SECLEVEL=0";

struct Entry {
  Policy policy;
  std::string_view name;
  PolicySpec spec;
};

constexpr std::array<Entry, 5> kPolicies = {{
    {Policy::kTls10, "tls_1_0", {kTls1_0, kTls1_3, kLegacy}},
    {Policy::kTls11, "tls_1_1", {kTls1_1, kTls1_3, kLegacy}},
    {Policy::kTls12, "tls_1_2", {kTls1_2, kTls1_3, kCompatible}},
    {Policy::kTls12Strict, "tls_1_2_strict", {kTls1_2, kTls1_2, kModern}},
    {Policy::kTls12StrictWith13, "tls_1_2_strict_with_1_3", {kTls1_2, kTls1_3, kModern}},
}};

}  // namespace

std::optional<Policy> parse_policy(std::string_view name) {
  for (const Entry& e : kPolicies) {
    if (e.name == name) return e.policy;
  }
  return std::nullopt;
}

std::string_view to_string(Policy p) {
  return kPolicies[static_cast<size_t>(p)].name;
}

const PolicySpec& spec(Policy p) {
  return kPolicies[static_cast<size_t>(p)].spec;
}

}  // namespace fulcrum::tls
