// RequestParser on valid traffic: fields, pipelining, body streaming, keep-alive, Expect,
// upgrade, and the promise that the split of the input into reads never changes the outcome.
#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "unit/http/http_test_util.h"

namespace fulcrum::http {
namespace {

using testing::every_byte;
using testing::OwnedHeader;
using testing::parse_requests;
using testing::RequestRun;

constexpr std::string_view kGet =
    "GET /index.html?q=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "User-Agent: curl/8.0\r\n"
    "Accept: */*\r\n"
    "\r\n";

TEST(HttpRequestParserTest, SimpleGet) {
  RequestParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(kGet, &consumed), Step::kHead);
  EXPECT_EQ(consumed, kGet.size());
  const RequestHead& h = parser.head();
  EXPECT_EQ(h.method, Method::kGet);
  EXPECT_EQ(h.method_text, "GET");
  EXPECT_EQ(h.target, "/index.html?q=1");
  EXPECT_EQ(h.path, "/index.html?q=1");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.host, "example.com");
  ASSERT_EQ(h.headers.size(), 3u);
  EXPECT_EQ(h.headers[1].name, "User-Agent");
  EXPECT_EQ(h.headers[1].value, "curl/8.0");
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.chunked);
  EXPECT_FALSE(h.content_length.has_value());
  EXPECT_FALSE(h.has_body());
  EXPECT_FALSE(h.expect_continue);
  EXPECT_FALSE(h.upgrade);
  EXPECT_FALSE(parser.idle());
  ASSERT_EQ(parser.feed("", &consumed), Step::kDone);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(parser.idle());
  EXPECT_EQ(parser.feed("", &consumed), Step::kNeedMore);
  EXPECT_TRUE(parser.idle());
}

TEST(HttpRequestParserTest, FieldValuesAreTrimmedAndKeepInnerSpacesAndObsText) {
  const RequestRun run = parse_requests(
      "GET / HTTP/1.1\r\nHost:example.com\r\nX-A: \t a  b \t\r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n");
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].headers,
            (std::vector<OwnedHeader>{
                {"Host", "example.com"}, {"X-A", "a  b"}, {"X-B", ""}, {"X-C", "caf\xc3\xa9"}}));
}

TEST(HttpRequestParserTest, PipelinedRequestsInOneBuffer) {
  const std::string input = std::string(kGet) +
                            "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
                            "DELETE /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  RequestParser parser;
  std::string_view data = input;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(data, &consumed), Step::kHead);
  EXPECT_EQ(consumed, kGet.size());  // the next requests are not touched
  data.remove_prefix(consumed);
  ASSERT_EQ(parser.feed(data, &consumed), Step::kDone);
  EXPECT_EQ(consumed, 0u);
  ASSERT_EQ(parser.feed(data, &consumed), Step::kHead);
  EXPECT_EQ(parser.head().method, Method::kPost);
  data.remove_prefix(consumed);
  ASSERT_EQ(parser.feed(data, &consumed), Step::kBody);
  EXPECT_EQ(parser.body(), "hello");
  EXPECT_EQ(parser.body().data(), data.data());  // a view into the caller's bytes, not a copy
  data.remove_prefix(consumed);
  ASSERT_EQ(parser.feed(data, &consumed), Step::kDone);
  EXPECT_EQ(consumed, 0u);
  ASSERT_EQ(parser.feed(data, &consumed), Step::kHead);
  EXPECT_EQ(parser.head().method, Method::kDelete);
  EXPECT_FALSE(parser.head().keep_alive);
  data.remove_prefix(consumed);
  EXPECT_TRUE(data.empty());
  ASSERT_EQ(parser.feed(data, &consumed), Step::kDone);

  const RequestRun run = parse_requests(input);
  ASSERT_EQ(run.messages.size(), 3u);
  EXPECT_EQ(run.messages[1].body, "hello");
}

// The outcome must not depend on how the bytes were split into reads.
void expect_split_invariant(std::string_view input, const Limits& limits = Limits()) {
  const RequestRun whole = parse_requests(input, {}, limits, /*eof=*/true);
  EXPECT_EQ(parse_requests(input, every_byte(input), limits, true), whole) << "byte by byte";
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    ASSERT_EQ(parse_requests(input, {cut}, limits, true), whole) << "cut at " << cut;
  }
}

TEST(HttpRequestParserTest, SplitAtEveryOffsetGivesTheSameResult) {
  const std::string mixed =
      "\r\n"  // an empty line before a request line is ignored
      "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
      "PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
      "GET /c HTTP/1.0\r\n\r\n"
      "GET /d HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
      "tunnel bytes";
  const RequestRun whole = parse_requests(mixed);
  ASSERT_FALSE(whole.error) << whole.reason;
  ASSERT_EQ(whole.messages.size(), 4u);
  EXPECT_EQ(whole.messages[0].body, "hello world");
  EXPECT_EQ(whole.messages[1].body, "hello world");
  EXPECT_EQ(whole.messages[1].trailers,
            (std::vector<OwnedHeader>{{"X-Checksum", "abc"}, {"X-Other", "1"}}));
  EXPECT_EQ(whole.messages[2].version_minor, 0);
  EXPECT_TRUE(whole.messages[3].upgrade);
  EXPECT_EQ(whole.leftover, "tunnel bytes");
  expect_split_invariant(mixed);
  expect_split_invariant(kGet);
}

TEST(HttpRequestParserTest, ContentLengthBodyStreamsInPieces) {
  RequestParser parser;
  size_t consumed = 0;
  const std::string_view head = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
  ASSERT_EQ(parser.feed(head, &consumed), Step::kHead);
  EXPECT_EQ(parser.head().content_length, 10u);
  EXPECT_TRUE(parser.head().has_body());
  EXPECT_EQ(parser.feed("", &consumed), Step::kNeedMore);
  ASSERT_EQ(parser.feed("0123", &consumed), Step::kBody);
  EXPECT_EQ(parser.body(), "0123");
  EXPECT_EQ(consumed, 4u);
  EXPECT_EQ(parser.feed("", &consumed), Step::kNeedMore);
  // The rest of the body and the start of the next request arrive together.
  const std::string_view more = "456789GET / HTTP/1.1\r\n";
  ASSERT_EQ(parser.feed(more, &consumed), Step::kBody);
  EXPECT_EQ(parser.body(), "456789");
  EXPECT_EQ(consumed, 6u);
  ASSERT_EQ(parser.feed(more.substr(6), &consumed), Step::kDone);
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(parser.feed(more.substr(6), &consumed), Step::kNeedMore);
  EXPECT_EQ(consumed, more.size() - 6);
}

TEST(HttpRequestParserTest, ChunkedBodyIsDeChunkedAndExtensionsAreDropped) {
  RequestParser parser;
  size_t consumed = 0;
  const std::string_view head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_EQ(parser.feed(head, &consumed), Step::kHead);
  EXPECT_TRUE(parser.head().chunked);
  EXPECT_FALSE(parser.head().content_length.has_value());
  std::string_view data =
      "4;name=\"quoted;value\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.";
  std::string body;
  for (;;) {
    const Step step = parser.feed(data, &consumed);
    if (step == Step::kBody) body.append(parser.body());
    data.remove_prefix(consumed);
    if (step == Step::kNeedMore) break;
    ASSERT_EQ(step, Step::kBody);
  }
  EXPECT_EQ(body, "Wikipedia in\r\n\r\nchunks.");
  ASSERT_EQ(parser.feed("\r\n0\r\nExpires: never\r\n\r\n", &consumed), Step::kDone);
  ASSERT_EQ(parser.trailers().size(), 1u);
  EXPECT_EQ(parser.trailers()[0].name, "Expires");
  EXPECT_EQ(parser.trailers()[0].value, "never");
}

TEST(HttpRequestParserTest, ChunkedWithoutTrailers) {
  const RequestRun run = parse_requests(
      "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].body, "abc");
  EXPECT_TRUE(run.messages[0].trailers.empty());
}

TEST(HttpRequestParserTest, KeepAliveByVersionAndConnection) {
  struct Case {
    std::string_view version;
    std::string_view connection;  // empty: no Connection header
    bool keep_alive;
  };
  const Case cases[] = {
      {"1.1", "", true},
      {"1.1", "close", false},
      {"1.1", "Close", false},
      {"1.1", "keep-alive", true},
      {"1.1", "keep-alive, close", false},
      {"1.0", "", false},
      {"1.0", "keep-alive", true},
      {"1.0", "Keep-Alive", true},
      {"1.0", "keep-alive, close", false},
      {"1.0", "close", false},
  };
  for (const Case& c : cases) {
    std::string input = "GET / HTTP/" + std::string(c.version) + "\r\nHost: a\r\n";
    if (!c.connection.empty()) input += "Connection: " + std::string(c.connection) + "\r\n";
    input += "\r\n";
    const RequestRun run = parse_requests(input);
    ASSERT_EQ(run.messages.size(), 1u) << input;
    EXPECT_EQ(run.messages[0].keep_alive, c.keep_alive) << input;
  }
}

TEST(HttpRequestParserTest, ConnectionTokensAreCollected) {
  const RequestRun run = parse_requests(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo\r\n"
      "Connection: x-bar\r\n\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].connection_tokens,
            (std::vector<std::string>{"keep-alive", "X-Foo", "x-bar"}));
}

TEST(HttpRequestParserTest, HttpTen) {
  const RequestRun run = parse_requests("GET /old HTTP/1.0\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_FALSE(run.error) << run.reason;
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].version_minor, 0);
  EXPECT_EQ(run.messages[0].host, "");  // no Host is fine in HTTP/1.0
  EXPECT_EQ(run.messages[0].body, "ok");
}

TEST(HttpRequestParserTest, ExpectContinue) {
  RequestParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed("POST /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                        "Content-Length: 3\r\n\r\n",
                        &consumed),
            Step::kHead);
  EXPECT_TRUE(parser.head().expect_continue);
  // The proxy answers 100 Continue (or the upstream does); the body follows later.
  EXPECT_EQ(parser.feed("", &consumed), Step::kNeedMore);
  ASSERT_EQ(parser.feed("abc", &consumed), Step::kBody);
  ASSERT_EQ(parser.feed("", &consumed), Step::kDone);

  // RFC 9110 §10.1.1: ignored in an HTTP/1.0 request; other expectations are not 100-continue.
  RequestRun run = parse_requests("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_FALSE(run.messages[0].expect_continue);
  run = parse_requests("POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\n\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_FALSE(run.messages[0].expect_continue);
}

TEST(HttpRequestParserTest, WebSocketUpgradeLeavesTunnelBytesUnconsumed) {
  const std::string_view input =
      "GET /chat HTTP/1.1\r\n"
      "Host: server.example.com\r\n"
      "Upgrade: websocket\r\n"
      "Connection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "\r\n"
      "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
  RequestParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(input, &consumed), Step::kHead);
  const size_t head_size = consumed;
  EXPECT_TRUE(parser.head().upgrade);
  EXPECT_EQ(parser.head().upgrade_protocol, "websocket");
  ASSERT_EQ(parser.feed(input.substr(head_size), &consumed), Step::kDone);
  EXPECT_EQ(consumed,
            0u);  // the frame after the head belongs to the tunnel (if the upstream says 101)

  // Upgrade without "Connection: upgrade" is not an upgrade (and Connection: upgrade alone
  // neither).
  RequestRun run = parse_requests("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_FALSE(run.messages[0].upgrade);
  run = parse_requests("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_FALSE(run.messages[0].upgrade);
}

TEST(HttpRequestParserTest, UpgradeDeclinedContinuesAsHttp) {
  RequestParser parser;
  const std::string input =
      "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string_view data = input;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(data, &consumed), Step::kHead);
  EXPECT_TRUE(parser.head().upgrade);
  data.remove_prefix(consumed);
  ASSERT_EQ(parser.feed(data, &consumed), Step::kDone);
  // The upstream answered 200, not 101: the proxy carries on parsing.
  ASSERT_EQ(parser.feed(data, &consumed), Step::kHead);
  EXPECT_EQ(parser.head().target, "/next");
}

TEST(HttpRequestParserTest, AbsoluteFormTargetGivesHostAndPath) {
  struct Case {
    std::string_view target, host, path;
  };
  const Case cases[] = {
      {"http://api.example.com:8080/v1/x?y=1", "api.example.com:8080", "/v1/x?y=1"},
      {"HTTPS://Example.COM", "Example.COM", "/"},
      {"http://example.com?q", "example.com", "/?q"},
      {"http://[::1]:80/", "[::1]:80", "/"},
  };
  for (const Case& c : cases) {
    // The Host header is ignored for routing when the target has an authority (RFC 9112 §3.2.2).
    const std::string input =
        "GET " + std::string(c.target) + " HTTP/1.1\r\nHost: other.example\r\n\r\n";
    const RequestRun run = parse_requests(input);
    ASSERT_FALSE(run.error) << input << run.reason;
    ASSERT_EQ(run.messages.size(), 1u);
    EXPECT_EQ(run.messages[0].host, c.host);
    EXPECT_EQ(run.messages[0].path, c.path);
    EXPECT_EQ(run.messages[0].target, c.target);
  }
}

TEST(HttpRequestParserTest, OptionsAsteriskAndOtherKnownMethods) {
  RequestRun run = parse_requests("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].method, Method::kOptions);
  EXPECT_EQ(run.messages[0].path, "*");
  run = parse_requests("PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].method, Method::kOther);
  EXPECT_EQ(run.messages[0].method_text, "PROPFIND");
  for (std::string_view m : {"HEAD", "PUT", "DELETE", "PATCH", "TRACE"}) {
    run = parse_requests(std::string(m) + " / HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(run.messages.size(), 1u) << m;
    EXPECT_EQ(method_name(run.messages[0].method), m);
  }
}

TEST(HttpRequestParserTest, FinishBetweenAndInsideRequests) {
  // Clean close between requests.
  RequestRun run = parse_requests(kGet, {}, Limits(), /*eof=*/true);
  EXPECT_EQ(run.finish_step, Step::kDone);
  EXPECT_EQ(run.messages.size(), 1u);
  EXPECT_FALSE(run.error);
  // Close inside a head, a body, a trailer section: a truncated request.
  for (std::string_view input :
       {std::string_view("GET / HTTP/1.1\r\nHost"),
        std::string_view("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"),
        std::string_view("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "1\r\na\r\n0\r\nX: y\r\n")}) {
    run = parse_requests(input, {}, Limits(), true);
    EXPECT_EQ(run.finish_step, Step::kError) << input;
    EXPECT_EQ(run.status, 400) << input;
  }
}

TEST(HttpRequestParserTest, StorageIsReusedAcrossMessages) {
  // Heads of one connection reuse the parser's buffers: after a first message has sized them,
  // same-sized messages keep their head bytes at the same address.
  RequestParser parser;
  size_t consumed = 0;
  const char* first = nullptr;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(parser.feed(kGet, &consumed), Step::kHead);
    if (first == nullptr) first = parser.head().method_text.data();
    EXPECT_EQ(parser.head().method_text.data(), first);
    ASSERT_EQ(parser.feed("", &consumed), Step::kDone);
  }
}

}  // namespace
}  // namespace fulcrum::http
