// HTTP/1.1 message types shared by the parsers and the serialisers: methods, header views, the
// parsed request and response heads, limits and the parse error. Pure data, no I/O. [any]
//
// Every std::string_view and std::span in a head points into storage owned by the parser that
// produced it and stays valid until that parser starts its next message (the first feed() after
// kDone) or is destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "base/result.h"

namespace fulcrum::http {

enum class Method : uint8_t {
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kOptions,
  kPatch,
  kConnect,
  kTrace,
  kOther,  // any other method llhttp knows (WebDAV, PURGE, ...); see RequestHead::method_text
};

// kOther for anything but the nine standard names (case-sensitive, as RFC 9110 requires).
Method method_from_text(std::string_view text);
// The canonical name; "" for kOther.
std::string_view method_name(Method method);

// One field line as received: name as spelled by the sender, value without surrounding whitespace.
struct Header {
  std::string_view name;
  std::string_view value;
};

// Limits on what a parser buffers. The defaults are PRODUCT.md §2's listener limits.
struct Limits {
  // Request/status line + field lines + the final empty line, counting every CRLF (and empty lines
  // skipped before a request line). Over it: 431. The same bound applies to a trailer section.
  size_t max_header_bytes = 64 * 1024;
  // Field lines in a head (or in a trailer section). Over it: 431.
  size_t max_headers = 100;
  // Request-target length. Over it: 414.
  size_t max_uri_bytes = 16 * 1024;
  // Request body bytes (Content-Length, or the sum of chunk sizes). Over it: 413. Requests only.
  uint64_t max_body_bytes = UINT64_MAX;
};

struct RequestHead {
  Method method = Method::kGet;
  std::string_view method_text;  // as received (a valid token)
  std::string_view target;       // request-target as received
  // What to send upstream as the request-target: the target itself in origin-form ("/a?b") or
  // asterisk-form ("*"); for an absolute-form target its path and query ("/" when empty).
  std::string_view path;
  uint8_t version_minor = 1;        // HTTP/1.<version_minor>; only 0 and 1 are accepted
  std::span<const Header> headers;  // every field line, in order, hop-by-hop ones included

  // Derived and validated.
  // The authority of an absolute-form target, else the Host header value (empty when an HTTP/1.0
  // request has none). Not case-normalised.
  std::string_view host;
  bool keep_alive = true;  // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive
  bool chunked = false;    // Transfer-Encoding: chunked (the only coding accepted)
  std::optional<uint64_t> content_length;
  bool expect_continue = false;  // "Expect: 100-continue" on an HTTP/1.1 request
  // "Connection: upgrade" plus an Upgrade header: after this request, if the upstream answers
  // 101, the connection becomes a tunnel; otherwise it continues as HTTP.
  bool upgrade = false;
  std::string_view upgrade_protocol;                    // the Upgrade header value when `upgrade`
  std::span<const std::string_view> connection_tokens;  // elements of all Connection headers

  bool has_body() const { return chunked || content_length.value_or(0) > 0; }
};

struct ResponseHead {
  uint16_t status = 0;  // 100-599
  std::string_view reason;
  uint8_t version_minor = 1;
  std::span<const Header> headers;

  // Derived and validated.
  bool keep_alive = true;  // as for requests, and false when the body runs until close
  bool chunked = false;
  std::optional<uint64_t> content_length;
  // No length and not chunked: the body is everything until the upstream closes.
  bool body_until_close = false;
  // No body whatever the headers say: the response to HEAD, 1xx, 204, 304.
  bool no_body = false;
  // An accepted 101 to an upgrade request: after kDone the connection is a tunnel.
  bool upgrade = false;
  std::string_view upgrade_protocol;
  std::span<const std::string_view> connection_tokens;

  bool informational() const { return status < 200; }
};

// A parser's step result.
enum class Step : uint8_t {
  kNeedMore,  // all of `data` was consumed; call again with more bytes
  kHead,      // the head of the next message is complete: head() is valid
  kBody,      // body() holds the next piece of body content
  kDone,      // the message is complete
  kError,     // error() says why; terminal: the connection must be closed
};

// Why a message was rejected. `reason` is static text (never message bytes), fit for a log line.
struct ParseError {
  // Requests: 400, 413, 414, 431, 501 or 505 (the status to answer before closing).
  // Responses: always 502 (what the proxy answers its client; that upstream connection is dead).
  uint16_t status = 0;
  std::string_view reason;

  // The same as a base::Error (source downstream for requests, upstream for responses; never
  // retryable: the peer sent bytes that cannot be interpreted).
  base::Error to_error(base::ErrorSource source) const;
};

// The standard reason phrase of a status ("Bad Request"); "Unknown" for unregistered codes.
std::string_view reason_phrase(uint16_t status);

}  // namespace fulcrum::http
