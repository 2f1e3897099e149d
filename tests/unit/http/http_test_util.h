// Test drivers for the HTTP parsers: feed an input cut at given offsets, the way the proxy does
// (call feed() until kNeedMore, dropping what each step consumed), and record everything the
// parser reported as owned values, so runs over different cuts can be compared with ==.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/request_parser.h"
#include "http/response_parser.h"

namespace fulcrum::http::testing {

struct OwnedHeader {
  std::string name;
  std::string value;
  bool operator==(const OwnedHeader&) const = default;
};

inline std::vector<OwnedHeader> own(std::span<const Header> headers) {
  std::vector<OwnedHeader> out;
  for (const Header& h : headers) out.push_back({std::string(h.name), std::string(h.value)});
  return out;
}

inline std::vector<std::string> own(std::span<const std::string_view> tokens) {
  return std::vector<std::string>(tokens.begin(), tokens.end());
}

struct RequestRecord {
  Method method = Method::kGet;
  std::string method_text, target, path, host;
  uint8_t version_minor = 0;
  std::vector<OwnedHeader> headers;
  bool keep_alive = false, chunked = false, expect_continue = false, upgrade = false;
  std::optional<uint64_t> content_length;
  std::string upgrade_protocol;
  std::vector<std::string> connection_tokens;
  std::string body;
  std::vector<OwnedHeader> trailers;
  bool operator==(const RequestRecord&) const = default;
};

struct ResponseRecord {
  uint16_t status = 0;
  std::string reason;
  uint8_t version_minor = 0;
  std::vector<OwnedHeader> headers;
  bool keep_alive = false, chunked = false, body_until_close = false, no_body = false;
  bool upgrade = false;
  std::optional<uint64_t> content_length;
  std::string upgrade_protocol;
  std::vector<std::string> connection_tokens;
  std::string body;
  std::vector<OwnedHeader> trailers;
  bool operator==(const ResponseRecord&) const = default;
};

template <class Record>
struct Run {
  std::vector<Record> messages;  // complete messages, in order
  bool error = false;
  uint16_t status = 0;
  std::string reason;
  bool in_message = false;  // a head was reported but not its kDone
  // Bytes not consumed when the run stopped after an upgrade (the tunnel's first bytes).
  std::string leftover;
  std::optional<Step> finish_step;  // what finish() said, when the run ended with end of stream
  bool operator==(const Run&) const = default;
};
using RequestRun = Run<RequestRecord>;
using ResponseRun = Run<ResponseRecord>;

inline RequestRecord record(const RequestHead& h) {
  RequestRecord r;
  r.method = h.method;
  r.method_text = std::string(h.method_text);
  r.target = std::string(h.target);
  r.path = std::string(h.path);
  r.host = std::string(h.host);
  r.version_minor = h.version_minor;
  r.headers = own(h.headers);
  r.keep_alive = h.keep_alive;
  r.chunked = h.chunked;
  r.expect_continue = h.expect_continue;
  r.upgrade = h.upgrade;
  r.content_length = h.content_length;
  r.upgrade_protocol = std::string(h.upgrade_protocol);
  r.connection_tokens = own(h.connection_tokens);
  return r;
}

inline ResponseRecord record(const ResponseHead& h) {
  ResponseRecord r;
  r.status = h.status;
  r.reason = std::string(h.reason);
  r.version_minor = h.version_minor;
  r.headers = own(h.headers);
  r.keep_alive = h.keep_alive;
  r.chunked = h.chunked;
  r.body_until_close = h.body_until_close;
  r.no_body = h.no_body;
  r.upgrade = h.upgrade;
  r.content_length = h.content_length;
  r.upgrade_protocol = std::string(h.upgrade_protocol);
  r.connection_tokens = own(h.connection_tokens);
  return r;
}

// What the response parser expects for each final response (1xx do not use one up); GET without
// upgrade once the list runs out.
struct Expectation {
  Method method = Method::kGet;
  bool upgrade = false;
};

inline void expect_next(RequestParser&, const std::vector<Expectation>&, size_t) {}
inline void expect_next(ResponseParser& p, const std::vector<Expectation>& e, size_t i) {
  const Expectation x = i < e.size() ? e[i] : Expectation{};
  p.expect(x.method, x.upgrade);
}

inline bool stops_as_tunnel(const RequestHead& h) {
  return h.upgrade;
}
inline bool stops_as_tunnel(const ResponseHead& h) {
  return h.upgrade;
}
inline bool counts_as_final(const RequestHead&) {
  return true;
}
inline bool counts_as_final(const ResponseHead& h) {
  return !h.informational();
}

// Feeds `input` cut at `cuts` (ascending offsets) to `parser`. Stops at an error, or after the
// kDone of a message that upgrades the connection (leftover = the rest of the input). With `eof`
// calls finish() at the end.
template <class Parser, class Record>
Run<Record> drive(Parser& parser, std::string_view input, const std::vector<size_t>& cuts, bool eof,
                  const std::vector<Expectation>& expectations = {}) {
  Run<Record> run;
  Record current;
  size_t finals = 0;
  expect_next(parser, expectations, finals);
  size_t start = 0;
  for (size_t c = 0; c <= cuts.size(); ++c) {
    const size_t end = c < cuts.size() ? cuts[c] : input.size();
    std::string_view piece = input.substr(start, end - start);
    start = end;
    // A fresh copy per piece, so that views into it are caught if kept too long (ASan).
    std::string copy(piece);
    std::string_view data = copy;
    for (;;) {
      size_t consumed = 0;
      const Step step = parser.feed(data, &consumed);
      if (consumed > data.size()) {
        run.error = true;
        run.reason = "consumed more than given";
        return run;
      }
      if (step == Step::kBody) current.body.append(parser.body());
      data.remove_prefix(consumed);
      if (step == Step::kNeedMore) break;
      if (step == Step::kError) {
        run.error = true;
        run.status = parser.error().status;
        run.reason = std::string(parser.error().reason);
        run.in_message = false;
        return run;
      }
      if (step == Step::kHead) {
        current = record(parser.head());
        run.in_message = true;
      }
      if (step == Step::kDone) {
        current.trailers = own(parser.trailers());
        run.messages.push_back(std::move(current));
        current = Record{};
        run.in_message = false;
        if (counts_as_final(parser.head())) expect_next(parser, expectations, ++finals);
        if (stops_as_tunnel(parser.head())) {
          run.leftover = std::string(data);
          run.leftover.append(input.substr(start));
          return run;
        }
      }
    }
  }
  if (eof) {
    const Step step = parser.finish();
    run.finish_step = step;
    if (step == Step::kDone && run.in_message) {
      current.trailers = own(parser.trailers());
      run.messages.push_back(std::move(current));
      run.in_message = false;
    } else if (step == Step::kError) {
      run.error = true;
      run.status = parser.error().status;
      run.reason = std::string(parser.error().reason);
      run.in_message = false;
    }
  }
  return run;
}

inline RequestRun parse_requests(std::string_view input, const std::vector<size_t>& cuts = {},
                                 const Limits& limits = Limits(), bool eof = false) {
  RequestParser parser(limits);
  return drive<RequestParser, RequestRecord>(parser, input, cuts, eof);
}

inline ResponseRun parse_responses(std::string_view input,
                                   const std::vector<Expectation>& expectations = {},
                                   const std::vector<size_t>& cuts = {}, bool eof = false,
                                   const Limits& limits = Limits()) {
  ResponseParser parser(limits);
  return drive<ResponseParser, ResponseRecord>(parser, input, cuts, eof, expectations);
}

// Cuts after every byte.
inline std::vector<size_t> every_byte(std::string_view input) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < input.size(); ++i) cuts.push_back(i);
  return cuts;
}

}  // namespace fulcrum::http::testing
