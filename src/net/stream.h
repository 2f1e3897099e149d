// A byte stream over one connected, non-blocking socket: plain TCP (SocketStream) or TLS
// (tls::TlsStream). The client side of an L7 session reads and writes through it, so that one
// session serves HTTP and HTTPS alike; an HTTP/2 session can sit on the same interface.
// Edge-triggered use: read until kBlocked (or until `more` is false), write until kBlocked, and
// look at wants_write_to_read()/wants_read_to_write() when a readiness event comes. [worker]
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "net/socket.h"

namespace fulcrum::net {

enum class IoStatus : uint8_t {
  kOk,       // `bytes` > 0 were moved
  kBlocked,  // nothing can move until the socket is ready again
  kEof,      // the peer ended its side cleanly (reads only)
  kError,    // the connection is broken; errno may say why (ECONNRESET, EPIPE, EPROTO for TLS)
};

struct IoResult {
  IoStatus status = IoStatus::kBlocked;
  size_t bytes = 0;
  // kOk reads only: false when this read is known to have emptied the stream (a short read
  // from the socket and nothing decoded left), so the next arrival raises a new edge and the
  // read that would say kBlocked can be skipped.
  bool more = true;
};

class Stream {
 public:
  explicit Stream(UniqueFd fd) : fd_(std::move(fd)) {}
  virtual ~Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int fd() const { return fd_.get(); }

  // Reads up to `n` bytes into `buf` (n > 0).
  virtual IoResult read(char* buf, size_t n) = 0;
  // Writes up to `n` bytes from `buf` (n > 0); kOk with the count taken (possibly fewer).
  // A TLS stream that got kBlocked must be called again with at least the same bytes first.
  virtual IoResult write(const char* buf, size_t n) = 0;
  // TLS: reading cannot go on until the socket is writable (a handshake or alert is pending).
  virtual bool wants_write_to_read() const { return false; }
  // TLS: writing cannot go on until the socket is readable.
  virtual bool wants_read_to_write() const { return false; }
  // The negotiated application protocol (ALPN: "h2" or "http/1.1"); empty for plain TCP or
  // when the client sent none.
  virtual std::string_view protocol() const { return {}; }
  // The name the client asked for in the TLS handshake (SNI), as it sent it; empty for plain
  // TCP or when it sent none.
  virtual std::string_view server_name() const { return {}; }
  // A clean end of our side before the socket closes (TLS: one non-blocking close_notify).
  virtual void shutdown() {}

  // Closes with RST instead of FIN. The stream is unusable afterwards.
  void close_with_reset();
  void close() { fd_.reset(); }

 protected:
  UniqueFd fd_;
};

// Plain TCP: recv/send(MSG_NOSIGNAL).
class SocketStream final : public Stream {
 public:
  using Stream::Stream;
  IoResult read(char* buf, size_t n) override;
  IoResult write(const char* buf, size_t n) override;
};

}  // namespace fulcrum::net
