#include "api/router.h"

#include <gtest/gtest.h>

#include "api/api.h"

namespace fulcrum::api {
namespace {

TEST(Router, MatchesLiteralAndParameters) {
  Router r = make_router();
  auto m = r.match("GET", "/v1/loadbalancers/web/listeners/http:8080");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/v1/loadbalancers/{lb}/listeners/{listener}");
  ASSERT_EQ(m.params.size(), 2u);
  EXPECT_EQ(m.params[0], (std::pair<std::string, std::string>{"lb", "web"}));
  EXPECT_EQ(m.params[1], (std::pair<std::string, std::string>{"listener", "http:8080"}));
}

TEST(Router, PercentDecodesParameters) {
  Router r = make_router();
  auto m = r.match("DELETE", "/v1/loadbalancers/web/servergroups/app/backends/%5B%3A%3A1%5D:9001");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params.back().second, "[::1]:9001");
}

TEST(Router, RefusesBadEscapesControlBytesAndSlashes) {
  Router r = make_router();
  EXPECT_EQ(r.match("GET", "/v1/loadbalancers/%zz").status, 404);
  EXPECT_EQ(r.match("GET", "/v1/loadbalancers/%2").status, 404);
  EXPECT_EQ(r.match("GET", "/v1/loadbalancers/a%0Ab").status, 404);
  EXPECT_EQ(r.match("GET", "/v1/loadbalancers/a%2Fb").status, 404);
  EXPECT_EQ(r.match("GET", "/v1/loadbalancers/").status, 404);  // empty segment
}

TEST(Router, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Router r = make_router();
  EXPECT_EQ(r.match("GET", "/v2/loadbalancers").status, 404);
  EXPECT_EQ(r.match("GET", "").status, 404);
  auto m = r.match("PUT", "/v1/loadbalancers");
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allow, "GET, POST");
}

TEST(Router, EveryRouteMatchesItsOwnPattern) {
  Router r = make_router();
  for (const Route& route : r.routes()) {
    std::string path = route.pattern;
    for (size_t b; (b = path.find('{')) != std::string::npos;) {
      path.replace(b, path.find('}', b) - b + 1, "x");
    }
    auto m = r.match(route.method, path);
    ASSERT_NE(m.route, nullptr) << route.method << " " << path;
    EXPECT_EQ(m.route, &route) << route.method << " " << path;
  }
}

TEST(Query, FindsDecodesAndRefuses) {
  std::string v;
  EXPECT_TRUE(query_param("client=10.0.0.1%3A5&host=a.example.com&path=%2Fx+y", "client", &v));
  EXPECT_EQ(v, "10.0.0.1:5");
  EXPECT_TRUE(query_param("client=1&path=%2Fx+y", "path", &v));
  EXPECT_EQ(v, "/x y");
  EXPECT_TRUE(query_param("dry_run", "dry_run", &v));
  EXPECT_EQ(v, "");
  EXPECT_FALSE(query_param("a=1", "b", &v));
  EXPECT_FALSE(query_param("a=%G1", "a", &v));
}

TEST(ErrorResponse, HasTheProductShapeAndEscapes) {
  Response r = error_response(400, "InvalidParameter", "bad \"x\"\n", "a.b");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body,
            "{\"error\":{\"code\":\"InvalidParameter\",\"message\":\"bad \\\"x\\\"\\n\","
            "\"field\":\"a.b\"}}\n");
  EXPECT_EQ(error_response(404, "NotFound", "x").body.find("field"), std::string::npos);
}

}  // namespace
}  // namespace fulcrum::api
