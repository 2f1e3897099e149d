#include "tls/certificate.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <string>

namespace fulcrum::tls {
namespace {

std::string pem_of(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

std::string pem_of(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

// A self-signed certificate for `cn` (and `san` as a DNS subjectAltName when set), valid from
// now + from_s to now + to_s.
std::string self_signed(EVP_PKEY* key, const char* cn, const char* san, long from_s, long to_s) {
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), from_s);
  X509_gmtime_adj(X509_getm_notAfter(x), to_s);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(x, name);
  if (san) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  std::string out = pem_of(x);
  X509_free(x);
  return out;
}

class CertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ec_ = EVP_EC_gen("P-256");
    other_ = EVP_EC_gen("P-256");
    ASSERT_TRUE(ec_ && other_);
  }
  void TearDown() override {
    EVP_PKEY_free(ec_);
    EVP_PKEY_free(other_);
  }
  int64_t now() const { return static_cast<int64_t>(std::time(nullptr)); }
  EVP_PKEY* ec_ = nullptr;
  EVP_PKEY* other_ = nullptr;
};

TEST_F(CertificateTest, ParsesNamesKeyTypeAndValidity) {
  std::string cert =
      self_signed(ec_, "ignored.example", "DNS:A.example.com,DNS:*.b.example.com", -60, 86400);
  auto c = ServerCertificate::parse(cert, pem_of(ec_), now());
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ((*c)->names(), (std::vector<std::string>{"a.example.com", "*.b.example.com"}));
  EXPECT_EQ((*c)->key_type(), KeyType::kEcdsa);
  EXPECT_NEAR(static_cast<double>((*c)->not_after_unix_s()), static_cast<double>(now() + 86400),
              5.0);
  // Without a DNS name the subject's CN is the name.
  auto cn = ServerCertificate::parse(self_signed(ec_, "Only.CN", nullptr, -60, 86400), pem_of(ec_),
                                     now());
  ASSERT_TRUE(cn.ok());
  EXPECT_EQ((*cn)->names(), std::vector<std::string>{"only.cn"});
}

TEST_F(CertificateTest, RefusesWithTheFieldThatIsWrong) {
  std::string cert = self_signed(ec_, "a", nullptr, -60, 86400);
  auto mismatch = ServerCertificate::parse(cert, pem_of(other_), now());
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.error().to_string(), "key: does not match the certificate");
  auto no_key = ServerCertificate::parse(cert, "not a key", now());
  ASSERT_FALSE(no_key.ok());
  EXPECT_EQ(no_key.error().field, "key");
  auto no_cert = ServerCertificate::parse("-----BEGIN CERTIFICATE-----\nxx\n", pem_of(ec_), now());
  ASSERT_FALSE(no_cert.ok());
  EXPECT_EQ(no_cert.error().to_string(), "cert: holds no PEM certificate");
  auto expired =
      ServerCertificate::parse(self_signed(ec_, "a", nullptr, -7200, -3600), pem_of(ec_), now());
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().field, "cert");
  EXPECT_NE(expired.error().message.find("the certificate expired on "), std::string::npos);
  auto early =
      ServerCertificate::parse(self_signed(ec_, "a", nullptr, 3600, 7200), pem_of(ec_), now());
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().message.find("is not valid before "), std::string::npos);
}

TEST_F(CertificateTest, CaBundles) {
  std::string one = self_signed(ec_, "CA one", nullptr, -60, 86400);
  std::string two = self_signed(other_, "CA two", nullptr, -60, 86400);
  auto cas = CaCertificates::parse(one + two, now());
  ASSERT_TRUE(cas.ok());
  EXPECT_EQ((*cas)->certificates().size(), 2u);
  EXPECT_FALSE(CaCertificates::parse("", now()).ok());
  auto expired = CaCertificates::parse(self_signed(ec_, "old", nullptr, -7200, -3600), now());
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().field, "cert");
}

}  // namespace
}  // namespace fulcrum::tls
