#include "api/router.h"

namespace fulcrum::api {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path[0] != '/') return out;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_param(std::string_view seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

}  // namespace

bool percent_decode(std::string_view in, std::string* out, bool plus_is_space) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex(in[i + 1]);
      int lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

bool query_param(std::string_view query, std::string_view key, std::string* out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string_view k = pair.substr(0, eq);
    if (k == key) {
      std::string_view v = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return percent_decode(v, out, /*plus_is_space=*/true);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

void Router::add(Route route) {
  routes_.push_back(std::move(route));
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match result;
  result.status = 404;
  const std::vector<std::string_view> segs = split_path(path);
  if (segs.empty()) return result;
  for (const Route& r : routes_) {
    const std::vector<std::string_view> pat = split_path(r.pattern);
    if (pat.size() != segs.size()) continue;
    Params params;
    bool ok = true;
    for (size_t i = 0; i < pat.size() && ok; ++i) {
      if (is_param(pat[i])) {
        std::string value;
        if (segs[i].empty() || !percent_decode(segs[i], &value)) {
          ok = false;
          break;
        }
        for (char c : value) {
          if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '/') ok = false;
        }
        params.emplace_back(std::string(pat[i].substr(1, pat[i].size() - 2)), std::move(value));
      } else if (pat[i] != segs[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    if (r.method != method) {
      result.status = 405;
      if (result.allow.find(r.method) == std::string::npos) {
        if (!result.allow.empty()) result.allow += ", ";
        result.allow += r.method;
      }
      continue;
    }
    result.route = &r;
    result.status = 200;
    result.params = std::move(params);
    result.allow.clear();
    return result;
  }
  return result;
}

}  // namespace fulcrum::api
