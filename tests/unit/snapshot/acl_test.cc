#include "snapshot/acl.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace fulcrum::snapshot {
namespace {

AclMatcher matcher(const std::vector<std::string>& cidrs) {
  std::vector<AclPrefix> prefixes;
  for (const std::string& c : cidrs) {
    auto p = AclPrefix::parse(c);
    EXPECT_TRUE(p.has_value()) << c;
    if (p) prefixes.push_back(*p);
  }
  return AclMatcher(prefixes);
}

bool has(const AclMatcher& m, const std::string& ip) {
  auto a = net::SocketAddress::from_ip_port(ip, 4242);
  EXPECT_TRUE(a.has_value()) << ip;
  return a && m.contains(*a);
}

TEST(AclPrefix, ParsesNetworksAndSingleAddresses) {
  auto p = AclPrefix::parse("10.0.0.0/8");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->v6);
  EXPECT_EQ(p->length, 8u);
  EXPECT_EQ(p->bytes[0], 10);
  p = AclPrefix::parse("192.0.2.7");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->length, 32u);
  p = AclPrefix::parse("2001:db8::/32");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->v6);
  EXPECT_EQ(p->length, 32u);
  p = AclPrefix::parse("::1");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->length, 128u);
  EXPECT_TRUE(AclPrefix::parse("0.0.0.0/0"));
  EXPECT_TRUE(AclPrefix::parse("::/0"));
}

TEST(AclPrefix, RejectsWhatIsNotACidr) {
  for (const char* bad :
       {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/8x", "10.0.0.0/-1",
        "10.0.0.0/0008", "example.com", "[::1]", "fe80::1%eth0", "10.0.0.0 /8", "1.2.3.4.5"}) {
    EXPECT_FALSE(AclPrefix::parse(bad)) << bad;
  }
}

TEST(AclMatcher, EmptyMatchesNothing) {
  AclMatcher none;
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(has(none, "127.0.0.1"));
  EXPECT_FALSE(has(none, "::1"));
  AclMatcher built = matcher({});
  EXPECT_TRUE(built.empty());
  EXPECT_FALSE(has(built, "0.0.0.0"));
  EXPECT_FALSE(built.contains(net::SocketAddress()));  // no family
}

TEST(AclMatcher, Ipv4Networks) {
  AclMatcher m = matcher({"10.0.0.0/8", "192.168.1.0/24", "172.16.5.4/32"});
  EXPECT_FALSE(m.empty());
  EXPECT_TRUE(has(m, "10.0.0.0"));
  EXPECT_TRUE(has(m, "10.255.255.255"));
  EXPECT_FALSE(has(m, "9.255.255.255"));
  EXPECT_FALSE(has(m, "11.0.0.0"));
  EXPECT_TRUE(has(m, "192.168.1.77"));
  EXPECT_FALSE(has(m, "192.168.2.1"));
  EXPECT_TRUE(has(m, "172.16.5.4"));  // /32: exactly one address
  EXPECT_FALSE(has(m, "172.16.5.3"));
  EXPECT_FALSE(has(m, "172.16.5.5"));
  EXPECT_FALSE(has(m, "::ffff:11.0.0.1"));
  EXPECT_FALSE(has(m, "::1"));  // an IPv6 client is never in an IPv4 entry
}

TEST(AclMatcher, Ipv6Networks) {
  AclMatcher m = matcher({"2001:db8::/32", "fd00::5", "fe80::/64"});
  EXPECT_TRUE(has(m, "2001:db8::1"));
  EXPECT_TRUE(has(m, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_FALSE(has(m, "2001:db9::"));
  EXPECT_FALSE(has(m, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_TRUE(has(m, "fd00::5"));  // /128
  EXPECT_FALSE(has(m, "fd00::4"));
  EXPECT_FALSE(has(m, "fd00::6"));
  EXPECT_TRUE(has(m, "fe80::abcd:1234"));
  EXPECT_FALSE(has(m, "fe80:0:0:1::1"));
  EXPECT_FALSE(has(m, "127.0.0.1"));
}

TEST(AclMatcher, PrefixesAcrossTheHalvesOfAnIpv6Address) {
  AclMatcher m = matcher({"2001:db8:0:0:8000::/65", "2001:db8:1::/48"});
  EXPECT_TRUE(has(m, "2001:db8::8000:0:0:1"));
  EXPECT_TRUE(has(m, "2001:db8::ffff:ffff:ffff:ffff"));
  EXPECT_FALSE(has(m, "2001:db8::7fff:ffff:ffff:ffff"));
  EXPECT_TRUE(has(m, "2001:db8:1:ffff::1"));
  EXPECT_FALSE(has(m, "2001:db8:2::"));
}

TEST(AclMatcher, MappedClientsMatchIpv4Entries) {
  AclMatcher m = matcher({"127.0.0.2/32", "10.0.0.0/8"});
  EXPECT_TRUE(has(m, "::ffff:127.0.0.2"));
  EXPECT_FALSE(has(m, "::ffff:127.0.0.3"));
  EXPECT_TRUE(has(m, "::ffff:10.20.30.40"));
  EXPECT_FALSE(has(m, "::127.0.0.2"));  // IPv4-compatible (deprecated) is not mapped
  uint8_t raw[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2};
  EXPECT_TRUE(m.contains_v6(raw));
}

TEST(AclMatcher, MappedEntriesAreIpv4Entries) {
  AclMatcher m = matcher({"::ffff:10.0.0.0/104", "::ffff:192.0.2.1"});
  EXPECT_EQ(m.v4_ranges(), 2u);
  EXPECT_EQ(m.v6_ranges(), 0u);
  EXPECT_TRUE(has(m, "10.1.2.3"));
  EXPECT_TRUE(has(m, "::ffff:10.1.2.3"));
  EXPECT_TRUE(has(m, "192.0.2.1"));
  EXPECT_FALSE(has(m, "192.0.2.2"));
  EXPECT_FALSE(has(m, "11.0.0.0"));
}

TEST(AclMatcher, ZeroPrefixCoversItsFamilyOnly) {
  AclMatcher v4 = matcher({"0.0.0.0/0"});
  EXPECT_TRUE(has(v4, "0.0.0.0"));
  EXPECT_TRUE(has(v4, "255.255.255.255"));
  EXPECT_TRUE(has(v4, "::ffff:1.2.3.4"));
  EXPECT_FALSE(has(v4, "::1"));
  AclMatcher v6 = matcher({"::/0"});
  EXPECT_TRUE(has(v6, "::"));
  EXPECT_TRUE(has(v6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  EXPECT_FALSE(has(v6, "1.2.3.4"));
  EXPECT_FALSE(has(v6, "::ffff:1.2.3.4"));  // a mapped client is an IPv4 client
  AclMatcher both = matcher({"0.0.0.0/0", "::/0"});
  EXPECT_EQ(both.v4_ranges(), 1u);
  EXPECT_EQ(both.v6_ranges(), 1u);
  EXPECT_TRUE(has(both, "8.8.8.8"));
  EXPECT_TRUE(has(both, "2001:db8::1"));
}

TEST(AclMatcher, OverlappingAndAdjacentEntriesMerge) {
  // Nested, overlapping, duplicated (after masking), adjacent and separate, in no order.
  AclMatcher m = matcher({"10.1.0.0/16", "10.0.0.0/8", "10.0.0.5", "192.168.0.0/25",
                          "192.168.0.128/25", "192.168.2.0/24", "10.0.0.5/32"});
  EXPECT_EQ(m.v4_ranges(), 3u);  // 10/8, 192.168.0.0/24, 192.168.2.0/24
  EXPECT_TRUE(has(m, "10.1.2.3"));
  EXPECT_TRUE(has(m, "192.168.0.127"));
  EXPECT_TRUE(has(m, "192.168.0.128"));
  EXPECT_FALSE(has(m, "192.168.1.0"));
  EXPECT_TRUE(has(m, "192.168.2.255"));
  EXPECT_FALSE(has(m, "192.168.3.0"));
  AclMatcher edges = matcher({"255.255.255.255", "255.255.255.254", "0.0.0.0", "0.0.0.1"});
  EXPECT_EQ(edges.v4_ranges(), 2u);
  EXPECT_TRUE(has(edges, "255.255.255.255"));
  EXPECT_TRUE(has(edges, "0.0.0.1"));
  EXPECT_FALSE(has(edges, "0.0.0.2"));
  AclMatcher v6 = matcher({"::/1", "8000::/1", "2001:db8::/32"});
  EXPECT_EQ(v6.v6_ranges(), 1u);
  EXPECT_TRUE(has(v6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  AclMatcher carry = matcher({"::ffff:ffff:ffff:ffff/64", "0:0:0:1::/64"});  // lo wraps into hi
  EXPECT_EQ(carry.v6_ranges(), 1u);
}

TEST(AclMatcher, HostBitsAreIgnored) {
  AclMatcher m = matcher({"10.1.2.3/8", "2001:db8::1/32"});
  EXPECT_TRUE(has(m, "10.200.0.1"));
  EXPECT_TRUE(has(m, "2001:db8:ffff::"));
}

// Random prefixes against a direct "does any entry cover it" reference.
TEST(AclMatcher, AgreesWithAScanOfTheEntries) {
  std::mt19937 engine(7);
  auto rng = [&] { return static_cast<uint32_t>(engine()); };
  for (int round = 0; round < 50; ++round) {
    std::vector<std::pair<uint32_t, uint32_t>> entries;  // network, length
    std::vector<AclPrefix> prefixes;
    size_t n = rng() % 300u;
    for (size_t i = 0; i < n; ++i) {
      uint32_t len = 8 + rng() % 25;  // 8..32, in 10.0.0.0/8 mostly, so that they overlap
      uint32_t ip = (10u << 24) | (rng() & 0x00ffffffu);
      if (rng() % 8 == 0) ip = rng();
      uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
      entries.push_back({ip & mask, len});
      AclPrefix p;
      p.length = len;
      p.bytes[0] = static_cast<uint8_t>(ip >> 24);
      p.bytes[1] = static_cast<uint8_t>(ip >> 16);
      p.bytes[2] = static_cast<uint8_t>(ip >> 8);
      p.bytes[3] = static_cast<uint8_t>(ip);
      prefixes.push_back(p);
    }
    AclMatcher m(prefixes);
    for (int probe = 0; probe < 2000; ++probe) {
      uint32_t ip = probe % 2 ? ((10u << 24) | (rng() & 0x00ffffffu)) : rng();
      bool want = false;
      for (auto [net, len] : entries) {
        uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
        want = want || (ip & mask) == net;
      }
      ASSERT_EQ(m.contains_v4(ip), want) << "round " << round << " ip " << ip;
    }
  }
}

TEST(AccessControl, WhiteBlackAndNone) {
  auto listed = std::make_shared<const AclMatcher>(matcher({"127.0.0.2"}));
  auto a = *net::SocketAddress::from_ip_port("127.0.0.2", 1);
  auto b = *net::SocketAddress::from_ip_port("127.0.0.3", 1);
  AccessControl none;
  EXPECT_TRUE(none.allows(a));
  EXPECT_TRUE(none.allows(b));
  AccessControl white{AccessControl::Type::kWhite, "x", listed};
  EXPECT_TRUE(white.allows(a));
  EXPECT_FALSE(white.allows(b));
  AccessControl black{AccessControl::Type::kBlack, "x", listed};
  EXPECT_FALSE(black.allows(a));
  EXPECT_TRUE(black.allows(b));
  AccessControl empty_white{AccessControl::Type::kWhite, "x", std::make_shared<AclMatcher>()};
  EXPECT_FALSE(empty_white.allows(a));  // compile gives L7 listeners kNone instead
  AccessControl empty_black{AccessControl::Type::kBlack, "x", std::make_shared<AclMatcher>()};
  EXPECT_TRUE(empty_black.allows(a));
}

}  // namespace
}  // namespace fulcrum::snapshot
