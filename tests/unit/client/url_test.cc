#include "client/url.h"

#include <gtest/gtest.h>

namespace fulcrum::client {
namespace {

TEST(ParseUrl, Ipv4WithPort) {
  auto u = parse_url("http://127.0.0.1:9901");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 9901);
  EXPECT_EQ(u->prefix, "");
  EXPECT_EQ(u->authority(), "127.0.0.1:9901");
  EXPECT_EQ(u->to_string(), "http://127.0.0.1:9901");
}

TEST(ParseUrl, DefaultPortAndTrailingSlash) {
  auto u = parse_url("HTTP://10.0.0.1/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->prefix, "");
}

TEST(ParseUrl, Ipv6Literal) {
  auto u = parse_url("http://[::1]:9901");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->authority(), "[::1]:9901");
  auto addrs = resolve(*u);
  ASSERT_EQ(addrs.size(), 1u);
  EXPECT_EQ(addrs[0].to_string(), "[::1]:9901");
}

TEST(ParseUrl, LocalhostResolvesToBothLoopbacks) {
  auto u = parse_url("http://LocalHost:8000/api/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->prefix, "/api");
  auto addrs = resolve(*u);
  ASSERT_EQ(addrs.size(), 2u);
  EXPECT_EQ(addrs[0].to_string(), "127.0.0.1:8000");
  EXPECT_EQ(addrs[1].to_string(), "[::1]:8000");
}

TEST(ParseUrl, Refusals) {
  for (const char* bad : {"127.0.0.1:9901", "https://127.0.0.1:9901", "ftp://x", "http://",
                          "http://:80", "http://example.com", "http://127.0.0.1:0",
                          "http://127.0.0.1:65536", "http://127.0.0.1:", "http://127.0.0.1:80x",
                          "http://[::1", "http://[::1]x", "http://[127.0.0.1]:80", "http://::1:80",
                          "http://u:p@127.0.0.1", "http://127.0.0.1/?a=b", "http://1.2.3.4.5"}) {
    auto u = parse_url(bad);
    EXPECT_FALSE(u.ok()) << bad;
    if (!u.ok()) {
      EXPECT_NE(u.error().message.find(bad), std::string::npos) << u.error().message;
    }
  }
}

TEST(ParseUrl, HttpsRefusalSaysWhy) {
  auto u = parse_url("https://127.0.0.1:9901");
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("https is not supported"), std::string::npos);
}

TEST(PercentEncode, KeepsUnreservedOnly) {
  EXPECT_EQ(percent_encode("web-1.a_b~"), "web-1.a_b~");
  EXPECT_EQ(percent_encode("[::1]:9001"), "%5B%3A%3A1%5D%3A9001");
  EXPECT_EQ(percent_encode("http:8080"), "http%3A8080");
  EXPECT_EQ(percent_encode("/a b"), "%2Fa%20b");
  EXPECT_EQ(percent_encode("\xC3\xA9"), "%C3%A9");
}

}  // namespace
}  // namespace fulcrum::client
