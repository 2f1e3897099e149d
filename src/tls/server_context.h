// The TLS side of one HTTPS listener generation: OpenSSL contexts built once on the control
// thread, then shared read-only by every worker (OpenSSL's SSL_CTX is reference-counted and safe
// for concurrent SSL_new). Per connection, a worker calls accept() and drives the TlsStream.
//
// - certificates: one SSL_CTX per distinct set of names; an RSA and an ECDSA certificate with the
//   same names share one (OpenSSL then picks by what the client supports). The first
//   certificate's context is the default; the SNI callback switches to the context whose names
//   match (tls/names.h), and an unknown or absent name keeps the default.
// - policy: protocol versions and ciphers (tls/policy.h); no compression, no renegotiation
//   (SSL_OP_NO_RENEGOTIATION: a client's request is answered with a no_renegotiation alert).
// - resumption: stateless session tickets with the process-wide TicketKeys; no server-side
//   session cache (it would be per worker and locked). A ticket only resumes on the listener that
//   issued it (session id context = the listener's identity).
// - mutual TLS: with client_ca, a client certificate that chains to it is required.
// - ALPN: the server's list in preference order; a client that offers none of it goes on
//   without ALPN (HTTP/1.1).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/socket.h"
#include "tls/certificate.h"
#include "tls/names.h"
#include "tls/policy.h"
#include "tls/ticket_keys.h"

struct ssl_ctx_st;
struct ssl_st;

namespace fulcrum::tls {

class TlsStream;

struct ServerOptions {
  std::vector<std::shared_ptr<const ServerCertificate>> certificates;  // [0] is the default
  Policy policy = Policy::kTls12;
  std::shared_ptr<const CaCertificates> client_ca;  // null: no client certificate asked
  // ALPN protocols in the server's order of preference: {"h2", "http/1.1"}, or {"http/1.1"}
  // without HTTP/2. Empty: ALPN is not answered.
  std::vector<std::string> alpn;
  std::shared_ptr<TicketKeys> tickets;  // null: no session tickets (no resumption)
  // Sessions resume only where this is the same (e.g. "lb tcp:443").
  std::string session_context;
};

class ServerContext : public std::enable_shared_from_this<ServerContext> {
 public:
  // [control] Fails (an internal error naming what) only when OpenSSL refuses the settings.
  static base::Result<std::shared_ptr<const ServerContext>> create(ServerOptions options);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // [worker] A server-side TLS stream over an accepted socket; its handshake runs on the first
  // TlsStream::handshake(). Null when OpenSSL is out of memory (the socket is closed).
  std::unique_ptr<TlsStream> accept(net::UniqueFd fd) const;

  bool mutual() const { return options_.client_ca != nullptr; }
  // Some certificate covers `server_name` (tls/names.h). [any]
  bool covers(std::string_view server_name) const { return names_.find(server_name).has_value(); }
  const ServerOptions& options() const { return options_; }

 private:
  explicit ServerContext(ServerOptions options) : options_(std::move(options)) {}
  base::Status build();
  static int on_server_name(ssl_st* ssl, int* alert, void* arg);
  static int on_alpn(ssl_st* ssl, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned int inlen, void* arg);

  ServerOptions options_;
  std::vector<ssl_ctx_st*> contexts_;  // [0] the default certificate's
  NameTable names_;                    // name -> index in contexts_
  std::string alpn_wire_;              // options_.alpn in the wire format (length-prefixed)
};

}  // namespace fulcrum::tls
