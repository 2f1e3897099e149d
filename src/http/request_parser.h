// RequestParser: a pull parser for the HTTP/1.x requests of one client connection. The proxy
// drives it with whatever bytes it has read; it never blocks, allocates only per message head
// (storage reused across the connection's messages) and never copies body bytes. [worker]
//
//   for (;;) {  // after each read from the client, over the unconsumed bytes `buf`
//     size_t n = 0;
//     const Step step = parser.feed(buf, &n);
//     // kHead: route parser.head(); kBody: forward parser.body(); kDone: next request;
//     // kError: answer parser.error().status and close.
//     buf.remove_prefix(n);
//     if (step == Step::kNeedMore || step == Step::kError) break;
//   }
//
// Strictness (RFC 9110/9112 and TESTING.md "Rules a proxy must follow"); every rejection is
// terminal and the connection must be closed after answering error().status:
//   400  bare LF or CR in any line ending; whitespace before a field's colon; empty or non-token
//        field name; obs-fold; NUL/CR/LF/control bytes in a field value; a malformed request line
//        (anything but `token SP target SP HTTP/d.d`, one space each); target bytes outside
//        visible ASCII or an unusable target form; missing Host in HTTP/1.1, more than one Host,
//        an invalid Host; Content-Length repeated (even with the same value), not 1*DIGIT, a list,
//        or overflowing 64 bits; Content-Length together with Transfer-Encoding; Transfer-Encoding
//        in HTTP/1.0; a Transfer-Encoding whose final coding is not chunked, or chunked twice, or
//        with parameters; malformed chunk-size lines, chunk extensions, or missing CRLF after
//        chunk data; a malformed trailer section (same rules as fields).
//   413  Content-Length or the sum of chunk sizes above Limits::max_body_bytes.
//   414  request-target longer than Limits::max_uri_bytes.
//   431  head (or trailer section) larger than max_header_bytes, or more than max_headers fields.
//   501  a method llhttp does not know; CONNECT (a reverse proxy does not tunnel); a transfer
//        coding other than chunked before the final chunked (e.g. "gzip, chunked").
//   505  a well-formed HTTP version other than 1.0 and 1.1 (HTTP/0.9, HTTP/2.0, HTTP/1.2).
// Chunk extensions are accepted if well formed and dropped: body() is de-chunked content, which
// the proxy re-frames with write_chunk()/write_last_chunk() (serialize.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"
#include "http/message_parser.h"

namespace fulcrum::http {

class RequestParser final : private detail::MessageParser {
 public:
  explicit RequestParser(const Limits& limits = Limits());

  // See detail::MessageParser::feed. After kDone of a request with head().upgrade, stop feeding
  // until the upstream answers: on 101 the remaining bytes belong to the tunnel, otherwise carry
  // on (the next feed() parses the next request).
  using MessageParser::feed;
  // The client closed its sending side: kDone if between requests (idle() was true), else kError
  // (a truncated request).
  using MessageParser::body;
  using MessageParser::error;
  using MessageParser::finish;
  using MessageParser::idle;
  using MessageParser::trailers;

  // Valid from kHead until the next message starts.
  const RequestHead& head() const { return head_; }

 private:
  bool on_start_line(std::string_view line, ParseError* error) override;
  bool on_head(std::string_view bytes, std::span<const Header> fields, detail::BodyMode* mode,
               uint64_t* length, ParseError* error) override;
  bool ends_connection_as_http() const override { return false; }

  // Parts of the request line, as offsets into the head storage (which may move until the head
  // is complete).
  size_t method_size_ = 0;
  size_t target_offset_ = 0;
  size_t target_size_ = 0;
  RequestHead head_;
  std::string path_storage_;  // "/?query" for an absolute-form target without a path
  std::vector<std::string_view> connection_tokens_;
};

}  // namespace fulcrum::http
