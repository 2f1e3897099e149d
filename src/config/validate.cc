#include "config/validate.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fulcrum::config {
namespace {

// Validation stops at the first problem: check functions throw Invalid, validate() catches it.
// Nothing else in this file throws on purpose, and no exception leaves validate() but bad_alloc.
struct Invalid {
  base::Error error;
};

[[noreturn]] void fail(std::string path, std::string message) {
  throw Invalid{base::Error::config(std::move(path), std::move(message))};
}

std::string field(const std::string& path, std::string_view name) {
  return path + "." + std::string(name);
}
std::string item(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}
std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// --- Text ---------------------------------------------------------------------------------------

constexpr size_t kMaxTextLength = 256;       // descriptions, comments, tag values
constexpr size_t kMaxTagKeyLength = 128;     // as cloud SLBs allow
constexpr size_t kMaxPathLength = 1024;      // rule paths and health-check URIs
constexpr size_t kMaxUrlLength = 2048;       // redirect targets
constexpr size_t kMaxFileNameLength = 4096;  // PATH_MAX
constexpr size_t kMaxUdpPayload = 512;       // UDP health-check request/expect, one datagram
constexpr size_t kMaxCookieName = 128;

bool is_control(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}
bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void check_name(const std::string& path, const std::string& name) {
  if (name.empty()) fail(path, "is required");
  if (name.size() > kMaxNameLength) fail(path, "must be at most 64 characters");
  for (char c : name) {
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
      fail(path, "may contain only letters, digits, '.', '_' and '-'");
    }
  }
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). Every
// string of a valid Config is, so that the JSON form (config/json.h) carries it unchanged.
bool is_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto lead = static_cast<unsigned char>(s[i]);
    size_t extra = 0;  // continuation bytes
    uint32_t min = 0;  // the smallest code point of that length (shorter is overlong)
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xe0) == 0xc0) {
      extra = 1;
      min = 0x80;
    } else if ((lead & 0xf0) == 0xe0) {
      extra = 2;
      min = 0x800;
    } else if ((lead & 0xf8) == 0xf0) {
      extra = 3;
      min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    uint32_t cp = lead & (0x7fu >> (extra + 1));
    for (size_t k = 1; k <= extra; ++k) {
      auto cont = static_cast<unsigned char>(s[i + k]);
      if ((cont & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cont & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

void check_utf8(const std::string& path, const std::string& text) {
  if (!is_utf8(text)) fail(path, "must be valid UTF-8");
}

// Free text: UTF-8 without control characters, at most max_len bytes.
void check_text(const std::string& path, const std::string& text, size_t max_len) {
  if (text.size() > max_len)
    fail(path, "must be at most " + std::to_string(max_len) + " characters");
  for (char c : text) {
    if (is_control(c)) fail(path, "must not contain control characters");
  }
  check_utf8(path, text);
}

// PEM text (RFC 7468): lines of printable ASCII. The message never quotes it (keys are secret).
void check_pem(const std::string& path, const std::string& text) {
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || (is_control(c) && c != '\n' && c != '\r' && c != '\t')) {
      fail(path, "must be PEM text (printable ASCII lines)");
    }
  }
}

// Visible ASCII, no spaces: URIs, paths and URLs.
void check_visible(const std::string& path, const std::string& text, size_t max_len) {
  if (text.size() > max_len)
    fail(path, "must be at most " + std::to_string(max_len) + " characters");
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) fail(path, "must not contain spaces or control characters");
  }
}

// A DNS name: labels of 1–63 letters, digits and '-' (not at either end), 253 bytes at most.
bool is_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!is_alnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_cookie_name(std::string_view s) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  if (s.empty() || s.size() > kMaxCookieName) return false;
  for (char c : s) {
    if (!is_alnum(c) && kExtra.find(c) == std::string_view::npos) return false;
  }
  return true;
}

void check_duration(const std::string& path, int64_t ms, int64_t lo_s, int64_t hi_s) {
  if (ms < lo_s * 1000 || ms > hi_s * 1000) {
    fail(path, "must be " + std::to_string(lo_s) + "–" + std::to_string(hi_s) + " s");
  }
}

void check_port(const std::string& path, uint32_t port) {
  if (port < 1 || port > 65535) fail(path, "must be 1–65535");
}

void check_bandwidth(const std::string& path, int32_t mbps) {
  if (mbps != -1 && (mbps < 1 || mbps > kMaxBandwidthMbps)) {
    fail(path, "must be -1 (unlimited) or 1–5120");
  }
}

// --- Addresses ----------------------------------------------------------------------------------

struct IpAddr {
  int family = AF_INET;             // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; the first 4 for AF_INET
  bool operator<(const IpAddr& o) const {
    return family != o.family ? family < o.family : bytes < o.bytes;
  }
  bool operator==(const IpAddr& o) const = default;
  size_t bits() const { return family == AF_INET ? 32 : 128; }
  bool is_unspecified() const {
    for (uint8_t b : bytes) {
      if (b != 0) return false;
    }
    return true;
  }
};

// An IPv4 or IPv6 literal (no zone id, no brackets).
std::optional<IpAddr> parse_ip(const std::string& text) {
  if (text.find('\0') != std::string::npos) return std::nullopt;  // inet_pton stops at NUL
  IpAddr a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

// Same address as the kernel sees it for binding: ::ffff:a.b.c.d is a.b.c.d.
IpAddr unmap(IpAddr a) {
  static constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0,    0,
                                                            0, 0, 0, 0, 0xff, 0xff};
  if (a.family == AF_INET6 &&
      std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), a.bytes.begin())) {
    IpAddr v4;
    std::copy(a.bytes.begin() + 12, a.bytes.end(), v4.bytes.begin());
    return v4;
  }
  return a;
}

std::string format_ip(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.family, a.bytes.data(), buf, sizeof buf);
  return buf;
}

// Two listening sockets on the same port collide when their addresses are equal or either is a
// wildcard covering the other: 0.0.0.0 covers IPv4, :: covers everything (Linux dual-stack
// default).
bool binds_overlap(const IpAddr& a, const IpAddr& b) {
  if (a == b) return true;
  if (a.is_unspecified() && (a.family == AF_INET6 || b.family == AF_INET || b.is_unspecified())) {
    return true;
  }
  if (b.is_unspecified() && (b.family == AF_INET6 || a.family == AF_INET)) return true;
  return false;
}

struct Cidr {
  IpAddr network;
  uint32_t prefix = 0;
  bool operator<(const Cidr& o) const {
    return network == o.network ? prefix < o.prefix : network < o.network;
  }
};

void check_cidr(const std::string& path, const std::string& text, Cidr& out) {
  static const std::string kUsage = "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32";
  if (text.empty()) fail(path, "is required");
  size_t slash = text.find('/');
  auto addr = parse_ip(text.substr(0, slash));
  if (!addr) fail(path, kUsage);
  uint32_t prefix = static_cast<uint32_t>(addr->bits());
  if (slash != std::string::npos) {
    std::string digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) fail(path, kUsage);
    prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') fail(path, kUsage);
      prefix = prefix * 10 + static_cast<uint32_t>(c - '0');
    }
    if (prefix > addr->bits()) {
      fail(path, "prefix length must be 0–" + std::to_string(addr->bits()));
    }
  }
  IpAddr network = *addr;
  for (uint32_t bit = prefix; bit < addr->bits(); ++bit) {
    network.bytes[bit / 8] = static_cast<uint8_t>(network.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
  }
  if (!(network == *addr)) {
    fail(path, "has host bits set; did you mean " + format_ip(network) + "/" +
                   std::to_string(prefix) + "?");
  }
  out = Cidr{network, prefix};
}

// --- The walk -----------------------------------------------------------------------------------

// What one bound listener occupies, for conflict checks across load balancers.
struct Binding {
  IpAddr address;  // unmapped (see unmap)
  Protocol protocol;
  size_t lb_index;
  std::string path;  // "loadbalancers[0].listeners[1]"
};

class Validator {
 public:
  explicit Validator(const Config& config) : config_(config) {
    for (const Certificate& c : config.certificates) certificates_.emplace(c.name, &c);
    for (const Acl& a : config.acls) acls_.insert(a.name);
  }

  void run() {
    std::map<std::string, size_t> lb_names;
    for (size_t i = 0; i < config_.loadbalancers.size(); ++i) {
      std::string path = item("loadbalancers", i);
      const LoadBalancer& lb = config_.loadbalancers[i];
      check_name(field(path, "name"), lb.name);
      auto [it, fresh] = lb_names.emplace(lb.name, i);
      if (!fresh) fail(field(path, "name"), "already used by " + item("loadbalancers", it->second));
      check_load_balancer(i, path, lb);
    }
    std::map<std::string, size_t> cert_names;
    for (size_t i = 0; i < config_.certificates.size(); ++i) {
      std::string path = item("certificates", i);
      const Certificate& c = config_.certificates[i];
      check_name(field(path, "name"), c.name);
      auto [it, fresh] = cert_names.emplace(c.name, i);
      if (!fresh) fail(field(path, "name"), "already used by " + item("certificates", it->second));
      check_certificate(path, c);
    }
    std::map<std::string, size_t> acl_names;
    for (size_t i = 0; i < config_.acls.size(); ++i) {
      std::string path = item("acls", i);
      const Acl& a = config_.acls[i];
      check_name(field(path, "name"), a.name);
      auto [it, fresh] = acl_names.emplace(a.name, i);
      if (!fresh) fail(field(path, "name"), "already used by " + item("acls", it->second));
      check_acl(path, a);
    }
  }

 private:
  void check_load_balancer(size_t lb_index, const std::string& path, const LoadBalancer& lb) {
    std::string addr_path = field(path, "address");
    if (lb.address.empty()) fail(addr_path, "is required");
    auto address = parse_ip(lb.address);
    if (!address) fail(addr_path, "must be an IPv4 or IPv6 address");
    if (lb.address_type != "internet" && lb.address_type != "intranet") {
      fail(field(path, "address_type"), "must be internet or intranet");
    }
    if (lb.status != "active" && lb.status != "inactive") {
      fail(field(path, "status"), "must be active or inactive");
    }
    check_bandwidth(field(path, "bandwidth_mbps"), lb.bandwidth_mbps);
    if (lb.charge_type != "pay_by_traffic") {
      fail(field(path, "charge_type"), "must be pay_by_traffic");
    }
    if (lb.zones) {
      check_name(field(path, "zones.master"), lb.zones->master);
      check_name(field(path, "zones.slave"), lb.zones->slave);
      if (lb.zones->master == lb.zones->slave) {
        fail(field(path, "zones.slave"), "must differ from zones.master");
      }
    }
    if (lb.tags.size() > kMaxTags) fail(field(path, "tags"), "must have at most 20 tags");
    for (const auto& [key, value] : lb.tags) {
      std::string tag_path = field(path, "tags." + key);
      if (key.empty()) fail(field(path, "tags"), "tag keys must not be empty");
      check_text(tag_path, key, kMaxTagKeyLength);
      check_text(tag_path, value, kMaxTextLength);
    }

    std::map<std::string, size_t> groups;
    for (size_t i = 0; i < lb.server_groups.size(); ++i) {
      std::string sg_path = item(field(path, "server_groups"), i);
      const ServerGroup& sg = lb.server_groups[i];
      check_name(field(sg_path, "name"), sg.name);
      auto [it, fresh] = groups.emplace(sg.name, i);
      if (!fresh) {
        fail(field(sg_path, "name"),
             "already used by " + item(field(path, "server_groups"), it->second));
      }
      check_server_group(sg_path, sg);
    }

    for (size_t i = 0; i < lb.listeners.size(); ++i) {
      std::string l_path = item(field(path, "listeners"), i);
      check_listener(l_path, lb_index, lb, unmap(*address), groups, lb.listeners[i]);
    }
  }

  void check_server_group(const std::string& path, const ServerGroup& sg) {
    std::map<std::pair<IpAddr, uint16_t>, size_t> seen;
    for (size_t i = 0; i < sg.backends.size(); ++i) {
      std::string b_path = item(field(path, "backends"), i);
      const Backend& b = sg.backends[i];
      std::string addr_path = field(b_path, "address");
      if (b.address.empty()) fail(addr_path, "is required");
      auto address = parse_ip(b.address);
      if (!address) fail(addr_path, "must be an IPv4 or IPv6 address");
      if (address->is_unspecified()) fail(addr_path, "must not be 0.0.0.0 or ::");
      check_port(field(b_path, "port"), b.port);
      if (b.weight > 100) fail(field(b_path, "weight"), "must be 0–100");
      if (!b.zone.empty()) check_name(field(b_path, "zone"), b.zone);
      check_text(field(b_path, "description"), b.description, kMaxTextLength);
      auto [it, fresh] = seen.emplace(std::make_pair(unmap(*address), b.port), i);
      if (!fresh) {
        fail(b_path, "same address and port as " + item(field(path, "backends"), it->second));
      }
    }
  }

  void check_listener(const std::string& path, size_t lb_index, const LoadBalancer& lb,
                      const IpAddr& lb_address, const std::map<std::string, size_t>& groups,
                      const Listener& l) {
    const bool l7 = is_l7(l.protocol);
    check_port(field(path, "port"), l.port);
    check_binding(path, lb_index, lb_address, l);

    if (l.server_group.empty()) {
      if (!l.redirect_to_https) fail(field(path, "server_group"), "is required");
    } else if (!groups.contains(l.server_group)) {
      fail(field(path, "server_group"), "unknown server group " + quoted(l.server_group));
    }
    if (l.scheduler == Scheduler::kTch && l7) {
      fail(field(path, "scheduler"), "tch only for tcp and udp listeners");
    }
    if (l.acl) {
      std::string acl_path = field(path, "acl.acl");
      if (l.acl->acl.empty()) fail(acl_path, "is required");
      if (!acls_.contains(l.acl->acl)) fail(acl_path, "unknown acl " + quoted(l.acl->acl));
    }
    check_bandwidth(field(path, "bandwidth_mbps"), l.bandwidth_mbps);
    if (lb.bandwidth_mbps != -1 && l.bandwidth_mbps > lb.bandwidth_mbps) {
      fail(field(path, "bandwidth_mbps"), "must not exceed the load balancer's bandwidth_mbps (" +
                                              std::to_string(lb.bandwidth_mbps) + ")");
    }
    check_duration(field(path, "drain_timeout"), l.drain_timeout_ms, 0, 900);
    check_duration(field(path, "persistence_timeout"), l.persistence_timeout_ms, 0, 3600);
    if (l7 && l.persistence_timeout_ms != 0) {
      fail(field(path, "persistence_timeout"), "only for tcp and udp listeners");
    }
    if (l7) {
      check_duration(field(path, "idle_timeout"), l.idle_timeout_ms, 1, 60);
    } else {
      check_duration(field(path, "idle_timeout"), l.idle_timeout_ms, 10, 900);
    }
    check_duration(field(path, "connect_timeout"), l.connect_timeout_ms, 1, 60);
    // Fields that do not apply to the protocol keep their defaults: no document can carry them
    // (the decoders refuse their keys), so any other value would be lost on the way.
    const Listener defaults = default_listener(l.protocol);
    if (l.protocol == Protocol::kUdp && l.connect_timeout_ms != defaults.connect_timeout_ms) {
      fail(field(path, "connect_timeout"), "only for tcp, http and https listeners");
    }
    if (l7 && l.proxy_protocol != ProxyProtocol::kNone) {
      fail(field(path, "proxy_protocol"), "only for tcp and udp listeners");
    }
    if (l.protocol == Protocol::kUdp && l.proxy_protocol == ProxyProtocol::kV1) {
      fail(field(path, "proxy_protocol"), "must be none or v2 for udp listeners");
    }
    check_duration(field(path, "request_timeout"), l.request_timeout_ms, 1, 180);
    if (!l7 && l.request_timeout_ms != defaults.request_timeout_ms) {
      fail(field(path, "request_timeout"), "only for http and https listeners");
    }
    if (l.sticky_session) check_sticky(field(path, "sticky_session"), l7, *l.sticky_session);
    const XForwarded& xf = l.x_forwarded;
    if (!l7 && (xf.proto || xf.port || xf.lb_id || xf.lb_ip)) {
      fail(field(path, "x_forwarded"), "only for http and https listeners");
    }
    if (!l7 && l.gzip != defaults.gzip)
      fail(field(path, "gzip"), "only for http and https listeners");
    if (l.redirect_to_https) {
      std::string r_path = field(path, "redirect_to_https");
      if (l.protocol != Protocol::kHttp) fail(r_path, "only for http listeners");
      check_port(field(r_path, "port"), l.redirect_to_https->port);
      bool found = false;
      for (const Listener& other : lb.listeners) {
        found = found ||
                (other.protocol == Protocol::kHttps && other.port == l.redirect_to_https->port);
      }
      if (!found) {
        fail(field(r_path, "port"), "no https listener on port " +
                                        std::to_string(l.redirect_to_https->port) +
                                        " in this load balancer");
      }
    }
    if (!l.rules.empty() && !l7) fail(field(path, "rules"), "only for http and https listeners");
    check_rules(field(path, "rules"), groups, l.rules);
    check_tls(path, l);
    check_health(field(path, "health_check"), l.protocol, l.health_check);
  }

  // Port conflicts: the same protocol:port twice in one load balancer, or the same transport port
  // on overlapping addresses anywhere (including across load balancers).
  // `address` is the load balancer's, unmapped.
  void check_binding(const std::string& path, size_t lb_index, const IpAddr& address,
                     const Listener& l) {
    std::string port_path = field(path, "port");
    auto& bound = bindings_[{uses_udp(l.protocol), l.port}];
    for (const Binding& b : bound) {
      if (b.lb_index == lb_index && b.protocol == l.protocol) {
        fail(port_path, "listener " + l.id() + " already defined by " + b.path);
      }
      if (binds_overlap(address, b.address)) {
        fail(port_path, "port " + std::to_string(l.port) + " already used by " + b.path);
      }
    }
    bound.push_back(Binding{address, l.protocol, lb_index, path});
  }

  void check_sticky(const std::string& path, bool l7, const StickySession& s) {
    if (!l7) fail(path, "only for http and https listeners");
    if (s.type == "insert") {
      if (s.cookie_timeout_s < 1 || s.cookie_timeout_s > 86400) {
        fail(field(path, "cookie_timeout"), "must be 1–86400 s");
      }
      if (!s.cookie.empty()) fail(field(path, "cookie"), "only for type server");
      if (!is_cookie_name(s.cookie_name)) {
        fail(field(path, "cookie_name"),
             "must be a cookie name (letters, digits and !#$%&'*+-.^_`|~)");
      }
      bool path_ok = !s.path.empty() && s.path[0] == '/';
      for (char c : s.path) {
        path_ok = path_ok && c != ';' && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
      }
      if (!path_ok) fail(field(path, "path"), "must start with / (no ';' or control characters)");
      if (s.same_site == "None" && !s.secure) {
        fail(field(path, "same_site"), "None needs secure: true (browsers drop it otherwise)");
      }
    } else if (s.type == "server") {
      if (s.cookie.empty()) fail(field(path, "cookie"), "is required for type server");
      if (!is_cookie_name(s.cookie)) {
        fail(field(path, "cookie"), "must be a cookie name (letters, digits and !#$%&'*+-.^_`|~)");
      }
      if (s.cookie_timeout_s != 0) fail(field(path, "cookie_timeout"), "only for type insert");
    } else if (s.type.empty()) {
      fail(field(path, "type"), "is required");
    } else {
      fail(field(path, "type"), "must be insert or server");
    }
  }

  void check_rules(const std::string& path, const std::map<std::string, size_t>& groups,
                   const std::vector<Rule>& rules) {
    std::map<std::string, size_t> names;
    std::map<std::pair<std::string, std::string>, size_t> matches;
    for (size_t i = 0; i < rules.size(); ++i) {
      std::string r_path = item(path, i);
      const Rule& r = rules[i];
      check_name(field(r_path, "name"), r.name);
      auto [it, fresh] = names.emplace(r.name, i);
      if (!fresh) fail(field(r_path, "name"), "already used by " + item(path, it->second));
      if (!r.domain.empty()) {
        std::string_view d = r.domain;
        if (d.starts_with("*.")) d.remove_prefix(2);
        if (!is_hostname(d)) {
          fail(field(r_path, "domain"),
               "must be a domain name (a.example.com) or a wildcard (*.example.com)");
        }
      }
      if (!r.path.empty()) {
        if (r.path.front() != '/') fail(field(r_path, "path"), "must start with '/'");
        check_visible(field(r_path, "path"), r.path, kMaxPathLength);
      }
      if (r.domain.empty() && r.path.empty()) fail(r_path, "must set domain, path or both");
      if (!r.server_group.empty() && !r.redirect.empty()) {
        fail(field(r_path, "redirect"), "cannot be combined with server_group");
      }
      if (r.server_group.empty() && r.redirect.empty()) {
        fail(field(r_path, "server_group"), "is required (or set redirect)");
      }
      if (!r.server_group.empty() && !groups.contains(r.server_group)) {
        fail(field(r_path, "server_group"), "unknown server group " + quoted(r.server_group));
      }
      if (!r.redirect.empty()) {
        std::string_view u = r.redirect;
        if (!u.starts_with("http://") && !u.starts_with("https://") && !u.starts_with("/")) {
          fail(field(r_path, "redirect"), "must be a URL (http://, https://) or a path ('/...')");
        }
        check_visible(field(r_path, "redirect"), r.redirect, kMaxUrlLength);
      }
      auto [m, unique] = matches.emplace(std::make_pair(r.domain, r.path), i);
      if (!unique) fail(r_path, "same domain and path as " + item(path, m->second));
    }
  }

  void check_tls(const std::string& path, const Listener& l) {
    const bool https = l.protocol == Protocol::kHttps;
    std::string certs_path = field(path, "certificates");
    if (!https && !l.certificates.empty()) fail(certs_path, "only for https listeners");
    if (https && l.certificates.empty()) fail(certs_path, "at least one certificate is required");
    std::set<std::string_view> listed;
    for (size_t i = 0; i < l.certificates.size(); ++i) {
      const std::string& name = l.certificates[i];
      auto it = certificates_.find(name);
      if (it == certificates_.end())
        fail(item(certs_path, i), "unknown certificate " + quoted(name));
      if (it->second->type != "server") {
        fail(item(certs_path, i), "certificate " + quoted(name) + " is not of type server");
      }
      if (!listed.insert(name).second) fail(item(certs_path, i), "listed twice");
    }
    static constexpr std::array<std::string_view, 5> kPolicies = {
        "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_2_strict", "tls_1_2_strict_with_1_3"};
    if (std::find(kPolicies.begin(), kPolicies.end(), l.tls_policy) == kPolicies.end()) {
      fail(field(path, "tls_policy"),
           "must be one of tls_1_0, tls_1_1, tls_1_2, tls_1_2_strict, tls_1_2_strict_with_1_3");
    }
    const Listener defaults = default_listener(l.protocol);
    if (!https && l.tls_policy != defaults.tls_policy) {
      fail(field(path, "tls_policy"), "only for https listeners");
    }
    if (!l.ca_certificate.empty()) {
      std::string ca_path = field(path, "ca_certificate");
      if (!https) fail(ca_path, "only for https listeners");
      auto it = certificates_.find(l.ca_certificate);
      if (it == certificates_.end()) {
        fail(ca_path, "unknown certificate " + quoted(l.ca_certificate));
      }
      if (it->second->type != "ca") {
        fail(ca_path, "certificate " + quoted(l.ca_certificate) + " is not of type ca");
      }
    }
    if (!https && l.http2 != defaults.http2) fail(field(path, "http2"), "only for https listeners");
  }

  void check_health(const std::string& path, Protocol protocol, const HealthCheck& hc) {
    std::string type_path = field(path, "type");
    if (hc.type != "tcp" && hc.type != "http" && hc.type != "udp") {
      fail(type_path, "must be tcp, http or udp");
    }
    if (protocol == Protocol::kUdp && hc.type != "udp") {
      fail(type_path, "must be udp for udp listeners");
    }
    if (protocol != Protocol::kUdp && hc.type == "udp") {
      fail(type_path, "must be tcp or http for " + std::string(to_string(protocol)) + " listeners");
    }
    if (hc.port) check_port(field(path, "port"), *hc.port);
    check_duration(field(path, "interval"), hc.interval_ms, 1, 50);
    check_duration(field(path, "timeout"), hc.timeout_ms, 1, 300);
    if (hc.healthy_threshold < 2 || hc.healthy_threshold > 10) {
      fail(field(path, "healthy_threshold"), "must be 2–10");
    }
    if (hc.unhealthy_threshold < 2 || hc.unhealthy_threshold > 10) {
      fail(field(path, "unhealthy_threshold"), "must be 2–10");
    }
    if (hc.type == "http") {
      if (hc.method != "HEAD" && hc.method != "GET")
        fail(field(path, "method"), "must be HEAD or GET");
      if (hc.uri.empty() || hc.uri.front() != '/') fail(field(path, "uri"), "must start with '/'");
      check_visible(field(path, "uri"), hc.uri, kMaxPathLength);
      if (!hc.domain.empty() && !is_hostname(hc.domain)) {
        fail(field(path, "domain"), "must be a domain name such as www.example.com");
      }
      std::string codes_path = field(path, "http_codes");
      if (hc.http_codes.empty()) fail(codes_path, "must list at least one of 2xx, 3xx, 4xx, 5xx");
      std::set<std::string_view> seen;
      for (size_t i = 0; i < hc.http_codes.size(); ++i) {
        const std::string& c = hc.http_codes[i];
        if (c != "2xx" && c != "3xx" && c != "4xx" && c != "5xx") {
          fail(item(codes_path, i), "must be 2xx, 3xx, 4xx or 5xx");
        }
        if (!seen.insert(c).second) fail(item(codes_path, i), "listed twice");
      }
    }
    if (hc.type != "http") {
      // Kept at their defaults, as the listener's fields that do not apply (check_listener).
      const HealthCheck defaults;
      const char* kOnlyHttp = "only for health checks of type http";
      if (hc.method != defaults.method) fail(field(path, "method"), kOnlyHttp);
      if (hc.uri != defaults.uri) fail(field(path, "uri"), kOnlyHttp);
      if (hc.domain != defaults.domain) fail(field(path, "domain"), kOnlyHttp);
      if (hc.http_codes != defaults.http_codes) fail(field(path, "http_codes"), kOnlyHttp);
    }
    if (hc.type != "udp") {
      if (!hc.request.empty()) fail(field(path, "request"), "only for health checks of type udp");
      if (!hc.expect.empty()) fail(field(path, "expect"), "only for health checks of type udp");
    }
    if (hc.request.size() > kMaxUdpPayload) {
      fail(field(path, "request"), "must be at most 512 bytes");
    }
    check_utf8(field(path, "request"), hc.request);
    if (hc.expect.size() > kMaxUdpPayload) fail(field(path, "expect"), "must be at most 512 bytes");
    check_utf8(field(path, "expect"), hc.expect);
  }

  void check_certificate(const std::string& path, const Certificate& c) {
    if (c.type != "server" && c.type != "ca") fail(field(path, "type"), "must be server or ca");
    check_text(field(path, "cert_file"), c.cert_file, kMaxFileNameLength);
    check_text(field(path, "key_file"), c.key_file, kMaxFileNameLength);
    check_pem(field(path, "cert"), c.cert_pem);
    check_pem(field(path, "key"), c.key_pem);
    // Exactly one form of each: a file name or the PEM text itself.
    if (c.cert_file.empty() && c.cert_pem.empty()) {
      fail(field(path, "cert_file"), "is required (or cert with the PEM text)");
    }
    if (!c.cert_file.empty() && !c.cert_pem.empty()) {
      fail(field(path, "cert"), "cannot be combined with cert_file");
    }
    bool has_key = !c.key_file.empty() || !c.key_pem.empty();
    if (c.type == "server" && !has_key) {
      fail(field(path, "key_file"),
           "is required for server certificates (or key with the PEM text)");
    }
    if (!c.key_file.empty() && !c.key_pem.empty()) {
      fail(field(path, "key"), "cannot be combined with key_file");
    }
    if (c.type == "ca" && has_key) {
      fail(field(path, c.key_pem.empty() ? "key_file" : "key"), "only for server certificates");
    }
  }

  void check_acl(const std::string& path, const Acl& acl) {
    std::string entries_path = field(path, "entries");
    if (acl.entries.size() > kMaxAclEntries) fail(entries_path, "must have at most 300 entries");
    std::map<Cidr, size_t> seen;
    for (size_t i = 0; i < acl.entries.size(); ++i) {
      std::string e_path = item(entries_path, i);
      Cidr cidr;
      check_cidr(field(e_path, "cidr"), acl.entries[i].cidr, cidr);
      check_text(field(e_path, "comment"), acl.entries[i].comment, kMaxTextLength);
      auto [it, fresh] = seen.emplace(cidr, i);
      if (!fresh) fail(field(e_path, "cidr"), "same as " + item(entries_path, it->second));
    }
  }

  const Config& config_;
  std::map<std::string, const Certificate*> certificates_;  // first of each name
  std::set<std::string> acls_;
  std::map<std::pair<bool, uint16_t>, std::vector<Binding>> bindings_;  // (udp?, port)
};

}  // namespace

base::Status validate(const Config& config) {
  try {
    Validator(config).run();
  } catch (Invalid& invalid) {
    return std::move(invalid.error);
  }
  return {};
}

}  // namespace fulcrum::config
