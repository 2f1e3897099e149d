// Serialisation: exact bytes of forwarded heads, hop-by-hop removal, framing rewrite, chunked
// re-framing; and a parse → write → parse round trip.
#include "http/serialize.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/request_parser.h"
#include "http/response_parser.h"
#include "unit/http/http_test_util.h"

namespace fulcrum::http {
namespace {

using testing::parse_requests;
using testing::parse_responses;

// Parses one request head and writes it for upstream.
std::string forward_request(std::string_view input, const HeaderEdits& edits = {}) {
  RequestParser parser;
  size_t consumed = 0;
  if (parser.feed(input, &consumed) != Step::kHead) return "<error>";
  std::string out;
  write_request_head(parser.head(), edits, &out);
  return out;
}

std::string forward_response(std::string_view input, const ResponseWriteOptions& options = {},
                             Method method = Method::kGet, bool upgrade = false) {
  ResponseParser parser;
  parser.expect(method, upgrade);
  size_t consumed = 0;
  if (parser.feed(input, &consumed) != Step::kHead) return "<error>";
  std::string out;
  write_response_head(parser.head(), options, &out);
  return out;
}

TEST(HttpSerializeTest, RequestHeadDropsHopByHopAndWritesHostFirst) {
  const std::string out = forward_request(
      "GET /a?b=1 HTTP/1.1\r\n"
      "User-Agent: t\r\n"
      "Connection: keep-alive, X-Private\r\n"
      "Keep-Alive: timeout=5\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "TE: trailers\r\n"
      "Trailer: X-Sum\r\n"
      "Upgrade: websocket\r\n"
      "X-Private: secret\r\n"
      "Host: example.com\r\n"
      "Accept: */*\r\n"
      "\r\n");
  EXPECT_EQ(out,
            "GET /a?b=1 HTTP/1.1\r\n"
            "Host: example.com\r\n"
            "User-Agent: t\r\n"
            "Accept: */*\r\n"
            "\r\n");
}

TEST(HttpSerializeTest, RequestHeadEditsAndContentLength) {
  const std::string_view remove[] = {"x-forwarded-for"};
  const Header add[] = {{"X-Forwarded-For", "10.0.0.1, 192.0.2.7"}, {"X-Request-Id", "abc"}};
  const std::string out = forward_request(
      "POST /submit HTTP/1.0\r\n"
      "Host: example.com:8080\r\n"
      "X-Forwarded-For: 10.0.0.1\r\n"
      "Content-Length: 7\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n",
      HeaderEdits{remove, add, {}});
  EXPECT_EQ(out,
            "POST /submit HTTP/1.1\r\n"
            "Host: example.com:8080\r\n"
            "Content-Type: text/plain\r\n"
            "Content-Length: 7\r\n"
            "X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"
            "X-Request-Id: abc\r\n"
            "\r\n");
}

TEST(HttpSerializeTest, RequestWithoutHostGetsTheDefaultHost) {
  // HTTP/1.0 allows no Host; the HTTP/1.1 request upstream carries the caller's default.
  const HeaderEdits edits{{}, {}, "10.0.0.5:8080"};
  EXPECT_EQ(forward_request("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", edits),
            "GET / HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nAccept: */*\r\n\r\n");
  // A Host the client sent wins (an empty one is replaced like an absent one).
  EXPECT_EQ(forward_request("GET / HTTP/1.0\r\nHost: a.example\r\n\r\n", edits),
            "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
}

TEST(HttpSerializeTest, ConnectionCannotStripFraming) {
  // "Connection: content-length" would make a naive proxy drop the length it forwards a body
  // with; the length is written from the validated head instead.
  const std::string out = forward_request(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, Host\r\n"
      "Content-Length: 2\r\n\r\n");
  EXPECT_EQ(out, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n");
}

TEST(HttpSerializeTest, ChunkedRequestIsReframed) {
  RequestParser parser;
  size_t consumed = 0;
  std::string_view in =
      "PUT /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;secret-ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\nConnection: x\r\n\r\n";
  ASSERT_EQ(parser.feed(in, &consumed), Step::kHead);
  in.remove_prefix(consumed);
  EXPECT_EQ(request_framing(parser.head()), Framing::kChunked);
  std::string out;
  write_request_head(parser.head(), {}, &out);
  for (;;) {
    const Step step = parser.feed(in, &consumed);
    in.remove_prefix(consumed);
    if (step == Step::kBody) write_chunk(parser.body(), &out);
    if (step == Step::kDone) {
      write_last_chunk(parser.trailers(), &out);
      break;
    }
    ASSERT_EQ(step, Step::kBody);
  }
  EXPECT_EQ(out,
            "PUT /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n");
  // What was written parses back to the same body.
  const auto run = parse_requests(out);
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].body, "abcde");
}

TEST(HttpSerializeTest, UpgradeRequestKeepsUpgrade) {
  EXPECT_EQ(forward_request("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                            "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"),
            "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\n"
            "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
}

TEST(HttpSerializeTest, AbsoluteFormBecomesOriginForm) {
  EXPECT_EQ(forward_request("GET http://b.example/x?y HTTP/1.1\r\nHost: wrong.example\r\n\r\n"),
            "GET /x?y HTTP/1.1\r\nHost: b.example\r\n\r\n");
  EXPECT_EQ(forward_request("GET /old HTTP/1.0\r\n\r\n"), "GET /old HTTP/1.1\r\nHost: \r\n\r\n");
}

TEST(HttpSerializeTest, ResponseHeadForHttp11Client) {
  EXPECT_EQ(forward_response("HTTP/1.1 200 OK\r\nServer: s\r\nConnection: keep-alive, X-Hop\r\n"
                             "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 3\r\n\r\n");
  ResponseWriteOptions close;
  close.keep_alive = false;
  EXPECT_EQ(forward_response("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", close),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(HttpSerializeTest, ResponseFramingFollowsTheClient) {
  const std::string_view chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nVary: x\r\n\r\n";
  const std::string_view until_close = "HTTP/1.0 200 OK\r\nVary: x\r\n\r\n";
  ResponseWriteOptions v10;
  v10.client_version_minor = 0;
  // HTTP/1.1 client: chunked stays chunked; an until-close body is re-chunked so the client
  // connection can stay open.
  EXPECT_EQ(forward_response(chunked),
            "HTTP/1.1 200 OK\r\nVary: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(forward_response(until_close),
            "HTTP/1.1 200 OK\r\nVary: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  // HTTP/1.0 client: no chunked; the body ends with the connection.
  EXPECT_EQ(forward_response(chunked, v10),
            "HTTP/1.1 200 OK\r\nVary: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(forward_response(until_close, v10),
            "HTTP/1.1 200 OK\r\nVary: x\r\nConnection: close\r\n\r\n");
  // HTTP/1.0 client with a length: keep-alive must be said explicitly.
  EXPECT_EQ(forward_response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", v10),
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n");

  ResponseParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.feed(until_close, &consumed), Step::kHead);
  EXPECT_EQ(response_framing(parser.head(), 1), Framing::kChunked);
  EXPECT_EQ(response_framing(parser.head(), 0), Framing::kUntilClose);
  EXPECT_TRUE(response_keeps_client(parser.head(), ResponseWriteOptions{}));
  EXPECT_FALSE(response_keeps_client(parser.head(), v10));
}

TEST(HttpSerializeTest, NoBodyResponsesKeepTheirLength) {
  EXPECT_EQ(forward_response("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", {}, Method::kHead),
            "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
  EXPECT_EQ(forward_response("HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"),
            "HTTP/1.1 304 Not Modified\r\nETag: \"e\"\r\n\r\n");
  EXPECT_EQ(forward_response("HTTP/1.1 100 Continue\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
}

TEST(HttpSerializeTest, SwitchingProtocols) {
  EXPECT_EQ(forward_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
                             {}, Method::kGet, true),
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n"
            "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
}

TEST(HttpSerializeTest, Chunks) {
  std::string out;
  write_chunk("", &out);
  EXPECT_EQ(out, "");
  write_chunk("hello", &out);
  write_chunk(std::string(300, 'x'), &out);
  EXPECT_EQ(out, "5\r\nhello\r\n12c\r\n" + std::string(300, 'x') + "\r\n");
  out.clear();
  write_chunk_header(0xdeadbeef, &out);
  EXPECT_EQ(out, "deadbeef\r\n");
  out.clear();
  const Header trailers[] = {
      {"X-Sum", "1"}, {"Content-Length", "3"}, {"Transfer-Encoding", "x"},
      {"Host", "h"},  {"Connection", "close"}, {"Server-Timing", "db;dur=53"}};
  write_last_chunk(trailers, &out);
  EXPECT_EQ(out, "0\r\nX-Sum: 1\r\nServer-Timing: db;dur=53\r\n\r\n");
  out.clear();
  write_last_chunk({}, &out);
  EXPECT_EQ(out, "0\r\n\r\n");
}

TEST(HttpSerializeTest, ErrorResponse) {
  std::string out;
  write_error_response(431, &out);
  EXPECT_EQ(out,
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n");
  out.clear();
  write_error_response(502, &out);
  EXPECT_EQ(out, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST(HttpSerializeTest, HopByHopNames) {
  for (std::string_view name : {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                                "Transfer-Encoding", "UPGRADE"}) {
    EXPECT_TRUE(is_hop_by_hop(name)) << name;
  }
  for (std::string_view name : {"Host", "Content-Length", "X-Forwarded-For", "Trailers"}) {
    EXPECT_FALSE(is_hop_by_hop(name)) << name;
  }
}

TEST(HttpSerializeTest, ForwardedResponseParsesBack) {
  const std::string_view input =
      "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Length: 4\r\n\r\nbody";
  const std::string head = forward_response(input);
  const auto run = parse_responses(head + "body");
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].content_length, 4u);
  EXPECT_EQ(run.messages[0].body, "body");
}

}  // namespace
}  // namespace fulcrum::http
