// Why a server handshake failed, from what OpenSSL reports: the SSL_get_error() code and the first
// error of the thread's queue (ERR_peek_error()). Pure (it only reads the numbers), so tests can
// pin the mapping; OpenSSL's numbers stay behind this header. [any]
#pragma once

#include <cstdint>

#include "base/counters.h"

namespace fulcrum::tls {

// `ssl_error` is SSL_get_error()'s answer for the failed SSL_do_handshake, `queued` the first
// error in the queue (0 when empty). Never kTimeout (the caller's timer knows that one).
base::TlsFailure classify_handshake_failure(int ssl_error, unsigned long queued);

}  // namespace fulcrum::tls
