#include "net/address.h"

#include <gtest/gtest.h>

namespace fulcrum::net {
namespace {

TEST(SocketAddress, ParsesV4AndV6) {
  auto a = SocketAddress::parse("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(a->port(), 8080);
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(a->ip_bytes().size(), 4u);
  auto b = SocketAddress::parse("[::1]:53");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->family(), AF_INET6);
  EXPECT_EQ(b->to_string(), "[::1]:53");
  EXPECT_EQ(b->ip_bytes().size(), 16u);
}

TEST(SocketAddress, RefusesMalformed) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "::1:53", "[::1]53",
                          "host:80", "1.2.3.4:8a", "[::1:53", "1.2.3:80"}) {
    EXPECT_FALSE(SocketAddress::parse(bad)) << bad;
  }
}

}  // namespace
}  // namespace fulcrum::net
