// Forwarding rules of an HTTP/HTTPS listener, compiled once per generation into lookup tables.
// Precedence (PRODUCT.md §1): an exact domain, then the longest matching wildcard domain, then
// rules without a domain; inside the chosen domain the longest path prefix wins. A domain whose
// rules match no path falls through to the next candidate; no match at all means the listener's
// default server group. Pure and immutable once built. [any]
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fulcrum::snapshot {

struct Rule {
  std::string name;
  std::string domain;  // "" (any), "a.example.com" or "*.example.com"; lowercase
  std::string path;    // "" (any) or a prefix starting with '/'
  size_t target = 0;   // index into the caller's targets, e.g. a server group or a redirect
};

class RouteTable {
 public:
  // `rules` in configuration order (earlier wins between identical domain and path).
  explicit RouteTable(std::vector<Rule> rules);

  // The rule for `host` (any case, optional ":port", optional trailing dot) and `path` (the
  // request target's path, without query); nullptr when none applies.
  const Rule* match(std::string_view host, std::string_view path) const;
  const std::vector<Rule>& rules() const { return rules_; }

  // "Host: A.Example.COM:8080." -> "a.example.com"; IPv6 literals keep their brackets.
  static std::string normalise_host(std::string_view host);

 private:
  using PathList = std::vector<const Rule*>;  // longest path first
  const Rule* match_paths(const PathList& list, std::string_view path) const;

  std::vector<Rule> rules_;
  std::unordered_map<std::string, PathList> exact_;
  std::vector<std::pair<std::string, PathList>>
      wildcard_;  // (".example.com", rules), longest first
  PathList any_;
};

}  // namespace fulcrum::snapshot
