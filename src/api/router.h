// The admin API's route table: method + path pattern ("/v1/loadbalancers/{lb}") -> handler and
// the role it needs. The table is data so that tests and the OpenAPI check can walk it. [control]
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fulcrum::api {

enum class Role : uint8_t { kNone, kReader, kAdmin };  // kNone: no token needed (/healthz)

// Path parameters in pattern order: {"lb", "web"}, {"listener", "http:8080"}.
using Params = std::vector<std::pair<std::string, std::string>>;

struct Route {
  std::string method;   // "GET", "POST", ...
  std::string pattern;  // segments; "{name}" matches one non-empty segment (percent-decoded)
  Role role = Role::kAdmin;
  std::string summary;  // one line, for docs and the OpenAPI check
  int handler = 0;      // index the owner dispatches on
};

class Router {
 public:
  void add(Route route);
  const std::vector<Route>& routes() const { return routes_; }

  struct Match {
    const Route* route = nullptr;  // null: see status
    int status = 200;              // 404 no such path, 405 path exists with another method
    Params params;
    std::string allow;  // for 405: "GET, POST"
  };
  // `path` without the query string. A segment that does not percent-decode cleanly, or decodes
  // to a control character or '/', matches nothing (404).
  Match match(std::string_view method, std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

// Percent-decoding of one path segment or query value; false on a malformed escape. [any]
bool percent_decode(std::string_view in, std::string* out, bool plus_is_space = false);

// The value of `key` in a query string ("a=1&b=2"), decoded; false when absent or malformed.
bool query_param(std::string_view query, std::string_view key, std::string* out);

}  // namespace fulcrum::api
