// ResponseParser: a pull parser for the responses of one upstream connection, driven like
// RequestParser (see message_parser.h for the step contract). [worker]
//
// A response is framed by the request it answers, so call expect() before the first byte of
// each response. Interim responses (1xx other than 101) come out as their own kHead + kDone and
// the parser then continues with the final response to the same request. A 101 to an upgrade
// request ends HTTP on the connection: after its kDone the remaining bytes belong to the tunnel
// and any further feed() is an error.
//
// Every problem is an error with status 502: the proxy answers its client 502 (if nothing was
// sent yet) and never reuses that upstream connection. Rejected besides the line and field rules
// of RequestParser: a status line other than `HTTP/1.x SP 3DIGIT [SP reason]` with a status of
// 100-599; HTTP versions other than 1.0/1.1; repeated/invalid Content-Length; Content-Length
// with Transfer-Encoding; Transfer-Encoding in HTTP/1.0 or with any coding but a single chunked
// (a non-chunked final coding would mean "read until close", which a proxy must not guess
// with); malformed chunk framing; a 101 that no upgrade request asked for, or without
// "Connection: upgrade" and Upgrade; a head or trailer section over the limits.
#pragma once

#include <string_view>
#include <vector>

#include "http/message.h"
#include "http/message_parser.h"

namespace fulcrum::http {

class ResponseParser final : private detail::MessageParser {
 public:
  explicit ResponseParser(const Limits& limits = Limits());

  // The next response answers a request with this method (HEAD: no body) that did or did not
  // ask for an upgrade (only then is 101 acceptable). Call between responses; it stays in effect
  // across interim 1xx responses. Until called: GET without upgrade.
  void expect(Method request_method, bool upgrade_requested) {
    request_method_ = request_method;
    upgrade_requested_ = upgrade_requested;
  }

  using MessageParser::feed;
  // The upstream closed its sending side: kDone when that ends a body that runs until close (or
  // nothing was in progress: see idle()), else kError (a truncated response).
  using MessageParser::body;
  using MessageParser::error;
  using MessageParser::finish;
  using MessageParser::idle;
  using MessageParser::reset;
  using MessageParser::trailers;

  // Valid from kHead until the next message starts.
  const ResponseHead& head() const { return head_; }

 private:
  bool on_start_line(std::string_view line, ParseError* error) override;
  bool on_head(std::string_view bytes, std::span<const Header> fields, detail::BodyMode* mode,
               uint64_t* length, ParseError* error) override;
  bool ends_connection_as_http() const override { return head_.upgrade; }

  Method request_method_ = Method::kGet;
  bool upgrade_requested_ = false;
  size_t reason_size_ = 0;  // the reason phrase starts at offset 13 of the head
  uint16_t status_ = 0;
  uint8_t version_minor_ = 1;
  ResponseHead head_;
  std::vector<std::string_view> connection_tokens_;
};

}  // namespace fulcrum::http
