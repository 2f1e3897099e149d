// ResponseParser: bodies framed by the request method and status, interim and upgrade responses,
// body until close, and every rejection (all 502).
#include "http/response_parser.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "unit/http/http_test_util.h"

namespace fulcrum::http {
namespace {

using testing::every_byte;
using testing::Expectation;
using testing::OwnedHeader;
using testing::parse_responses;
using testing::ResponseRun;
using namespace std::string_literals;

void expect_split_invariant(std::string_view input, const std::vector<Expectation>& expect,
                            bool eof) {
  const ResponseRun whole = parse_responses(input, expect, {}, eof);
  EXPECT_EQ(parse_responses(input, expect, every_byte(input), eof), whole) << "byte by byte";
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    ASSERT_EQ(parse_responses(input, expect, {cut}, eof), whole) << "cut at " << cut;
  }
}

TEST(HttpResponseParserTest, SimpleResponseWithContentLength) {
  ResponseParser parser;
  parser.expect(Method::kGet, false);
  size_t consumed = 0;
  const std::string_view input =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
  ASSERT_EQ(parser.feed(input, &consumed), Step::kHead);
  const ResponseHead& h = parser.head();
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.chunked);
  EXPECT_FALSE(h.body_until_close);
  EXPECT_FALSE(h.no_body);
  EXPECT_FALSE(h.upgrade);
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers[0].name, "Content-Type");
  ASSERT_EQ(parser.feed(input.substr(consumed), &consumed), Step::kBody);
  EXPECT_EQ(parser.body(), "hello");
  ASSERT_EQ(parser.feed("", &consumed), Step::kDone);
  EXPECT_TRUE(parser.idle());
}

// reset() forgets a message cut short or an error: the parser reads the next response as a new
// one would (HTTP/2 streams reuse their parser this way).
TEST(HttpResponseParserTest, ResetForgetsAPartialMessageAndAnError) {
  ResponseParser parser;
  size_t consumed = 0;
  const std::string_view full = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  ASSERT_EQ(parser.feed("HTTP/1.1 200 OK\r\nContent-Le", &consumed), Step::kNeedMore);
  EXPECT_FALSE(parser.idle());
  parser.reset();
  EXPECT_TRUE(parser.idle());
  ASSERT_EQ(parser.feed(full, &consumed), Step::kHead);
  EXPECT_EQ(parser.head().content_length, 2u);
  ASSERT_EQ(parser.feed(full.substr(consumed), &consumed), Step::kBody);
  EXPECT_EQ(parser.body(), "ok");  // mid-body now
  parser.reset();
  ASSERT_EQ(parser.feed("HTTP/1.1 20x OK\r\n\r\n", &consumed), Step::kError);
  ASSERT_EQ(parser.feed(full, &consumed), Step::kError);  // terminal until reset
  parser.reset();
  EXPECT_EQ(parser.error().status, 0);
  ASSERT_EQ(parser.feed(full, &consumed), Step::kHead);
  ASSERT_EQ(parser.feed(full.substr(consumed), &consumed), Step::kBody);
  ASSERT_EQ(parser.feed("", &consumed), Step::kDone);
  EXPECT_TRUE(parser.idle());
}

TEST(HttpResponseParserTest, ReasonPhraseMayBeEmptyOrMissing) {
  for (std::string_view status_line : {"HTTP/1.1 200 \r\n", "HTTP/1.1 200\r\n"}) {
    const ResponseRun run = parse_responses(std::string(status_line) + "Content-Length: 0\r\n\r\n");
    ASSERT_FALSE(run.error) << status_line << run.reason;
    EXPECT_EQ(run.messages.at(0).reason, "");
  }
  const ResponseRun run =
      parse_responses("HTTP/1.1 404 Not \t Found \xff\r\nContent-Length: 0\r\n\r\n");
  ASSERT_FALSE(run.error) << run.reason;
  EXPECT_EQ(run.messages.at(0).reason, "Not \t Found \xff");
}

TEST(HttpResponseParserTest, HeadResponseHasNoBodyWhateverItsLength) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const std::vector<Expectation> expect = {
      {Method::kHead, false}, {Method::kHead, false}, {Method::kGet, false}};
  const ResponseRun run = parse_responses(input, expect);
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 3u);
  EXPECT_TRUE(run.messages[0].no_body);
  EXPECT_EQ(run.messages[0].content_length, 1000u);  // forwarded as information
  EXPECT_EQ(run.messages[0].body, "");
  EXPECT_TRUE(run.messages[1].no_body);
  EXPECT_TRUE(run.messages[1].chunked);
  EXPECT_EQ(run.messages[2].body, "ok");
  expect_split_invariant(input, expect, false);
}

TEST(HttpResponseParserTest, NoContentAndNotModifiedHaveNoBody) {
  const std::string input =
      "HTTP/1.1 204 No Content\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nETag: \"x\"\r\n\r\n"
      "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
  const ResponseRun run = parse_responses(input);
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 4u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(run.messages[i].no_body) << i;
    EXPECT_TRUE(run.messages[i].keep_alive) << i;
    EXPECT_EQ(run.messages[i].body, "") << i;
  }
  EXPECT_EQ(run.messages[3].body, "x");
  expect_split_invariant(input, {}, false);
}

TEST(HttpResponseParserTest, BodyUntilClose) {
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>all of it";
  const ResponseRun run = parse_responses(input, {}, {}, /*eof=*/true);
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_TRUE(run.messages[0].body_until_close);
  EXPECT_FALSE(run.messages[0].keep_alive);
  EXPECT_EQ(run.messages[0].body, "<html>all of it");
  EXPECT_EQ(run.finish_step, Step::kDone);
  expect_split_invariant(input, {}, true);

  // HTTP/1.0 without Content-Length: the same.
  const ResponseRun old = parse_responses("HTTP/1.0 200 OK\r\n\r\nabc", {}, {}, true);
  ASSERT_EQ(old.messages.size(), 1u);
  EXPECT_TRUE(old.messages[0].body_until_close);
  EXPECT_EQ(old.messages[0].body, "abc");
}

TEST(HttpResponseParserTest, ChunkedResponseWithTrailers) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Digest\r\n\r\n"
      "a;ignored=yes\r\n0123456789\r\n1\r\n!\r\n0\r\nX-Digest: sha-256=abc\r\n\r\n";
  const ResponseRun run = parse_responses(input);
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_TRUE(run.messages[0].chunked);
  EXPECT_EQ(run.messages[0].body, "0123456789!");
  EXPECT_EQ(run.messages[0].trailers, (std::vector<OwnedHeader>{{"X-Digest", "sha-256=abc"}}));
  expect_split_invariant(input, {}, false);
}

TEST(HttpResponseParserTest, KeepAlive) {
  struct Case {
    std::string_view response;
    bool keep_alive;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true},
      {"HTTP/1.1 200 OK\r\n\r\n", false},  // until close
  };
  for (const Case& c : cases) {
    const ResponseRun run = parse_responses(c.response, {}, {}, true);
    ASSERT_EQ(run.messages.size(), 1u) << c.response;
    EXPECT_EQ(run.messages[0].keep_alive, c.keep_alive) << c.response;
  }
}

TEST(HttpResponseParserTest, ContinueThenFinalResponse) {
  const std::string input =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  // Interim responses do not use up the expectation: the final one is still a HEAD's answer.
  const ResponseRun run = parse_responses(input, {{Method::kPost, false}});
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 3u);
  EXPECT_EQ(run.messages[0].status, 100);
  EXPECT_TRUE(run.messages[0].no_body);
  EXPECT_EQ(run.messages[1].status, 103);
  EXPECT_EQ(run.messages[2].status, 201);
  EXPECT_EQ(run.messages[2].body, "ok");
  expect_split_invariant(input, {{Method::kPost, false}}, false);
}

TEST(HttpResponseParserTest, SwitchingProtocolsEndsHttp) {
  const std::string_view input =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello";
  ResponseParser parser;
  parser.expect(Method::kGet, /*upgrade_requested=*/true);
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(input, &consumed), Step::kHead);
  const size_t head_size = consumed;
  EXPECT_EQ(parser.head().status, 101);
  EXPECT_TRUE(parser.head().upgrade);
  EXPECT_EQ(parser.head().upgrade_protocol, "websocket");
  ASSERT_EQ(parser.feed(input.substr(head_size), &consumed), Step::kDone);
  EXPECT_EQ(consumed, 0u);  // the WebSocket frame is the tunnel's
  // No more HTTP on this connection.
  EXPECT_EQ(parser.feed(input.substr(head_size), &consumed), Step::kError);
  EXPECT_EQ(parser.error().status, 502);

  const ResponseRun run = parse_responses(input, {{Method::kGet, true}});
  EXPECT_EQ(run.leftover, "\x81\x05hello");
  expect_split_invariant(input, {{Method::kGet, true}}, false);
}

struct Reject {
  std::string name;
  std::string input;
  Expectation expect = Expectation{};
  bool eof = false;
  Limits limits = Limits();
};

std::string ok_with(std::string_view fields, std::string_view body = "") {
  return "HTTP/1.1 200 OK\r\n" + std::string(fields) + "\r\n" + std::string(body);
}
std::string chunked(std::string_view body) {
  return ok_with("Transfer-Encoding: chunked\r\n", body);
}
std::string status_line(std::string_view line) {
  return std::string(line) + "\r\nContent-Length: 0\r\n\r\n";
}

std::vector<Reject> rejects() {
  Limits tiny;
  tiny.max_header_bytes = 128;
  tiny.max_headers = 3;
  return {
      {"ContentLengthWithTransferEncoding",
       ok_with("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")},
      {"ContentLengthInvalid", ok_with("Content-Length: 1x\r\n", "a")},
      {"ContentLengthList", ok_with("Content-Length: 1, 1\r\n", "a")},
      {"ContentLengthRepeated", ok_with("Content-Length: 1\r\nContent-Length: 1\r\n", "a")},
      {"ContentLengthOverflow", ok_with("Content-Length: 99999999999999999999\r\n")},
      {"TransferEncodingNotChunked", ok_with("Transfer-Encoding: gzip\r\n", "abc"), {}, true},
      {"TransferEncodingCodingBeforeChunked",
       ok_with("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n")},
      {"TransferEncodingInHttp10",
       "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"ChunkSizeInvalid", chunked("xyz\r\nabc\r\n0\r\n\r\n")},
      {"ChunkSizeBareLf", chunked("3\nabc\r\n0\r\n\r\n")},
      {"MissingCrlfAfterChunkData", chunked("3\r\nabcXY0\r\n\r\n")},
      {"TrailerObsFold", chunked("0\r\nX: a\r\n\tb\r\n\r\n")},
      {"StatusLineBareLf", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"},
      {"FieldSpaceBeforeColon", ok_with("Content-Length : 0\r\n")},
      {"FieldObsFold", ok_with("X: a\r\n b\r\nContent-Length: 0\r\n")},
      {"FieldNul", ok_with("X: \0\r\nContent-Length: 0\r\n"s)},
      {"StatusTwoDigits", status_line("HTTP/1.1 20 OK")},
      {"StatusFourDigits", status_line("HTTP/1.1 2000 OK")},
      {"StatusBelow100", status_line("HTTP/1.1 099 Odd")},
      {"StatusAbove599", status_line("HTTP/1.1 600 Odd")},
      {"StatusNotDigits", status_line("HTTP/1.1 2x0 OK")},
      {"StatusNoSpaceBeforeReason", status_line("HTTP/1.1 200OK")},
      {"StatusLineLowercase", status_line("http/1.1 200 OK")},
      {"StatusLineDoubleSpace", status_line("HTTP/1.1  200 OK")},
      {"ReasonControlChar", status_line("HTTP/1.1 200 O\x01K")},
      {"Version20", status_line("HTTP/2.0 200 OK")},
      {"Version09", status_line("HTTP/0.9 200 OK")},
      {"EmptyLineBeforeStatusLine", "\r\n" + status_line("HTTP/1.1 200 OK")},
      {"NotHttp", "SSH-2.0-OpenSSH_9.2\r\n\r\n"},
      {"SwitchingWithoutUpgradeRequest",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"},
      {"SwitchingWithoutUpgradeField",
       "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
       {Method::kGet, true}},
      {"SwitchingWithoutConnectionUpgrade",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
       {Method::kGet, true}},
      {"HeadOverLimit", ok_with("X: " + std::string(200, 'v') + "\r\n"), {}, false, tiny},
      {"TooManyFields", ok_with("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"), {}, false, tiny},
      {"TruncatedBody", ok_with("Content-Length: 10\r\n", "abc"), {}, true},
      {"TruncatedChunkedBody", chunked("5\r\nab"), {}, true},
      {"TruncatedHead", "HTTP/1.1 200 OK\r\nContent-Le", {}, true},
  };
}

// gtest prints a failing case by its name, not its bytes.
void PrintTo(const Reject& c, std::ostream* os) {
  *os << c.name;
}

class HttpResponseRejectTest : public ::testing::TestWithParam<Reject> {};

TEST_P(HttpResponseRejectTest, RejectsWith502WhateverTheSplit) {
  const Reject& c = GetParam();
  const ResponseRun whole = parse_responses(c.input, {c.expect}, {}, c.eof, c.limits);
  ASSERT_TRUE(whole.error) << "accepted: " << c.name;
  EXPECT_EQ(whole.status, 502) << whole.reason;
  EXPECT_TRUE(whole.messages.empty());
  EXPECT_EQ(parse_responses(c.input, {c.expect}, every_byte(c.input), c.eof, c.limits), whole);
  for (size_t cut = 0; cut <= c.input.size(); ++cut) {
    ASSERT_EQ(parse_responses(c.input, {c.expect}, {cut}, c.eof, c.limits), whole)
        << "cut at " << cut;
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, HttpResponseRejectTest, ::testing::ValuesIn(rejects()),
                         [](const ::testing::TestParamInfo<Reject>& param_info) {
                           return param_info.param.name;
                         });

}  // namespace
}  // namespace fulcrum::http
