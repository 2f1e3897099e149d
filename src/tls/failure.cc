#include "tls/failure.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace fulcrum::tls {

base::TlsFailure classify_handshake_failure(int ssl_error, unsigned long queued) {
  using base::TlsFailure;
  // The socket failed or ended (EOF, ECONNRESET) with nothing from TLS itself.
  if (queued == 0) {
    return ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN
               ? TlsFailure::kClosed
               : TlsFailure::kOther;
  }
  if (ERR_GET_LIB(queued) != ERR_LIB_SSL) return TlsFailure::kOther;
  switch (ERR_GET_REASON(queued)) {
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
      return TlsFailure::kNoSharedCipher;
    // Mutual TLS: verification of the client's chain failed, or it sent none.
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return TlsFailure::kClientCertificate;
    // Alerts the client sent about Fulcrum's certificate.
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE:
      return TlsFailure::kBadCertificate;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return TlsFailure::kClosed;
    default:
      return TlsFailure::kProtocol;
  }
}

}  // namespace fulcrum::tls
