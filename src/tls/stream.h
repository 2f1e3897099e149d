// One server-side TLS connection over a non-blocking socket, as a net::Stream. OpenSSL reads and
// writes the socket itself through a small BIO of ours (recv/send with MSG_NOSIGNAL, no copy
// through memory BIOs) that also notes whether the last recv emptied the socket, so that a
// reader on edge-triggered epoll can skip the read that would only say EAGAIN. [worker]
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/counters.h"
#include "net/stream.h"

struct ssl_st;
struct bio_st;

namespace fulcrum::tls {

class ServerContext;

class TlsStream final : public net::Stream {
 public:
  // Takes ownership of `ssl` (in accept state) and keeps `context` alive for its callbacks.
  TlsStream(net::UniqueFd fd, ssl_st* ssl, std::shared_ptr<const ServerContext> context);
  ~TlsStream() override;

  // Drives the handshake: kOk once complete, kBlocked when it waits for the socket (either
  // direction: retry on any readiness), kError when it failed (the reason is logged at debug and
  // kept for failure()).
  net::IoStatus handshake();
  bool handshake_done() const { return done_; }

  net::IoResult read(char* buf, size_t n) override;
  net::IoResult write(const char* buf, size_t n) override;
  bool wants_write_to_read() const override { return read_wants_write_; }
  bool wants_read_to_write() const override { return write_wants_read_; }
  std::string_view protocol() const override;
  std::string_view server_name() const override;
  void shutdown() override;

  // After the handshake: the verified client certificate's subject (RFC 2253, ASCII with
  // escapes), empty without one.
  std::string peer_subject() const;
  // The session was resumed from a ticket.
  bool resumed() const;
  // "TLSv1.3" ...
  std::string_view version() const;
  // After the handshake: the negotiated version and ALPN protocol as counter indexes.
  base::TlsVersion version_id() const;
  base::TlsAlpn alpn_id() const;
  // After a failed handshake(): why (tls/failure.h).
  base::TlsFailure failure() const { return failure_; }
  // The client named a server (SNI) that no certificate covers (it got the default one).
  bool sni_unmatched() const;

  // Called by the BIO. [worker]
  void note_read(size_t asked, size_t got) { last_read_short_ = got < asked; }

 private:
  ssl_st* ssl_;
  std::shared_ptr<const ServerContext> context_;
  bool done_ = false;
  bool failed_ = false;
  base::TlsFailure failure_ = base::TlsFailure::kOther;
  bool read_wants_write_ = false;
  bool write_wants_read_ = false;
  bool last_read_short_ = false;
};

}  // namespace fulcrum::tls
