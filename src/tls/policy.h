// TLS security policies (the `tls_policy` of an HTTPS listener): protocol versions and cipher
// lists. Pure data; docs/configuration.md has the same table for users.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace fulcrum::tls {

enum class Policy : uint8_t {
  kTls10,              // TLS 1.0–1.3, legacy CBC and RSA key exchange ciphers (security level 0)
  kTls11,              // TLS 1.1–1.3, same ciphers (security level 0)
  kTls12,              // TLS 1.2–1.3 (the default)
  kTls12Strict,        // TLS 1.2 only, ECDHE with AEAD ciphers only
  kTls12StrictWith13,  // TLS 1.2 strict + TLS 1.3
};

// Versions as OpenSSL numbers them (0x0301 = TLS 1.0 ... 0x0304 = TLS 1.3).
constexpr uint16_t kTls1_0 = 0x0301;
constexpr uint16_t kTls1_1 = 0x0302;
constexpr uint16_t kTls1_2 = 0x0303;
constexpr uint16_t kTls1_3 = 0x0304;

struct PolicySpec {
  uint16_t min_version;
  uint16_t max_version;
  // OpenSSL cipher string for TLS ≤ 1.2 (with its @SECLEVEL); TLS 1.3 suites are OpenSSL's
  // defaults (AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM), all AEAD with ECDHE or DHE.
  const char* ciphers;
};

// "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_2_strict", "tls_1_2_strict_with_1_3"; exact.
std::optional<Policy> parse_policy(std::string_view name);
std::string_view to_string(Policy p);
const PolicySpec& spec(Policy p);

}  // namespace fulcrum::tls
