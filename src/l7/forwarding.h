// What HTTP/1.1 (HttpSession) and HTTP/2 (Http2Session) sessions do alike for each request:
// route it by Host and path, compute the forwarding header edits (X-Forwarded-*, X-Request-Id,
// SLB-*, the client certificate subject, sticky cookies), pick a backend, and rewrite the
// response's sticky cookies. Pure functions over the listener's snapshot. [worker]
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "balance/host_mask.h"
#include "http/message.h"
#include "l7/http_listener.h"
#include "net/address.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l7 {

// The index in cfg.targets of the rule matching `host` and `path` (its query is ignored); 0 (the
// default target) when none does.
size_t route_request(const snapshot::Listener& cfg, std::string_view host, std::string_view path);

// A random 32-hex-digit request id, written over *out (its buffer reused).
void new_request_id(uint64_t seed, std::string* out);

// What a session knows of its client.
struct ClientFacts {
  std::string_view peer_ip;
  bool tls = false;
  std::string_view cert_subject;  // a verified client certificate's subject (mutual TLS)
  uint64_t seed = 0;              // for request ids
};

// The edits to apply to a forwarded request. `add` points into the strings of this object: keep
// it where it was built (no copy, no move) while the edits are used.
struct ForwardEdits {
  ForwardEdits() = default;
  ForwardEdits(const ForwardEdits&) = delete;
  ForwardEdits& operator=(const ForwardEdits&) = delete;

  std::vector<http::Header> add;
  std::vector<std::string_view> remove;
  std::string request_id;                // the client's X-Request-Id, or the one added
  uint32_t sticky_backend = UINT32_MAX;  // the backend the request's sticky cookie names
  std::string xff, port, cookies;        // storage for `add`

  // Empty again, as before forward_edits() (the buffers are kept for the next request).
  void clear() {
    add.clear();
    remove.clear();
    request_id.clear();
    sticky_backend = UINT32_MAX;
    xff.clear();
    port.clear();
    cookies.clear();
  }
};

// Exactly one X-Forwarded-For, ending in the peer; X-Request-Id when absent; the optional
// X-Forwarded-Proto/-Port, SLB-ID, SLB-IP and X-Client-Cert-Subject (client copies removed);
// the sticky cookie: Fulcrum's own (SERVERID by default) is not forwarded, a backend's prefixed
// cookie goes back to it without the prefix.
void forward_edits(const snapshot::Listener& cfg, size_t target,
                   std::span<const http::Header> headers, const ClientFacts& client,
                   ForwardEdits* out);

// A backend of the target not in `tried` (the sticky one first while it is usable); kNoHost
// when none is left.
uint32_t pick_backend(const snapshot::HttpTarget& target, HttpListenerState::Target& ts,
                      uint32_t sticky_backend, balance::HostMask* tried,
                      const net::SocketAddress& peer);

// Sticky sessions on a final response from `backend`: the Set-Cookie values to add (insert: the
// sticky cookie (SERVERID by default) unless the request named that backend already; server: the
// backend's cookies, prefixed) and whether the response's own Set-Cookie fields are replaced.
void sticky_response_cookies(const snapshot::Listener& cfg, size_t target, uint32_t backend,
                             uint32_t sticky_backend, std::span<const http::Header> response,
                             std::vector<std::string>* set_cookies, bool* replace);

}  // namespace fulcrum::l7
