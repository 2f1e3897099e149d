#include "tls/certificate.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace fulcrum::tls {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memory_bio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// A password callback that refuses: an encrypted key is an error, never a terminal prompt.
int no_password(char*, int, int, void*) {
  return -1;
}

int64_t to_unix(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string format_utc(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// Refuses a certificate outside its validity period at `now`.
base::Status check_validity(X509* cert, int64_t now, const char* what) {
  int64_t not_before = to_unix(X509_get0_notBefore(cert));
  int64_t not_after = to_unix(X509_get0_notAfter(cert));
  if (now > not_after) {
    return base::Error::config("cert", std::string(what) + " expired on " + format_utc(not_after));
  }
  if (now < not_before) {
    return base::Error::config(
        "cert", std::string(what) + " is not valid before " + format_utc(not_before));
  }
  return {};
}

// Every PEM certificate of `pem`, in order.
std::vector<X509*> read_certificates(std::string_view pem) {
  std::vector<X509*> out;
  BioPtr bio = memory_bio(pem);
  while (bio) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr);
    if (!cert) break;
    out.push_back(cert);
  }
  ERR_clear_error();  // the end of the text reads as "no start line"
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::vector<std::string> dns_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = n->d.dNSName;
      names.push_back(lower(std::string_view(reinterpret_cast<const char*>(s->data),
                                             static_cast<size_t>(s->length))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    X509_NAME* subject = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (i >= 0) {
      const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
      names.push_back(
          lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                                 static_cast<size_t>(ASN1_STRING_length(cn)))));
    }
  }
  return names;
}

}  // namespace

ServerCertificate::~ServerCertificate() {
  X509_free(leaf_);
  sk_X509_pop_free(chain_, X509_free);
  EVP_PKEY_free(key_);
}

base::Result<std::shared_ptr<const ServerCertificate>> ServerCertificate::parse(
    std::string_view cert_pem, std::string_view key_pem, int64_t now_unix_s) {
  std::shared_ptr<ServerCertificate> out(new ServerCertificate());
  std::vector<X509*> certs = read_certificates(cert_pem);
  out->chain_ = sk_X509_new_null();
  if (certs.empty()) {
    return base::Error::config("cert", "holds no PEM certificate");
  }
  out->leaf_ = certs[0];
  for (size_t i = 1; i < certs.size(); ++i) sk_X509_push(out->chain_, certs[i]);

  BioPtr bio = memory_bio(key_pem);
  out->key_ = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr) : nullptr;
  ERR_clear_error();
  if (!out->key_) {
    return base::Error::config("key", "holds no PEM private key (or an encrypted one)");
  }
  if (X509_check_private_key(out->leaf_, out->key_) != 1) {
    ERR_clear_error();
    return base::Error::config("key", "does not match the certificate");
  }
  if (auto s = check_validity(out->leaf_, now_unix_s, "the certificate"); !s.ok()) {
    return s.take_error();
  }
  switch (EVP_PKEY_get_base_id(out->key_)) {
    case EVP_PKEY_RSA:
      out->key_type_ = KeyType::kRsa;
      break;
    case EVP_PKEY_EC:
      out->key_type_ = KeyType::kEcdsa;
      break;
    default:
      out->key_type_ = KeyType::kOther;
  }
  out->names_ = dns_names(out->leaf_);
  out->not_after_ = to_unix(X509_get0_notAfter(out->leaf_));
  return std::shared_ptr<const ServerCertificate>(std::move(out));
}

CaCertificates::~CaCertificates() {
  for (X509* c : certs_) X509_free(c);
}

base::Result<std::shared_ptr<const CaCertificates>> CaCertificates::parse(std::string_view pem,
                                                                          int64_t now_unix_s) {
  std::shared_ptr<CaCertificates> out(new CaCertificates());
  out->certs_ = read_certificates(pem);
  if (out->certs_.empty()) return base::Error::config("cert", "holds no PEM certificate");
  for (X509* c : out->certs_) {
    if (auto s = check_validity(c, now_unix_s, "a CA certificate"); !s.ok()) return s.take_error();
  }
  return std::shared_ptr<const CaCertificates>(std::move(out));
}

}  // namespace fulcrum::tls
