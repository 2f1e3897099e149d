#include "tls/policy.h"

#include <gtest/gtest.h>

#include <string>

namespace fulcrum::tls {
namespace {

// The versions of each policy are part of the product (docs/configuration.md): pinned here.
TEST(PolicyTest, VersionsOfEachPolicy) {
  struct Case {
    const char* name;
    uint16_t min, max;
  };
  for (const Case& c : {Case{"tls_1_0", kTls1_0, kTls1_3}, Case{"tls_1_1", kTls1_1, kTls1_3},
                        Case{"tls_1_2", kTls1_2, kTls1_3}, Case{"tls_1_2_strict", kTls1_2, kTls1_2},
                        Case{"tls_1_2_strict_with_1_3", kTls1_2, kTls1_3}}) {
    auto p = parse_policy(c.name);
    ASSERT_TRUE(p) << c.name;
    EXPECT_EQ(to_string(*p), c.name);
    EXPECT_EQ(spec(*p).min_version, c.min) << c.name;
    EXPECT_EQ(spec(*p).max_version, c.max) << c.name;
  }
  EXPECT_FALSE(parse_policy("TLS_1_2"));
  EXPECT_FALSE(parse_policy(""));
}

TEST(PolicyTest, StrictPoliciesAreEcdheAeadOnlyAndOnlyLegacyOnesLowerTheSecurityLevel) {
  for (Policy p : {Policy::kTls12Strict, Policy::kTls12StrictWith13}) {
    std::string ciphers = spec(p).ciphers;
    EXPECT_EQ(ciphers.find("SHA:"), std::string::npos);
    EXPECT_EQ(ciphers.find("SHA256:AES"), std::string::npos);
    size_t start = 0;
    while (start < ciphers.size()) {
      size_t end = ciphers.find(':', start);
      std::string one = ciphers.substr(start, end - start);
      EXPECT_EQ(one.rfind("ECDHE-", 0), 0u) << one;
      EXPECT_TRUE(one.find("GCM") != std::string::npos || one.find("CHACHA20") != std::string::npos)
          << one;
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  for (Policy p : {Policy::kTls12, Policy::kTls12Strict, Policy::kTls12StrictWith13}) {
    EXPECT_EQ(std::string(spec(p).ciphers).find("SECLEVEL"), std::string::npos);
  }
  EXPECT_NE(std::string(spec(Policy::kTls10).ciphers).find("@SECLEVEL=0"), std::string::npos);
}

}  // namespace
}  // namespace fulcrum::tls
