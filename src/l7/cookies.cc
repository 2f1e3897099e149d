#include "l7/cookies.h"

namespace fulcrum::l7 {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(name, value) for each "name=value" pair of a Cookie header value.
template <typename F>
void for_each_pair(std::string_view value, F&& f) {
  while (!value.empty()) {
    size_t semi = value.find(';');
    std::string_view pair = trim(value.substr(0, semi));
    value = semi == std::string_view::npos ? std::string_view() : value.substr(semi + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      f(pair, std::string_view(), pair);
    } else {
      f(trim(pair.substr(0, eq)), trim(pair.substr(eq + 1)), pair);
    }
  }
}

}  // namespace

std::optional<std::string_view> find_cookie(std::span<const http::Header> headers,
                                            std::string_view name) {
  std::optional<std::string_view> found;
  for (const http::Header& h : headers) {
    if (found || !iequals(h.name, "cookie")) continue;
    for_each_pair(h.value, [&](std::string_view n, std::string_view v, std::string_view) {
      if (!found && n == name) found = v;
    });
  }
  return found;
}

std::string rebuild_cookies(std::span<const http::Header> headers, std::string_view name,
                            std::optional<std::string_view> replacement) {
  std::string out;
  for (const http::Header& h : headers) {
    if (!iequals(h.name, "cookie")) continue;
    for_each_pair(h.value, [&](std::string_view n, std::string_view, std::string_view pair) {
      if (!out.empty()) out += "; ";
      if (n == name) {
        if (!replacement) {
          if (!out.empty()) out.resize(out.size() - 2);
          return;
        }
        out.append(n).append("=").append(*replacement);
      } else {
        out.append(pair);
      }
    });
  }
  return out;
}

std::optional<std::string> prefix_set_cookie(std::string_view set_cookie, std::string_view name,
                                             std::string_view prefix) {
  size_t eq = set_cookie.find('=');
  if (eq == std::string_view::npos || trim(set_cookie.substr(0, eq)) != name) return std::nullopt;
  std::string out(set_cookie.substr(0, eq + 1));
  out.append(prefix).append("~").append(set_cookie.substr(eq + 1));
  return out;
}

std::optional<std::pair<std::string_view, std::string_view>> split_prefixed(std::string_view v) {
  size_t tilde = v.find('~');
  if (tilde == std::string_view::npos) return std::nullopt;
  return std::make_pair(v.substr(0, tilde), v.substr(tilde + 1));
}

}  // namespace fulcrum::l7
