// Admin API URLs ("http://HOST[:PORT][/PREFIX]") and percent-encoding of path segments and query
// values. Pure. [any]
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/address.h"

namespace fulcrum::client {

struct Url {
  std::string host;    // without brackets: "127.0.0.1", "::1", "localhost"
  uint16_t port = 80;  // the scheme's default when the URL names none
  std::string prefix;  // a path prefix without the trailing '/': "" or "/fulcrum"

  // What goes in the Host header: "127.0.0.1:9901", "[::1]:9901".
  std::string authority() const;
  // "http://" + authority() + prefix.
  std::string to_string() const;
};

// Accepts "http://" followed by an IPv4 literal, a bracketed IPv6 literal or "localhost", an
// optional ":PORT" (1-65535) and an optional path (no query or fragment). Other schemes (https),
// user info and host names other than localhost are refused with a message saying why.
base::Result<Url> parse_url(std::string_view text);

// The addresses to connect to, in order: the literal itself, or 127.0.0.1 then ::1 for localhost.
std::vector<net::SocketAddress> resolve(const Url& url);

// Percent-encodes everything but the unreserved characters of RFC 3986 (letters, digits, "-._~"),
// for one path segment or one query value: "[::1]:9001" -> "%5B%3A%3A1%5D%3A9001".
std::string percent_encode(std::string_view text);

}  // namespace fulcrum::client
