#include "http/syntax.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/message.h"

namespace fulcrum::http {
namespace {

TEST(HttpSyntaxTest, Tokens) {
  EXPECT_TRUE(detail::is_token("GET"));
  EXPECT_TRUE(detail::is_token("X-Custom_1.2~!#$%&'*+^`|"));
  EXPECT_FALSE(detail::is_token(""));
  EXPECT_FALSE(detail::is_token("Host "));
  EXPECT_FALSE(detail::is_token("a:b"));
  EXPECT_FALSE(detail::is_token("a(b)"));
  EXPECT_FALSE(detail::is_token(std::string("a\0b", 3)));
  EXPECT_FALSE(detail::is_token("caf\xc3\xa9"));
}

TEST(HttpSyntaxTest, ContentLength) {
  uint64_t n = 7;
  EXPECT_TRUE(detail::parse_content_length("0", &n));
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(detail::parse_content_length("18446744073709551615", &n));
  EXPECT_EQ(n, UINT64_MAX);
  EXPECT_FALSE(detail::parse_content_length("18446744073709551616", &n));
  EXPECT_FALSE(detail::parse_content_length("", &n));
  EXPECT_FALSE(detail::parse_content_length("+1", &n));
  EXPECT_FALSE(detail::parse_content_length("-1", &n));
  EXPECT_FALSE(detail::parse_content_length("1,1", &n));
  EXPECT_FALSE(detail::parse_content_length("1 1", &n));
  EXPECT_FALSE(detail::parse_content_length("0x10", &n));
}

TEST(HttpSyntaxTest, ListElements) {
  std::vector<std::string> seen;
  EXPECT_TRUE(detail::for_each_list_element(" a ,, b\t,c,", [&](std::string_view e) {
    seen.emplace_back(e);
    return true;
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(detail::for_each_list_element("a,b", [](std::string_view) { return false; }));
}

TEST(HttpSyntaxTest, Authority) {
  EXPECT_TRUE(detail::is_valid_authority("example.com", false));
  EXPECT_TRUE(detail::is_valid_authority("example.com:8080", false));
  EXPECT_TRUE(detail::is_valid_authority("127.0.0.1:80", false));
  EXPECT_TRUE(detail::is_valid_authority("[::1]:443", false));
  EXPECT_TRUE(detail::is_valid_authority("[2001:db8::1]", false));
  EXPECT_TRUE(detail::is_valid_authority("", true));
  EXPECT_FALSE(detail::is_valid_authority("", false));
  EXPECT_FALSE(detail::is_valid_authority("a b", false));
  EXPECT_FALSE(detail::is_valid_authority("a/b", false));
  EXPECT_FALSE(detail::is_valid_authority("user@host", false));
  EXPECT_FALSE(detail::is_valid_authority("host:port", false));
  EXPECT_FALSE(detail::is_valid_authority("host:123456", false));
  EXPECT_FALSE(detail::is_valid_authority(":80", false));
  EXPECT_FALSE(detail::is_valid_authority("[::1", false));
  EXPECT_FALSE(detail::is_valid_authority("[zz::1]", false));
  EXPECT_FALSE(detail::is_valid_authority("[::1]x", false));
}

TEST(HttpSyntaxTest, Methods) {
  EXPECT_EQ(method_from_text("GET"), Method::kGet);
  EXPECT_EQ(method_from_text("PATCH"), Method::kPatch);
  EXPECT_EQ(method_from_text("TRACE"), Method::kTrace);
  EXPECT_EQ(method_from_text("get"), Method::kOther);
  EXPECT_EQ(method_from_text("PROPFIND"), Method::kOther);
  EXPECT_EQ(method_name(Method::kOptions), "OPTIONS");
  EXPECT_EQ(method_name(Method::kOther), "");
}

TEST(HttpSyntaxTest, ParseErrorToBaseError) {
  const base::Error e =
      ParseError{431, "too many header fields"}.to_error(base::ErrorSource::kDownstream);
  EXPECT_EQ(e.source, base::ErrorSource::kDownstream);
  EXPECT_FALSE(e.retryable);
  EXPECT_EQ(e.message, "HTTP 431: too many header fields");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(299), "Unknown");
}

}  // namespace
}  // namespace fulcrum::http
