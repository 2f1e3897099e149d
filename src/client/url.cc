#include "client/url.h"

#include <charconv>

namespace fulcrum::client {

namespace {

constexpr std::string_view kScheme = "http://";

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

base::Error bad(std::string_view text, std::string why) {
  return base::Error::config("server", "'" + std::string(text) + "': " + std::move(why));
}

}  // namespace

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string Url::to_string() const {
  return "http://" + authority() + prefix;
}

base::Result<Url> parse_url(std::string_view text) {
  if (starts_with_ci(text, "https://")) {
    return bad(text, "https is not supported (the admin API speaks plain HTTP on loopback)");
  }
  if (!starts_with_ci(text, kScheme)) return bad(text, "must start with http://");
  std::string_view rest = text.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (path.find_first_of("?#") != std::string_view::npos) {
    return bad(text, "must not have a query or fragment");
  }
  if (authority.find('@') != std::string_view::npos) {
    return bad(text, "must not have user info (give the token with --token)");
  }
  Url url;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad(text, "unterminated [IPv6] literal");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad(text, "expected :PORT after the ] of the address");
      port_text = after.substr(1);
      if (port_text.empty()) return bad(text, "empty port");
    }
    if (!net::SocketAddress::from_ip_port(url.host, 0) || url.host.find(':') == std::string::npos) {
      return bad(text, "not an IPv6 literal inside []");
    }
  } else {
    size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad(text, "empty port");
    }
    if (url.host.empty()) return bad(text, "no host");
    for (char& c : url.host) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    if (url.host != "localhost" && (url.host.find(':') != std::string::npos ||
                                    !net::SocketAddress::from_ip_port(url.host, 0))) {
      return bad(text,
                 "the host must be an IPv4 literal, an [IPv6] literal or localhost (no DNS "
                 "lookups)");
    }
  }
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return bad(text, "the port must be 1-65535");
    }
    url.port = static_cast<uint16_t>(value);
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.prefix = std::string(path);
  return url;
}

std::vector<net::SocketAddress> resolve(const Url& url) {
  std::vector<net::SocketAddress> out;
  if (url.host == "localhost") {
    out.push_back(*net::SocketAddress::from_ip_port("127.0.0.1", url.port));
    out.push_back(*net::SocketAddress::from_ip_port("::1", url.port));
  } else if (auto a = net::SocketAddress::from_ip_port(url.host, url.port)) {
    out.push_back(*a);
  }
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += c;
    } else {
      auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    }
  }
  return out;
}

}  // namespace fulcrum::client
