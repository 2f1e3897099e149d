// Serialisation of forwarded heads and re-framed bodies, appended to a caller-owned std::string
// (reuse it across messages: no allocation once its capacity has grown). Pure. [any]
//
// Forwarding rules (RFC 9110 §7.6.1, TESTING.md): the hop-by-hop fields Connection, Keep-Alive,
// Proxy-Connection, TE, Trailer, Transfer-Encoding and Upgrade, and every field a Connection
// header names, are not forwarded. Content-Length and Transfer-Encoding are never copied either:
// they are written from the validated head, so a "Connection: content-length" can never strip the
// framing the body is sent with. Upgrade (with "Connection: upgrade") is re-added for an upgrade.
// The proxy speaks HTTP/1.1 on both sides.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http/message.h"

namespace fulcrum::http {

// How a forwarded body is framed on the outgoing connection.
enum class Framing : uint8_t {
  kNone,        // no body
  kLength,      // Content-Length: send each body() piece as it is
  kChunked,     // send each piece through write_chunk(), then write_last_chunk() at kDone
  kUntilClose,  // send pieces as they are; close the connection to end the body
};

// Field edits the caller applies on top of the forwarding rules.
struct HeaderEdits {
  std::span<const std::string_view> remove;  // names (any case) not to forward
  std::span<const Header> add;               // written after the forwarded fields, as given
  // The Host to send when the request has none (an HTTP/1.0 request): the upstream request is
  // HTTP/1.1, whose servers may refuse an empty Host.
  std::string_view default_host;
};

// True for the fields that are never forwarded as received (the list above, Content-Length and
// Host excluded: those are rewritten, not dropped).
bool is_hop_by_hop(std::string_view name);

// Upstream framing of a request body: kChunked, kLength (length > 0) or kNone.
Framing request_framing(const RequestHead& head);

// Appends the request head to send upstream:
//   `<method> <head.path> HTTP/1.1`, `Host: <head.host>` (else edits.default_host) first, the
//   received fields minus the hop-by-hop ones, Host, Content-Length and edits.remove, then
//   `Content-Length: <n>` when the request had one, `Transfer-Encoding: chunked` when chunked,
//   `Connection: upgrade` and `Upgrade: <protocol>` for an upgrade request, then edits.add, then
//   the empty line.
void write_request_head(const RequestHead& head, const HeaderEdits& edits, std::string* out);

struct ResponseWriteOptions {
  uint8_t client_version_minor = 1;  // the client's request version
  bool keep_alive = true;  // the proxy wants to keep the client connection after this response
  HeaderEdits edits;
};

// Framing of a response body toward the client: kNone for no_body, kLength with a
// Content-Length, else kChunked for an HTTP/1.1 client (re-chunking a chunked or until-close
// body) and kUntilClose for an HTTP/1.0 client.
Framing response_framing(const ResponseHead& head, uint8_t client_version_minor);

// Whether the client connection stays open after this response: options.keep_alive, unless the
// body is framed by closing or the connection is upgraded.
bool response_keeps_client(const ResponseHead& head, const ResponseWriteOptions& options);

// Appends the response head for the client:
//   `HTTP/1.1 <status> <reason>`, the received fields minus the hop-by-hop ones, Content-Length and
//   edits.remove, then `Content-Length: <n>` when the response had one, `Transfer-Encoding:
//   chunked` for kChunked framing, then the connection fields — `Connection: upgrade` and
//   `Upgrade: <protocol>` for a 101, nothing for other 1xx, `Connection: close` when the client
//   connection will close (response_keeps_client() false), `Connection: keep-alive` when it stays
//   open for an HTTP/1.0 client — then edits.add, then the empty line.
void write_response_head(const ResponseHead& head, const ResponseWriteOptions& options,
                         std::string* out);

// Chunked re-framing. A chunk is write_chunk_header(size), the size payload bytes, kChunkEnd;
// write_chunk() does all three (nothing for an empty payload, which would end the body).
void write_chunk_header(uint64_t size, std::string* out);
inline constexpr std::string_view kChunkEnd = "\r\n";
void write_chunk(std::string_view payload, std::string* out);
// The last chunk and trailer section: "0\r\n", the trailers minus the hop-by-hop fields and those
// a trailer must not carry (Content-Length, Host), "\r\n". Chunk extensions are never written.
void write_last_chunk(std::span<const Header> trailers, std::string* out);

// A complete response the proxy sends on its own before closing the connection (400, 502, ...):
// status line with the standard reason, `Content-Length: 0`, `Connection: close`.
void write_error_response(uint16_t status, std::string* out);

}  // namespace fulcrum::http
