// docs/openapi.json and the router's table describe the same routes, with the same roles.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "api/api.h"

namespace fulcrum::api {
namespace {

nlohmann::json load_openapi() {
  std::ifstream in(std::string(FULCRUM_DOCS_DIR) + "/openapi.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::string role_name(Role r) {
  switch (r) {
    case Role::kNone:
      return "none";
    case Role::kReader:
      return "reader";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(OpenApi, DocumentsExactlyTheRouterTable) {
  nlohmann::json doc = load_openapi();
  ASSERT_EQ(doc.value("openapi", ""), "3.0.3");
  std::set<std::string> documented;
  for (auto& [path, ops] : doc["paths"].items()) {
    for (auto& [method, op] : ops.items()) {
      documented.insert(method + " " + path + " " + op.value("x-fulcrum-role", "?"));
    }
  }
  std::set<std::string> routed;
  const Router router = make_router();
  for (const Route& r : router.routes()) {
    routed.insert(lower(r.method) + " " + r.pattern + " " + role_name(r.role));
  }
  for (const auto& s : routed) EXPECT_TRUE(documented.count(s)) << "not in openapi.json: " << s;
  for (const auto& s : documented) EXPECT_TRUE(routed.count(s)) << "not routed: " << s;
}

TEST(OpenApi, EveryProtectedRouteDeclares401AndMutations403) {
  nlohmann::json doc = load_openapi();
  for (auto& [path, ops] : doc["paths"].items()) {
    for (auto& [method, op] : ops.items()) {
      std::string role = op.value("x-fulcrum-role", "");
      if (role == "none") continue;
      EXPECT_TRUE(op["responses"].contains("401")) << method << " " << path;
      if (role == "admin") {
        EXPECT_TRUE(op["responses"].contains("403")) << method << " " << path;
      }
    }
  }
}

}  // namespace
}  // namespace fulcrum::api
