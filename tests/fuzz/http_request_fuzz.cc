// Fuzz target: RequestParser over arbitrary bytes. The first input byte chooses where the rest is
// cut in two (as two reads); the same bytes are also parsed in one piece. Aborts when:
//  - a step breaks its contract: consumed > given, kNeedMore without consuming everything, an
//    empty kBody or one that is not the tail of what it consumed, kHead consuming nothing, more
//    than one step in a row without progress;
//  - an error is not terminal, has a status outside 400/413/414/431/501/505 or no reason;
//  - a head breaks a validated property (version, Content-Length with chunked, limits);
//  - the two-piece and one-piece runs disagree in any way;
//  - a complete request, written back with write_request_head and re-framed with write_chunk /
//    write_last_chunk, does not parse again to the same method, path, host, framing and body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request_parser.h"
#include "http/serialize.h"

namespace {

using fulcrum::http::Header;
using fulcrum::http::Limits;
using fulcrum::http::RequestHead;
using fulcrum::http::RequestParser;
using fulcrum::http::Step;

void check(bool ok) {
  if (!ok) std::abort();
}

// Small limits so that short inputs reach the 414/431/413 paths.
Limits fuzz_limits() {
  Limits limits;
  limits.max_header_bytes = 1024;
  limits.max_headers = 16;
  limits.max_uri_bytes = 128;
  limits.max_body_bytes = 4096;
  return limits;
}

struct Message {
  std::string method_text, target, path, host, upgrade_protocol;
  uint8_t version_minor = 0;
  bool keep_alive = false, chunked = false, expect_continue = false, upgrade = false;
  std::optional<uint64_t> content_length;
  std::vector<std::string> headers;
  std::string body;
  std::vector<std::string> trailers;
  // Head written for upstream + re-framed body. Chunk boundaries follow the reads, so this is
  // left out of the comparison between runs.
  std::string forwarded;
  bool operator==(const Message& o) const {
    return method_text == o.method_text && target == o.target && path == o.path && host == o.host &&
           upgrade_protocol == o.upgrade_protocol && version_minor == o.version_minor &&
           keep_alive == o.keep_alive && chunked == o.chunked &&
           expect_continue == o.expect_continue && upgrade == o.upgrade &&
           content_length == o.content_length && headers == o.headers && body == o.body &&
           trailers == o.trailers;
  }
};

struct Outcome {
  std::vector<Message> messages;
  uint16_t status = 0;
  std::string reason;
  std::optional<Step> finish;
  bool operator==(const Outcome&) const = default;
};

std::vector<std::string> own(std::span<const Header> headers) {
  std::vector<std::string> out;
  for (const Header& h : headers) out.push_back(std::string(h.name) + ":" + std::string(h.value));
  return out;
}

void check_head(const RequestHead& h, const Limits& limits) {
  check(h.version_minor <= 1);
  check(!h.method_text.empty() && !h.target.empty() && !h.path.empty());
  check(h.target.size() <= limits.max_uri_bytes);
  check(h.headers.size() <= limits.max_headers);
  check(!(h.chunked && h.content_length.has_value()));
  check(!(h.chunked && h.version_minor == 0));
  check(h.content_length.value_or(0) <= limits.max_body_bytes);
  check(h.upgrade == !h.upgrade_protocol.empty());
  for (const Header& f : h.headers) check(!f.name.empty());
}

bool error_status_ok(uint16_t s) {
  return s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505;
}

void check_terminal(RequestParser& parser) {
  const uint16_t status = parser.error().status;
  check(error_status_ok(status) && !parser.error().reason.empty());
  size_t consumed = 1;
  check(parser.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed) == Step::kError);
  check(consumed == 0);
  check(parser.finish() == Step::kError);
  check(parser.error().status == status);
}

Outcome run(std::string_view input, size_t cut) {
  const Limits limits = fuzz_limits();
  RequestParser parser(limits);
  Outcome out;
  Message current;
  bool in_message = false;
  const std::string_view pieces[2] = {input.substr(0, cut), input.substr(cut)};
  for (std::string_view piece : pieces) {
    std::string copy(piece);  // a buffer of its own, so ASan sees views kept past their piece
    std::string_view data = copy;
    int stalls = 0;
    for (;;) {
      size_t consumed = SIZE_MAX;
      const Step step = parser.feed(data, &consumed);
      check(consumed <= data.size());
      const bool stalled = consumed == 0 && step != Step::kNeedMore && step != Step::kError;
      stalls = stalled ? stalls + 1 : 0;
      check(stalls <= 1);
      switch (step) {
        case Step::kNeedMore:
          check(consumed == data.size());
          break;
        case Step::kHead:
          check(consumed > 0);
          check_head(parser.head(), limits);
          current = Message{};
          current.method_text = std::string(parser.head().method_text);
          current.target = std::string(parser.head().target);
          current.path = std::string(parser.head().path);
          current.host = std::string(parser.head().host);
          current.upgrade_protocol = std::string(parser.head().upgrade_protocol);
          current.version_minor = parser.head().version_minor;
          current.keep_alive = parser.head().keep_alive;
          current.chunked = parser.head().chunked;
          current.expect_continue = parser.head().expect_continue;
          current.upgrade = parser.head().upgrade;
          current.content_length = parser.head().content_length;
          current.headers = own(parser.head().headers);
          fulcrum::http::write_request_head(parser.head(), {}, &current.forwarded);
          in_message = true;
          break;
        case Step::kBody: {
          const std::string_view body = parser.body();
          check(in_message && !body.empty() && body.size() <= consumed);
          check(body.data() + body.size() == data.data() + consumed);
          current.body.append(body);
          if (current.chunked) {
            fulcrum::http::write_chunk(body, &current.forwarded);
          } else {
            current.forwarded.append(body);
          }
          break;
        }
        case Step::kDone:
          check(in_message);
          if (current.content_length.has_value()) {
            check(current.body.size() == *current.content_length);
          }
          current.trailers = own(parser.trailers());
          if (current.chunked) {
            fulcrum::http::write_last_chunk(parser.trailers(), &current.forwarded);
          }
          out.messages.push_back(std::move(current));
          current = Message{};
          in_message = false;
          if (out.messages.back().upgrade) return out;  // the rest would be the tunnel's
          break;
        case Step::kError:
          check_terminal(parser);
          out.status = parser.error().status;
          out.reason = std::string(parser.error().reason);
          return out;
      }
      data.remove_prefix(consumed);
      if (step == Step::kNeedMore) break;
    }
  }
  const bool idle = parser.idle();
  out.finish = parser.finish();
  check(idle ? out.finish == Step::kDone : out.finish == Step::kError);
  if (out.finish == Step::kError) {
    check(parser.error().status == 400);
  }
  return out;
}

// A forwarded request must parse again to the same request.
void check_round_trip(const Message& m) {
  RequestParser parser;
  std::string_view data = m.forwarded;
  std::string body;
  bool head = false;
  for (;;) {
    size_t consumed = 0;
    const Step step = parser.feed(data, &consumed);
    check(step != Step::kError && step != Step::kNeedMore);
    if (step == Step::kHead) {
      const RequestHead& h = parser.head();
      check(h.method_text == m.method_text && h.path == m.path && h.host == m.host);
      check(h.chunked == m.chunked && h.content_length == m.content_length);
      check(h.upgrade == m.upgrade && h.version_minor == 1);
      head = true;
    }
    if (step == Step::kBody) body.append(parser.body());
    data.remove_prefix(consumed);
    if (step == Step::kDone) break;
  }
  check(head && body == m.body && data.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = static_cast<size_t>(data[0]) * (input.size() + 1) / 256;
  const Outcome split = run(input, cut);
  const Outcome whole = run(input, input.size());
  check(split == whole);
  for (const Message& m : whole.messages) check_round_trip(m);
  return 0;
}
