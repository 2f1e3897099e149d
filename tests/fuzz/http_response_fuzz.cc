// Fuzz target: ResponseParser over arbitrary bytes. The first input byte chooses where the rest is
// cut in two (as two reads) and, in its low bits, which request the responses answer (HEAD or
// GET, upgrade asked or not). The same bytes are also parsed in one piece. Aborts when:
//  - a step breaks its contract (see http_request_fuzz.cc);
//  - an error is not terminal or its status is not 502;
//  - a head breaks a validated property (no_body for HEAD/1xx/204/304, framing exclusivity,
//    101 only when asked);
//  - the two-piece and one-piece runs disagree in any way;
//  - a complete response, written back with write_response_head for an HTTP/1.1 client and
//    re-framed as response_framing() says, does not parse again to the same status and body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/response_parser.h"
#include "http/serialize.h"

namespace {

using fulcrum::http::Framing;
using fulcrum::http::Header;
using fulcrum::http::Limits;
using fulcrum::http::Method;
using fulcrum::http::ResponseHead;
using fulcrum::http::ResponseParser;
using fulcrum::http::Step;

void check(bool ok) {
  if (!ok) std::abort();
}

Limits fuzz_limits() {
  Limits limits;
  limits.max_header_bytes = 1024;
  limits.max_headers = 16;
  return limits;
}

struct Message {
  uint16_t status = 0;
  std::string reason, upgrade_protocol;
  uint8_t version_minor = 0;
  bool keep_alive = false, chunked = false, body_until_close = false, no_body = false;
  bool upgrade = false;
  std::optional<uint64_t> content_length;
  std::vector<std::string> headers;
  std::string body;
  std::vector<std::string> trailers;
  Framing framing = Framing::kNone;
  // Head written for an HTTP/1.1 client + re-framed body. Chunk boundaries follow the reads,
  // so this is left out of the comparison between runs.
  std::string forwarded;
  bool operator==(const Message& o) const {
    return status == o.status && reason == o.reason && upgrade_protocol == o.upgrade_protocol &&
           version_minor == o.version_minor && keep_alive == o.keep_alive && chunked == o.chunked &&
           body_until_close == o.body_until_close && no_body == o.no_body && upgrade == o.upgrade &&
           content_length == o.content_length && headers == o.headers && body == o.body &&
           trailers == o.trailers && framing == o.framing;
  }
};

struct Outcome {
  std::vector<Message> messages;
  uint16_t status = 0;
  std::string reason;
  std::optional<Step> finish;
  bool operator==(const Outcome&) const = default;
};

struct Request {
  Method method;
  bool upgrade;
};

std::vector<std::string> own(std::span<const Header> headers) {
  std::vector<std::string> out;
  for (const Header& h : headers) out.push_back(std::string(h.name) + ":" + std::string(h.value));
  return out;
}

void check_head(const ResponseHead& h, const Request& request, const Limits& limits) {
  check(h.status >= 100 && h.status <= 599 && h.version_minor <= 1);
  check(h.headers.size() <= limits.max_headers);
  check(!(h.chunked && h.content_length.has_value()));
  const bool no_body =
      request.method == Method::kHead || h.status < 200 || h.status == 204 || h.status == 304;
  check(h.no_body == no_body);
  check(h.body_until_close == (!no_body && !h.chunked && !h.content_length.has_value()));
  check(!(h.body_until_close && h.keep_alive));
  check(!h.upgrade || (h.status == 101 && request.upgrade));
}

Outcome run(std::string_view input, size_t cut, const Request& request) {
  const Limits limits = fuzz_limits();
  ResponseParser parser(limits);
  parser.expect(request.method, request.upgrade);
  Outcome out;
  Message current;
  bool in_message = false;
  const std::string_view pieces[2] = {input.substr(0, cut), input.substr(cut)};
  for (std::string_view piece : pieces) {
    std::string copy(piece);
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
        case Step::kHead: {
          check(consumed > 0);
          const ResponseHead& h = parser.head();
          check_head(h, request, limits);
          current = Message{};
          current.status = h.status;
          current.reason = std::string(h.reason);
          current.upgrade_protocol = std::string(h.upgrade_protocol);
          current.version_minor = h.version_minor;
          current.keep_alive = h.keep_alive;
          current.chunked = h.chunked;
          current.body_until_close = h.body_until_close;
          current.no_body = h.no_body;
          current.upgrade = h.upgrade;
          current.content_length = h.content_length;
          current.headers = own(h.headers);
          current.framing = fulcrum::http::response_framing(h, 1);
          fulcrum::http::write_response_head(h, {}, &current.forwarded);
          in_message = true;
          break;
        }
        case Step::kBody: {
          const std::string_view body = parser.body();
          check(in_message && !current.no_body && !body.empty() && body.size() <= consumed);
          check(body.data() + body.size() == data.data() + consumed);
          current.body.append(body);
          if (current.framing == Framing::kChunked) {
            fulcrum::http::write_chunk(body, &current.forwarded);
          } else {
            current.forwarded.append(body);
          }
          break;
        }
        case Step::kDone:
          check(in_message);
          if (current.content_length.has_value() && !current.no_body) {
            check(current.body.size() == *current.content_length);
          }
          current.trailers = own(parser.trailers());
          if (current.framing == Framing::kChunked) {
            fulcrum::http::write_last_chunk(parser.trailers(), &current.forwarded);
          }
          out.messages.push_back(std::move(current));
          current = Message{};
          in_message = false;
          if (out.messages.back().upgrade) {
            // HTTP is over on this connection.
            size_t ignored = 0;
            check(parser.feed("HTTP/1.1 200 OK\r\n\r\n", &ignored) == Step::kError);
            return out;
          }
          break;
        case Step::kError: {
          const uint16_t status = parser.error().status;
          check(status == 502 && !parser.error().reason.empty());
          size_t ignored = 1;
          check(parser.feed("HTTP/1.1 200 OK\r\n\r\n", &ignored) == Step::kError && ignored == 0);
          check(parser.finish() == Step::kError);
          out.status = status;
          out.reason = std::string(parser.error().reason);
          return out;
        }
      }
      data.remove_prefix(consumed);
      if (step == Step::kNeedMore) break;
    }
  }
  const bool until_close = in_message && current.body_until_close;
  const bool idle = parser.idle();
  out.finish = parser.finish();
  if (out.finish == Step::kDone && in_message) {
    check(until_close);
    current.trailers = own(parser.trailers());
    if (current.framing == Framing::kChunked) {
      fulcrum::http::write_last_chunk(parser.trailers(), &current.forwarded);
    }
    out.messages.push_back(std::move(current));
  } else if (out.finish == Step::kError) {
    check(!idle && parser.error().status == 502);
  }
  return out;
}

// A forwarded response must parse again to the same response.
void check_round_trip(const Message& m, const Request& request) {
  ResponseParser parser;
  parser.expect(request.method, request.upgrade);
  std::string_view data = m.forwarded;
  std::string body;
  bool head = false;
  for (;;) {
    size_t consumed = 0;
    const Step step = parser.feed(data, &consumed);
    check(step != Step::kError);
    if (step == Step::kNeedMore) {
      check(m.framing == Framing::kUntilClose && parser.finish() == Step::kDone);
      break;
    }
    if (step == Step::kHead) {
      const ResponseHead& h = parser.head();
      check(h.status == m.status && h.reason == m.reason && h.no_body == m.no_body);
      check(h.upgrade == m.upgrade && h.content_length == m.content_length);
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
  const Request request{(data[0] & 1) != 0 ? Method::kHead : Method::kGet, (data[0] & 2) != 0};
  const Outcome split = run(input, cut, request);
  const Outcome whole = run(input, input.size(), request);
  check(split == whole);
  for (const Message& m : whole.messages) check_round_trip(m, request);
  return 0;
}
