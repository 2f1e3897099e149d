#include "tls/failure.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace fulcrum::tls {
namespace {

using base::TlsFailure;

unsigned long ssl_reason(int reason) {
  return ERR_PACK(ERR_LIB_SSL, 0, reason);
}

TEST(ClassifyHandshakeFailure, SocketEndsWithoutTlsErrorAreClosed) {
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SYSCALL, 0), TlsFailure::kClosed);
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_ZERO_RETURN, 0), TlsFailure::kClosed);
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, 0), TlsFailure::kOther);
  EXPECT_EQ(
      classify_handshake_failure(SSL_ERROR_SSL, ssl_reason(SSL_R_UNEXPECTED_EOF_WHILE_READING)),
      TlsFailure::kClosed);
}

TEST(ClassifyHandshakeFailure, NothingInCommon) {
  for (int r :
       {SSL_R_NO_SHARED_CIPHER, SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS, SSL_R_NO_SHARED_GROUPS}) {
    EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, ssl_reason(r)), TlsFailure::kNoSharedCipher)
        << r;
  }
}

TEST(ClassifyHandshakeFailure, ClientCertificateMissingOrUnverified) {
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, ssl_reason(SSL_R_CERTIFICATE_VERIFY_FAILED)),
            TlsFailure::kClientCertificate);
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL,
                                       ssl_reason(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)),
            TlsFailure::kClientCertificate);
}

TEST(ClassifyHandshakeFailure, ClientRefusedOurCertificate) {
  for (int r : {SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, SSL_R_TLSV1_ALERT_UNKNOWN_CA,
                SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED, SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN}) {
    EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, ssl_reason(r)), TlsFailure::kBadCertificate)
        << r;
  }
}

TEST(ClassifyHandshakeFailure, OtherTlsErrorsAreProtocolAndOtherLibrariesOther) {
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, ssl_reason(SSL_R_UNSUPPORTED_PROTOCOL)),
            TlsFailure::kProtocol);
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, ssl_reason(SSL_R_WRONG_VERSION_NUMBER)),
            TlsFailure::kProtocol);
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, ssl_reason(SSL_R_HTTP_REQUEST)),
            TlsFailure::kProtocol);
  EXPECT_EQ(classify_handshake_failure(SSL_ERROR_SSL, ERR_PACK(ERR_LIB_EVP, 0, 1)),
            TlsFailure::kOther);
}

}  // namespace
}  // namespace fulcrum::tls
