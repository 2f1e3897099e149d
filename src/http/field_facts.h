// FieldFacts: what the fields of a head say about host, framing and connection handling, read in
// one pass and checked by the rules both directions share. Internal to http/. Pure. [worker]
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace fulcrum::http::detail {

struct FieldFacts {
  size_t host_count = 0;
  std::string_view host;  // the last Host value

  size_t length_count = 0;   // Content-Length field lines
  bool length_valid = true;  // every one of them is 1*DIGIT without overflow
  uint64_t content_length = 0;

  bool transfer_encoding = false;  // any Transfer-Encoding field line
  bool coding_invalid = false;     // an element is not a token, or chunked has parameters
  bool last_chunked = false;       // the final coding is chunked
  size_t chunked_count = 0;
  bool other_coding = false;  // a coding other than chunked anywhere

  bool connection_invalid = false;  // a Connection element is not a token
  bool close = false;
  bool keep_alive = false;
  bool connection_upgrade = false;

  bool has_upgrade = false;
  std::string_view upgrade;  // the first Upgrade value

  bool expect_continue = false;  // Expect: 100-continue
};

// Reads `fields`; appends every Connection element to *connection_tokens (views into fields).
void collect_field_facts(std::span<const Header> fields, FieldFacts* facts,
                         std::vector<std::string_view>* connection_tokens);

// The framing rules of RFC 9112 §6 both directions share: Content-Length valid and not repeated,
// not both Content-Length and Transfer-Encoding, no Transfer-Encoding in HTTP/1.0, the final (and
// only) transfer coding chunked. False with *error set (400, or 501 for a coding before chunked)
// when one is broken.
bool check_framing(const FieldFacts& facts, uint8_t version_minor, ParseError* error);

// keep-alive by RFC 9112 §9.3: HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive".
inline bool persistent(const FieldFacts& facts, uint8_t version_minor) {
  return version_minor == 1 ? !facts.close : facts.keep_alive && !facts.close;
}

}  // namespace fulcrum::http::detail
