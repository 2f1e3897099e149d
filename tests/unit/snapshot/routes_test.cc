#include "snapshot/routes.h"
#include "snapshot/snapshot.h"

#include <gtest/gtest.h>

namespace fulcrum::snapshot {
namespace {

std::string match_name(const RouteTable& t, std::string_view host, std::string_view path) {
  const Rule* r = t.match(host, path);
  return r ? r->name : "default";
}

RouteTable sample() {
  return RouteTable({
      {"api-v1", "api.example.com", "/v1", 0},
      {"api", "api.example.com", "", 1},
      {"wild", "*.example.com", "/", 2},
      {"wild-deep", "*.b.example.com", "", 3},
      {"static", "", "/static", 4},
      {"static-img", "", "/static/img", 5},
  });
}

TEST(RouteTable, ExactDomainThenLongestPath) {
  RouteTable t = sample();
  EXPECT_EQ(match_name(t, "api.example.com", "/v1/users"), "api-v1");
  EXPECT_EQ(match_name(t, "api.example.com", "/v2"), "api");
  EXPECT_EQ(match_name(t, "API.Example.COM:8080", "/v1"), "api-v1");
  EXPECT_EQ(match_name(t, "api.example.com.", "/x"), "api");
}

TEST(RouteTable, LongestWildcardThenNoDomain) {
  RouteTable t = sample();
  EXPECT_EQ(match_name(t, "www.example.com", "/index"), "wild");
  EXPECT_EQ(match_name(t, "x.b.example.com", "/index"), "wild-deep");
  EXPECT_EQ(match_name(t, "a.x.example.com", "/"), "wild");
  // A wildcard never matches the bare domain.
  EXPECT_EQ(match_name(t, "example.com", "/static/a"), "static");
  EXPECT_EQ(match_name(t, "other.org", "/static/img/a.png"), "static-img");
  EXPECT_EQ(match_name(t, "other.org", "/"), "default");
}

TEST(RouteTable, DomainWhosePathsDoNotMatchFallsThrough) {
  RouteTable t({{"only-v1", "api.example.com", "/v1", 0}, {"any", "", "", 1}});
  EXPECT_EQ(match_name(t, "api.example.com", "/v1"), "only-v1");
  EXPECT_EQ(match_name(t, "api.example.com", "/v2"), "any");
}

TEST(RouteTable, EarlierRuleWinsBetweenEqualOnes) {
  RouteTable t({{"first", "", "/a", 0}, {"second", "", "/a", 1}});
  EXPECT_EQ(match_name(t, "h", "/a"), "first");
}

TEST(RouteTable, NormalisesHosts) {
  EXPECT_EQ(RouteTable::normalise_host("A.B:80"), "a.b");
  EXPECT_EQ(RouteTable::normalise_host("[::1]:8080"), "[::1]");
  EXPECT_EQ(RouteTable::normalise_host("[::1]"), "[::1]");
  EXPECT_EQ(RouteTable::normalise_host("x."), "x");
  EXPECT_EQ(RouteTable::normalise_host(""), "");
}

TEST(BackendStatus, WeightZeroIsDrainingWhateverItsHealth) {
  EXPECT_EQ(backend_status(0, Health::kHealthy), "draining");
  EXPECT_EQ(backend_status(0, Health::kUnhealthy), "draining");
  EXPECT_EQ(backend_status(5, Health::kUnhealthy), "unhealthy");
  EXPECT_EQ(backend_status(100, Health::kUnchecked), "unchecked");
  EXPECT_EQ(backend_status(1, Health::kHealthy), "healthy");
}

TEST(StickyToken, StableHexPerSecretAndBackend) {
  EXPECT_EQ(sticky_token(1, 42), sticky_token(1, 42));
  EXPECT_NE(sticky_token(1, 42), sticky_token(2, 42));
  EXPECT_NE(sticky_token(1, 42), sticky_token(1, 43));
  EXPECT_EQ(sticky_token(7, 9).size(), 16u);
  EXPECT_EQ(sticky_token(7, 9).find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(RouteTable, EmptyTableMatchesNothing) {
  RouteTable t({});
  EXPECT_EQ(t.match("a", "/"), nullptr);
}

}  // namespace
}  // namespace fulcrum::snapshot
