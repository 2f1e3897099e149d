#include "client/http_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <thread>

#include "net/socket.h"

namespace fulcrum::client {
namespace {

Url url_of(const char* text) {
  auto u = parse_url(text);
  EXPECT_TRUE(u.ok());
  return *u;
}

TEST(SerializeRequest, GetWithToken) {
  Request r;
  r.target = "/v1/status";
  r.token = "tok";
  EXPECT_EQ(serialize_request(url_of("http://127.0.0.1:9901"), r),
            "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:9901\r\nUser-Agent: fulcrumctl\r\n"
            "Accept: application/json\r\nAuthorization: Bearer tok\r\nConnection: close\r\n\r\n");
}

TEST(SerializeRequest, PostWithPrefixAndBody) {
  Request r;
  r.method = "POST";
  r.target = "/v1/apply?dry_run=true";
  r.content_type = "application/yaml";
  r.body = "a: 1\n";
  EXPECT_EQ(serialize_request(url_of("http://[::1]:80/fulcrum/"), r),
            "POST /fulcrum/v1/apply?dry_run=true HTTP/1.1\r\nHost: [::1]:80\r\n"
            "User-Agent: fulcrumctl\r\nAccept: application/json\r\n"
            "Content-Type: application/yaml\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
            "a: 1\n");
}

TEST(SerializeRequest, EmptyPostStillSaysContentLength) {
  Request r;
  r.method = "POST";
  r.target = "/v1/x/start";
  std::string text = serialize_request(url_of("http://127.0.0.1:1"), r);
  EXPECT_NE(text.find("Content-Length: 0\r\n"), std::string::npos);
  EXPECT_EQ(text.find("Authorization"), std::string::npos);
}

TEST(ResponseReader, LengthFramedAnswerInPieces) {
  std::string bytes =
      "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
      "{\"a\": true}";
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    ResponseReader r(http::Method::kPost);
    EXPECT_FALSE(r.feed(std::string_view(bytes).substr(0, cut)));
    EXPECT_TRUE(r.feed(std::string_view(bytes).substr(cut))) << cut;
    auto resp = std::move(r).result();
    ASSERT_TRUE(resp.ok());
    EXPECT_EQ(resp->status, 201);
    EXPECT_EQ(resp->header("content-type"), "application/json");
    EXPECT_EQ(resp->body, "{\"a\": true}");
  }
}

TEST(ResponseReader, ChunkedAndInterim) {
  ResponseReader r(http::Method::kGet);
  EXPECT_TRUE(
      r.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  auto resp = std::move(r).result();
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "abcde");
}

TEST(ResponseReader, UntilCloseBodyEndsAtFinish) {
  ResponseReader r(http::Method::kGet);
  EXPECT_FALSE(r.feed("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"));
  EXPECT_TRUE(r.finish());
  auto resp = std::move(r).result();
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->body, "hello");
}

TEST(ResponseReader, TruncatedMalformedAndSilentAreErrors) {
  {
    ResponseReader r(http::Method::kGet);
    r.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    EXPECT_FALSE(r.finish());
    EXPECT_NE(std::move(r).result().error().message.find("cut short"), std::string::npos);
  }
  {
    ResponseReader r(http::Method::kGet);
    r.feed("HTTP/9.9 200 OK\r\n\r\n");
    EXPECT_TRUE(r.failed());
    EXPECT_NE(std::move(r).result().error().message.find("malformed"), std::string::npos);
  }
  {
    ResponseReader r(http::Method::kGet);
    EXPECT_FALSE(r.finish());
    EXPECT_NE(std::move(r).result().error().message.find("without answering"), std::string::npos);
  }
}

// A one-shot server on a loopback port: accepts one connection, reads the request head, writes
// `answer` and closes. Hermetic: port 0, joined by the test.
class OneShotServer {
 public:
  explicit OneShotServer(std::string answer) {
    auto addr = net::SocketAddress::from_ip_port("127.0.0.1", 0);
    auto fd = net::listen_tcp(*addr, false, 4);
    EXPECT_TRUE(fd.ok());
    listen_ = std::move(*fd);
    port_ = net::local_address(listen_.get())->port();
    thread_ = std::thread([this, answer = std::move(answer)] {
      int c = -1;
      for (int i = 0; i < 500 && c < 0; ++i) {  // the listening socket is non-blocking
        c = accept(listen_.get(), nullptr, nullptr);
        if (c < 0) usleep(10000);
      }
      if (c < 0) return;
      char buf[4096];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n > 0) {
          got.append(buf, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          break;
        } else {
          usleep(1000);
        }
      }
      request_ = got;
      if (!answer.empty()) (void)!send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      close(c);
    });
  }
  ~OneShotServer() { thread_.join(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& request() const { return request_; }

 private:
  net::UniqueFd listen_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

TEST(Send, RoundTripOverLoopback) {
  auto server = std::make_unique<OneShotServer>(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  Request req;
  req.target = "/v1/status";
  req.token = "tok";
  auto resp = send(url_of(server->url().c_str()), req, Timeouts{});
  ASSERT_TRUE(resp.ok()) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "{}");
  server.reset();
}

TEST(Send, ClosedWithoutAnswerIsAnErrorNamingTheServer) {
  auto server = std::make_unique<OneShotServer>("");
  std::string url = server->url();
  Request req;
  req.token = "topsecret";
  auto resp = send(url_of(url.c_str()), req, Timeouts{});
  server.reset();
  ASSERT_FALSE(resp.ok());
  EXPECT_NE(resp.error().message.find(url), std::string::npos) << resp.error().message;
  EXPECT_EQ(resp.error().message.find("topsecret"), std::string::npos);
}

TEST(Send, RefusedConnectionIsRetryableAndNamesTheServer) {
  // A port that was free a moment ago: bind, read the port, close.
  uint16_t port;
  {
    auto fd = net::listen_tcp(*net::SocketAddress::from_ip_port("127.0.0.1", 0), false, 1);
    port = net::local_address(fd->get())->port();
  }
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto resp = send(url_of(url.c_str()), Request{}, Timeouts{});
  ASSERT_FALSE(resp.ok());
  EXPECT_TRUE(resp.error().retryable);
  EXPECT_NE(resp.error().message.find(url), std::string::npos) << resp.error().message;
}

}  // namespace
}  // namespace fulcrum::client
