#include "l7/cookies.h"

#include <gtest/gtest.h>

#include <vector>

namespace fulcrum::l7 {
namespace {

using H = std::vector<http::Header>;

TEST(Cookies, FindsTheFirstValueAcrossHeaders) {
  H h = {{"Host", "x"}, {"Cookie", "a=1; SERVERID=abc"}, {"cookie", "SERVERID=def"}};
  EXPECT_EQ(find_cookie(h, "SERVERID"), "abc");
  EXPECT_EQ(find_cookie(h, "a"), "1");
  EXPECT_FALSE(find_cookie(h, "serverid"));  // cookie names are case-sensitive
  EXPECT_FALSE(find_cookie(H{{"Cookie", "flag; b=2"}}, "c"));
}

TEST(Cookies, RebuildDropsOrReplacesOne) {
  H h = {{"Cookie", "a=1; SERVERID=abc;b=2"}, {"Cookie", "c=3"}};
  EXPECT_EQ(rebuild_cookies(h, "SERVERID", std::nullopt), "a=1; b=2; c=3");
  EXPECT_EQ(rebuild_cookies(h, "SERVERID", "v"), "a=1; SERVERID=v; b=2; c=3");
  EXPECT_EQ(rebuild_cookies(H{{"Cookie", "SERVERID=x"}}, "SERVERID", std::nullopt), "");
  EXPECT_EQ(rebuild_cookies(H{{"Cookie", "SERVERID=x; z=1"}}, "SERVERID", std::nullopt), "z=1");
}

TEST(Cookies, PrefixAndSplit) {
  EXPECT_EQ(prefix_set_cookie("JSESSIONID=abc; Path=/", "JSESSIONID", "t1"),
            "JSESSIONID=t1~abc; Path=/");
  EXPECT_FALSE(prefix_set_cookie("other=1", "JSESSIONID", "t1"));
  auto parts = split_prefixed("t1~abc");
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->first, "t1");
  EXPECT_EQ(parts->second, "abc");
  EXPECT_FALSE(split_prefixed("plain"));
}

}  // namespace
}  // namespace fulcrum::l7
