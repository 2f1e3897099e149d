#include "snapshot/routes.h"

#include <algorithm>

namespace fulcrum::snapshot {

namespace {
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
}  // namespace

std::string RouteTable::normalise_host(std::string_view host) {
  if (!host.empty() && host.front() == '[') {  // IPv6 literal: keep up to the bracket
    size_t end = host.find(']');
    host = host.substr(0, end == std::string_view::npos ? host.size() : end + 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

RouteTable::RouteTable(std::vector<Rule> rules) : rules_(std::move(rules)) {
  for (const Rule& r : rules_) {
    if (r.domain.empty()) {
      any_.push_back(&r);
    } else if (r.domain.starts_with("*.")) {
      std::string suffix = r.domain.substr(1);  // ".example.com"
      auto it = std::find_if(wildcard_.begin(), wildcard_.end(),
                             [&](const auto& w) { return w.first == suffix; });
      if (it == wildcard_.end()) {
        wildcard_.emplace_back(suffix, PathList{});
        it = wildcard_.end() - 1;
      }
      it->second.push_back(&r);
    } else {
      exact_[r.domain].push_back(&r);
    }
  }
  auto by_path = [](const Rule* a, const Rule* b) { return a->path.size() > b->path.size(); };
  // stable_sort: between equal paths, configuration order decides.
  std::stable_sort(any_.begin(), any_.end(), by_path);
  for (auto& [d, list] : exact_) std::stable_sort(list.begin(), list.end(), by_path);
  for (auto& [d, list] : wildcard_) std::stable_sort(list.begin(), list.end(), by_path);
  std::stable_sort(wildcard_.begin(), wildcard_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

const Rule* RouteTable::match_paths(const PathList& list, std::string_view path) const {
  for (const Rule* r : list) {
    if (path.starts_with(r->path)) return r;
  }
  return nullptr;
}

const Rule* RouteTable::match(std::string_view host, std::string_view path) const {
  if (rules_.empty()) return nullptr;
  std::string h = normalise_host(host);
  if (auto it = exact_.find(h); it != exact_.end()) {
    if (const Rule* r = match_paths(it->second, path)) return r;
  }
  for (const auto& [suffix, list] : wildcard_) {  // longest suffix first
    if (h.size() > suffix.size() && h.ends_with(suffix)) {
      if (const Rule* r = match_paths(list, path)) return r;
    }
  }
  return match_paths(any_, path);
}

}  // namespace fulcrum::snapshot
