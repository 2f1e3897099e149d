// The TLS handshake of one accepted HTTPS connection, driven by the worker's loop (non-blocking:
// every readiness event advances it). Bounded by the listener's idle_timeout (the time a
// client has to send its first request head, of which the handshake is the first part). When it
// completes, the connection goes to the protocol that ALPN chose: an HttpSession for
// "http/1.1" (or no ALPN); an HTTP/2 session is the other branch of hand_over(). [worker] only;
// owned by the worker's TlsHandshakeList, destroyed through defer_delete.
#pragma once

#include <cstdint>
#include <memory>

#include "base/counters.h"
#include "l7/context.h"
#include "l7/http_listener.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/intrusive_list.h"
#include "tls/stream.h"

namespace fulcrum::l7 {

class TlsHandshake final : public net::Deferred,
                           public net::IoHandler,
                           public net::IntrusiveLink<TlsHandshake> {
 public:
  TlsHandshake(HttpContext& ctx, std::shared_ptr<HttpListenerRuntime> listener,
               std::unique_ptr<tls::TlsStream> stream, const net::SocketAddress& peer,
               const net::SocketAddress& local);
  // The listener's ACL refused the client at accept: its first request gets 403.
  void set_refused(bool refused) { refused_ = refused; }
  ~TlsHandshake() override;

  void start();
  // Ends the handshake now (RST); counted as a failure of reason "other" (drain, shutdown).
  void close() { fail(base::TlsFailure::kOther); }
  void on_io(uint32_t events) override;

 private:
  static void on_timer(void* self);
  void advance();
  void hand_over();
  // Ends the handshake (RST) and counts it as failed for `reason`; idempotent.
  void fail(base::TlsFailure reason);

  HttpContext& ctx_;
  std::shared_ptr<HttpListenerRuntime> listener_;
  std::unique_ptr<tls::TlsStream> stream_;
  net::SocketAddress peer_;
  net::SocketAddress local_;
  net::Timer timer_;
  int64_t deadline_ms_ = 0;
  bool closed_ = false;
  bool refused_ = false;
};

// Closes every handshake in progress (drain, shutdown). [worker]
void close_handshakes(HttpContext& ctx);

}  // namespace fulcrum::l7
