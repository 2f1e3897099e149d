#include "config/yaml.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "base/duration.h"
#include "config/decode_internal.h"
#include "config/validate.h"
#include "config/yaml_prescan.h"

namespace fulcrum::config {
namespace {

using internal::kBoolTag;
using internal::kFloatTag;
using internal::kIntTag;
using internal::kMaxValues;
using internal::kPlainTag;

// Decoding stops at the first problem: decoders throw DecodeError, decode_tree() catches it and
// turns it into a Result (decode_yaml() catches what yaml-cpp's parser throws).
struct DecodeError {
  base::Error error;
};

[[noreturn]] void fail(std::string path, std::string message) {
  throw DecodeError{base::Error::config(std::move(path), std::move(message))};
}

std::string field(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}
std::string item(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// Which listener protocols a key applies to (a bit per Protocol).
constexpr uint8_t bit(Protocol p) {
  return static_cast<uint8_t>(1u << static_cast<unsigned>(p));
}
constexpr uint8_t kAll =
    bit(Protocol::kTcp) | bit(Protocol::kUdp) | bit(Protocol::kHttp) | bit(Protocol::kHttps);
constexpr uint8_t kL4 = bit(Protocol::kTcp) | bit(Protocol::kUdp);
constexpr uint8_t kL7 = bit(Protocol::kHttp) | bit(Protocol::kHttps);
constexpr uint8_t kConnecting = bit(Protocol::kTcp) | kL7;

struct ListenerKey {
  std::string_view key;
  uint8_t protocols;
};
constexpr ListenerKey kListenerKeys[] = {
    {"protocol", kAll},
    {"port", kAll},
    {"server_group", kAll},
    {"status", kAll},
    {"scheduler", kAll},
    {"acl", kAll},
    {"bandwidth_mbps", kAll},
    {"drain_timeout", kAll},
    {"all_unhealthy", kAll},
    {"persistence_timeout", kL4},
    {"idle_timeout", kAll},
    {"connect_timeout", kConnecting},
    {"proxy_protocol", kL4},
    {"request_timeout", kL7},
    {"sticky_session", kL7},
    {"x_forwarded", kL7},
    {"gzip", kL7},
    {"redirect_to_https", bit(Protocol::kHttp)},
    {"rules", kL7},
    {"certificates", bit(Protocol::kHttps)},
    {"tls_policy", bit(Protocol::kHttps)},
    {"ca_certificate", bit(Protocol::kHttps)},
    {"http2", bit(Protocol::kHttps)},
    {"access_log", kAll},
    {"health_check", kAll},
};

// "only for tcp and udp listeners", "only for https listeners", ...
std::string only_for(uint8_t protocols) {
  std::vector<std::string_view> names;
  for (Protocol p : {Protocol::kTcp, Protocol::kUdp, Protocol::kHttp, Protocol::kHttps}) {
    if (protocols & bit(p)) names.push_back(to_string(p));
  }
  std::string out = "only for ";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " and " : ", ";
    out += names[i];
  }
  return out + " listeners";
}

class Decoder {
 public:
  explicit Decoder(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  Config document(const YAML::Node& root) {
    Config config;
    if (!root.IsMap()) {
      fail("", "the document must be a mapping with loadbalancers, certificates and acls");
    }
    each_field(root, "", [&](std::string_view key, const YAML::Node& v, const std::string& path) {
      if (key == "loadbalancers") {
        each_item(v, path, [&](const YAML::Node& n, const std::string& p) {
          config.loadbalancers.push_back(load_balancer(n, p));
        });
      } else if (key == "certificates") {
        each_item(v, path, [&](const YAML::Node& n, const std::string& p) {
          config.certificates.push_back(certificate(n, p));
        });
      } else if (key == "acls") {
        each_item(v, path, [&](const YAML::Node& n, const std::string& p) {
          config.acls.push_back(acl(n, p));
        });
      } else {
        fail(path, "unknown field");
      }
    });
    return config;
  }

 private:
  // --- Structure ---------------------------------------------------------------------------------

  // The work budget (decode_internal.h): every key and list item reached costs one value, every
  // scalar reached its length in bytes, each time it is reached (an alias costs what it names at
  // each use). An alias-free document within kMaxYamlBytes never runs out of text; expansions
  // stop here, before their copies are made.
  void count() {
    if (++visited_ > kMaxValues) {
      fail("", "document too large (more than 1000000 values; an alias counts at each use)");
    }
  }
  void charge(const YAML::Node& node) {
    if (!node.IsScalar()) return;
    text_bytes_ += node.Scalar().size();
    if (text_bytes_ > kMaxYamlBytes) {
      fail("", "document too large (more than 16 MiB of text; an alias counts at each use)");
    }
  }

  void expect_map(const YAML::Node& node, const std::string& path) {
    if (!node.IsMap()) fail(path, "must be a mapping");
  }

  // fn(key, value, path of value) for each entry of the mapping `node`, in document order. A null
  // value (`key:` or `key: ~`) counts as absent and is skipped unless keep_null. Keys must be
  // scalars and unique.
  template <class Fn>
  void each_field(const YAML::Node& node, const std::string& path, Fn&& fn,
                  bool keep_null = false) {
    expect_map(node, path);
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      count();
      if (!it->first.IsScalar()) fail(path, "keys must be strings");
      charge(it->first);
      const std::string& key = it->first.Scalar();
      std::string key_path = field(path, key);
      if (!seen.insert(key).second) fail(key_path, "duplicate key");
      if (it->second.IsNull() && !keep_null) continue;
      charge(it->second);
      fn(std::string_view(key), it->second, key_path);
    }
  }

  // fn(item, path of item) for each item of the sequence `node`.
  template <class Fn>
  void each_item(const YAML::Node& node, const std::string& path, Fn&& fn) {
    if (!node.IsSequence()) fail(path, "must be a list");
    size_t i = 0;
    for (auto it = node.begin(); it != node.end(); ++it, ++i) {
      count();
      charge(*it);
      fn(*it, item(path, i));
    }
  }

  // The value of `key` in the mapping `node` when present and not null.
  static std::optional<YAML::Node> find(const YAML::Node& node, std::string_view key) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) {
        if (it->second.IsNull()) return std::nullopt;
        return it->second;
      }
    }
    return std::nullopt;
  }

  // --- Scalars -----------------------------------------------------------------------------------

  // Any scalar but one typed as a number or a boolean (JSON's 5 and true, YAML's !!int 5): plain
  // YAML scalars are strings too (name: 123).
  static std::string str(const YAML::Node& node, const std::string& path) {
    if (!node.IsScalar() || node.Tag() == kIntTag || node.Tag() == kFloatTag ||
        node.Tag() == kBoolTag) {
      fail(path, "must be a string");
    }
    return node.Scalar();
  }

  // A plain decimal integer in [lo, hi]; `range` is the message for one outside it. Quoted
  // strings, fractions, hex and leading zeros (octal in YAML 1.1) are refused.
  static int64_t integer(const YAML::Node& node, const std::string& path, int64_t lo, int64_t hi,
                         const std::string& range) {
    constexpr size_t kMaxDigits = 18;  // fits int64_t without overflow checks
    if (!node.IsScalar() || (node.Tag() != kPlainTag && node.Tag() != kIntTag)) {
      fail(path, "must be an integer");
    }
    std::string_view text = node.Scalar();
    bool negative = !text.empty() && text.front() == '-';
    if (negative) text.remove_prefix(1);
    if (text.empty() || text.find_first_not_of("0123456789") != text.npos ||
        (text.size() > 1 && text.front() == '0')) {
      fail(path, "must be an integer");
    }
    if (text.size() > kMaxDigits) fail(path, range);  // far outside every range
    int64_t value = 0;
    for (char c : text) value = value * 10 + (c - '0');
    if (negative) value = -value;
    if (value < lo || value > hi) fail(path, range);
    return value;
  }

  static bool boolean(const YAML::Node& node, const std::string& path) {
    if (node.IsScalar() && (node.Tag() == kPlainTag || node.Tag() == kBoolTag)) {
      const std::string& t = node.Scalar();
      if (t == "true" || t == "True" || t == "TRUE") return true;
      if (t == "false" || t == "False" || t == "FALSE") return false;
    }
    fail(path, "must be true or false");
  }

  // A number of seconds (fractions allowed) or a number with a unit: 2, 0.5, "500ms", "2s", "1m".
  static int64_t duration_ms(const YAML::Node& node, const std::string& path) {
    if (node.IsScalar()) {
      if (auto ms = base::parse_duration_ms(node.Scalar())) return *ms;
    }
    fail(path, "must be a duration: seconds (2, 0.5) or a number with a unit (500ms, 2s, 1m)");
  }

  template <class E>
  static E enumeration(const YAML::Node& node, const std::string& path,
                       std::optional<E> (*parse)(std::string_view), const char* choices) {
    if (node.IsScalar()) {
      if (auto value = parse(node.Scalar())) return *value;
    }
    fail(path, std::string("must be ") + choices);
  }

  // A string that must be one of `choices` (kept as a string in the model).
  static std::string choice(const YAML::Node& node, const std::string& path,
                            std::initializer_list<std::string_view> choices, const char* message) {
    std::string value = str(node, path);
    for (std::string_view c : choices) {
      if (value == c) return value;
    }
    fail(path, message);
  }

  std::vector<std::string> string_list(const YAML::Node& node, const std::string& path) {
    std::vector<std::string> out;
    each_item(node, path,
              [&](const YAML::Node& n, const std::string& p) { out.push_back(str(n, p)); });
    return out;
  }

  static uint16_t port(const YAML::Node& node, const std::string& path) {
    return static_cast<uint16_t>(integer(node, path, 1, 65535, "must be 1–65535"));
  }

  static int32_t bandwidth(const YAML::Node& node, const std::string& path) {
    return static_cast<int32_t>(
        integer(node, path, -1, kMaxBandwidthMbps, "must be -1 (unlimited) or 1–5120"));
  }

  // --- Resources ---------------------------------------------------------------------------------

  LoadBalancer load_balancer(const YAML::Node& node, const std::string& path) {
    LoadBalancer lb;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "name") {
        lb.name = str(v, p);
      } else if (key == "address") {
        lb.address = str(v, p);
      } else if (key == "address_type") {
        lb.address_type = choice(v, p, {"internet", "intranet"}, "must be internet or intranet");
      } else if (key == "status") {
        lb.status = choice(v, p, {"active", "inactive"}, "must be active or inactive");
      } else if (key == "bandwidth_mbps") {
        lb.bandwidth_mbps = bandwidth(v, p);
      } else if (key == "charge_type") {
        lb.charge_type = choice(v, p, {"pay_by_traffic"}, "must be pay_by_traffic");
      } else if (key == "zones") {
        Zones zones;
        each_field(v, p, [&](std::string_view k, const YAML::Node& zv, const std::string& zp) {
          if (k == "master") {
            zones.master = str(zv, zp);
          } else if (k == "slave") {
            zones.slave = str(zv, zp);
          } else {
            fail(zp, "unknown field");
          }
        });
        lb.zones = std::move(zones);
      } else if (key == "tags") {
        each_field(
            v, p,
            [&](std::string_view k, const YAML::Node& tv, const std::string& tp) {
              lb.tags.emplace(std::string(k), tv.IsNull() ? std::string() : str(tv, tp));
            },
            /*keep_null=*/true);
      } else if (key == "server_groups") {
        each_item(v, p, [&](const YAML::Node& n, const std::string& ip) {
          lb.server_groups.push_back(server_group(n, ip));
        });
      } else if (key == "listeners") {
        each_item(v, p, [&](const YAML::Node& n, const std::string& ip) {
          lb.listeners.push_back(listener(n, ip));
        });
      } else {
        fail(p, "unknown field");
      }
    });
    return lb;
  }

  ServerGroup server_group(const YAML::Node& node, const std::string& path) {
    ServerGroup sg;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "name") {
        sg.name = str(v, p);
      } else if (key == "backends") {
        each_item(v, p, [&](const YAML::Node& n, const std::string& ip) {
          sg.backends.push_back(backend(n, ip));
        });
      } else {
        fail(p, "unknown field");
      }
    });
    return sg;
  }

  Backend backend(const YAML::Node& node, const std::string& path) {
    Backend b;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "address") {
        b.address = str(v, p);
      } else if (key == "port") {
        b.port = port(v, p);
      } else if (key == "weight") {
        b.weight = static_cast<uint32_t>(integer(v, p, 0, 100, "must be 0–100"));
      } else if (key == "zone") {
        b.zone = str(v, p);
      } else if (key == "description") {
        b.description = str(v, p);
      } else {
        fail(p, "unknown field");
      }
    });
    if (b.port == 0) fail(field(path, "port"), "is required");
    return b;
  }

  Listener listener(const YAML::Node& node, const std::string& path) {
    expect_map(node, path);
    auto protocol_node = find(node, "protocol");
    if (!protocol_node) fail(field(path, "protocol"), "is required");
    const Protocol protocol = enumeration(*protocol_node, field(path, "protocol"), parse_protocol,
                                          "tcp, udp, http or https");
    Listener l = default_listener(protocol);
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      const ListenerKey* known = nullptr;
      for (const ListenerKey& k : kListenerKeys) {
        if (k.key == key) known = &k;
      }
      if (known == nullptr) fail(p, "unknown field");
      if ((known->protocols & bit(protocol)) == 0) fail(p, only_for(known->protocols));
      listener_field(l, key, v, p);
    });
    if (l.port == 0) fail(field(path, "port"), "is required");
    return l;
  }

  // One key of a listener already known to apply to its protocol.
  void listener_field(Listener& l, std::string_view key, const YAML::Node& v,
                      const std::string& p) {
    if (key == "protocol") {
      // Decoded first, by listener().
    } else if (key == "port") {
      l.port = port(v, p);
    } else if (key == "server_group") {
      l.server_group = str(v, p);
    } else if (key == "status") {
      l.status = enumeration(v, p, parse_listener_status, "running or stopped");
    } else if (key == "scheduler") {
      l.scheduler = enumeration(v, p, parse_scheduler, "wrr, rr, wlc, sch or tch");
    } else if (key == "acl") {
      l.acl = acl_ref(v, p);
    } else if (key == "bandwidth_mbps") {
      l.bandwidth_mbps = bandwidth(v, p);
    } else if (key == "drain_timeout") {
      l.drain_timeout_ms = duration_ms(v, p);
    } else if (key == "all_unhealthy") {
      l.all_unhealthy = enumeration(v, p, parse_all_unhealthy, "fail_closed or fail_open");
    } else if (key == "persistence_timeout") {
      l.persistence_timeout_ms = duration_ms(v, p);
    } else if (key == "idle_timeout") {
      l.idle_timeout_ms = duration_ms(v, p);
    } else if (key == "connect_timeout") {
      l.connect_timeout_ms = duration_ms(v, p);
    } else if (key == "proxy_protocol") {
      l.proxy_protocol =
          enumeration(v, p, parse_proxy_protocol,
                      l.protocol == Protocol::kUdp ? "none or v2" : "none, v1 or v2");
    } else if (key == "request_timeout") {
      l.request_timeout_ms = duration_ms(v, p);
    } else if (key == "sticky_session") {
      l.sticky_session = sticky_session(v, p, l.protocol);
    } else if (key == "x_forwarded") {
      l.x_forwarded = x_forwarded(v, p);
    } else if (key == "gzip") {
      l.gzip = boolean(v, p);
    } else if (key == "redirect_to_https") {
      RedirectToHttps r;
      each_field(v, p, [&](std::string_view k, const YAML::Node& rv, const std::string& rp) {
        if (k != "port") fail(rp, "unknown field");
        r.port = port(rv, rp);
      });
      l.redirect_to_https = r;
    } else if (key == "rules") {
      each_item(v, p, [&](const YAML::Node& n, const std::string& ip) {
        l.rules.push_back(rule(n, ip));
      });
    } else if (key == "certificates") {
      l.certificates = string_list(v, p);
    } else if (key == "tls_policy") {
      l.tls_policy = choice(
          v, p, {"tls_1_0", "tls_1_1", "tls_1_2", "tls_1_2_strict", "tls_1_2_strict_with_1_3"},
          "must be one of tls_1_0, tls_1_1, tls_1_2, tls_1_2_strict, tls_1_2_strict_with_1_3");
    } else if (key == "ca_certificate") {
      l.ca_certificate = str(v, p);
    } else if (key == "http2") {
      l.http2 = boolean(v, p);
    } else if (key == "access_log") {
      l.access_log = boolean(v, p);
    } else if (key == "health_check") {
      l.health_check = health_check(v, p, l.protocol);
    }
  }

  AclRef acl_ref(const YAML::Node& node, const std::string& path) {
    AclRef ref;
    bool has_type = false;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "type") {
        ref.type = enumeration(v, p, parse_acl_type, "white or black");
        has_type = true;
      } else if (key == "acl") {
        ref.acl = str(v, p);
      } else {
        fail(p, "unknown field");
      }
    });
    if (!has_type) fail(field(path, "type"), "is required");
    if (ref.acl.empty()) fail(field(path, "acl"), "is required");
    return ref;
  }

  StickySession sticky_session(const YAML::Node& node, const std::string& path, Protocol protocol) {
    StickySession s;
    s.secure = protocol == Protocol::kHttps;  // a cookie that only travels over TLS, on TLS
    std::string insert_only;                  // the first key given that only type insert takes
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "cookie_name" || key == "path" || key == "same_site" || key == "http_only" ||
          key == "secure") {
        if (insert_only.empty()) insert_only = p;
      }
      if (key == "type") {
        s.type = choice(v, p, {"insert", "server"}, "must be insert or server");
      } else if (key == "cookie_timeout") {
        int64_t ms = duration_ms(v, p);
        if (ms % 1000 != 0) fail(p, "must be a whole number of seconds");
        s.cookie_timeout_s = ms / 1000;
      } else if (key == "cookie") {
        s.cookie = str(v, p);
      } else if (key == "cookie_name") {
        s.cookie_name = str(v, p);
      } else if (key == "path") {
        s.path = str(v, p);
      } else if (key == "same_site") {
        s.same_site = choice(v, p, {"Lax", "Strict", "None"}, "must be Lax, Strict or None");
      } else if (key == "http_only") {
        s.http_only = boolean(v, p);
      } else if (key == "secure") {
        s.secure = boolean(v, p);
      } else {
        fail(p, "unknown field");
      }
    });
    // type server: the backend's own cookie keeps the attributes the backend gave it.
    if (s.type == "server" && !insert_only.empty()) fail(insert_only, "only for type insert");
    return s;
  }

  XForwarded x_forwarded(const YAML::Node& node, const std::string& path) {
    XForwarded xf;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "proto") {
        xf.proto = boolean(v, p);
      } else if (key == "port") {
        xf.port = boolean(v, p);
      } else if (key == "lb_id") {
        xf.lb_id = boolean(v, p);
      } else if (key == "lb_ip") {
        xf.lb_ip = boolean(v, p);
      } else {
        fail(p, "unknown field");
      }
    });
    return xf;
  }

  Rule rule(const YAML::Node& node, const std::string& path) {
    Rule r;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "name") {
        r.name = str(v, p);
      } else if (key == "domain") {
        r.domain = str(v, p);
      } else if (key == "path") {
        r.path = str(v, p);
      } else if (key == "server_group") {
        r.server_group = str(v, p);
      } else if (key == "redirect") {
        r.redirect = str(v, p);
      } else {
        fail(p, "unknown field");
      }
    });
    return r;
  }

  // Defaults by listener protocol; the http-only and udp-only keys need that check type.
  HealthCheck health_check(const YAML::Node& node, const std::string& path, Protocol protocol) {
    expect_map(node, path);
    HealthCheck hc = default_health_check(protocol);
    if (auto type = find(node, "type")) {
      hc.type =
          choice(*type, field(path, "type"), {"tcp", "http", "udp"}, "must be tcp, http or udp");
    }
    const bool http = hc.type == "http";
    const bool udp = hc.type == "udp";
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "type") {
        // Decoded above.
      } else if (key == "enabled") {
        hc.enabled = boolean(v, p);
      } else if (key == "port") {
        hc.port = port(v, p);
      } else if (key == "interval") {
        hc.interval_ms = duration_ms(v, p);
      } else if (key == "timeout") {
        hc.timeout_ms = duration_ms(v, p);
      } else if (key == "healthy_threshold") {
        hc.healthy_threshold = static_cast<uint32_t>(integer(v, p, 2, 10, "must be 2–10"));
      } else if (key == "unhealthy_threshold") {
        hc.unhealthy_threshold = static_cast<uint32_t>(integer(v, p, 2, 10, "must be 2–10"));
      } else if (key == "method" || key == "uri" || key == "domain" || key == "http_codes") {
        if (!http) fail(p, "only for health checks of type http");
        if (key == "method") {
          hc.method = choice(v, p, {"HEAD", "GET"}, "must be HEAD or GET");
        } else if (key == "uri") {
          hc.uri = str(v, p);
        } else if (key == "domain") {
          hc.domain = str(v, p);
        } else {
          hc.http_codes = string_list(v, p);
        }
      } else if (key == "request" || key == "expect") {
        if (!udp) fail(p, "only for health checks of type udp");
        (key == "request" ? hc.request : hc.expect) = str(v, p);
      } else {
        fail(p, "unknown field");
      }
    });
    return hc;
  }

  Certificate certificate(const YAML::Node& node, const std::string& path) {
    Certificate c;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "name") {
        c.name = str(v, p);
      } else if (key == "type") {
        c.type = choice(v, p, {"server", "ca"}, "must be server or ca");
      } else if (key == "cert_file") {
        c.cert_file = resolve(str(v, p));
      } else if (key == "key_file") {
        c.key_file = resolve(str(v, p));
      } else if (key == "cert") {
        c.cert_pem = str(v, p);
      } else if (key == "key") {
        c.key_pem = str(v, p);
      } else {
        fail(p, "unknown field");
      }
    });
    return c;
  }

  Acl acl(const YAML::Node& node, const std::string& path) {
    Acl a;
    each_field(node, path, [&](std::string_view key, const YAML::Node& v, const std::string& p) {
      if (key == "name") {
        a.name = str(v, p);
      } else if (key == "entries") {
        each_item(v, p, [&](const YAML::Node& n, const std::string& ip) {
          AclEntry e;
          each_field(n, ip, [&](std::string_view k, const YAML::Node& ev, const std::string& ep) {
            if (k == "cidr") {
              e.cidr = str(ev, ep);
            } else if (k == "comment") {
              e.comment = str(ev, ep);
            } else {
              fail(ep, "unknown field");
            }
          });
          a.entries.push_back(std::move(e));
        });
      } else {
        fail(p, "unknown field");
      }
    });
    return a;
  }

  // A relative file name against the YAML file's folder.
  std::string resolve(const std::string& file) const {
    if (file.empty() || base_dir_.empty() || file.front() == '/') return file;
    return (std::filesystem::path(base_dir_) / file).lexically_normal().string();
  }

  std::string base_dir_;
  size_t visited_ = 0;
  size_t text_bytes_ = 0;
};

// The number of YAML documents in `text`, read as events before any tree is built; throws
// TooManyYamlNodes past kMaxYamlNodes. Also guards against a yaml-cpp 0.7 bug: on some
// malformed input (a stray ',' at the top level, "!tag,") its parser stops consuming tokens and
// reports the same empty document forever, so YAML::LoadAll never returns
// (jbeder/yaml-cpp#1040, fixed upstream by #1319). A document that starts where the previous one
// started made no progress: that is reported as a syntax error at that place. Throws
// ParserException on syntax errors.
size_t count_documents(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  YamlPrescan starts;
  size_t documents = 0;
  int previous_pos = -1;
  while (parser.HandleNextDocument(starts)) {
    if (starts.last.pos <= previous_pos) {
      auto at = static_cast<size_t>(starts.last.pos);
      std::string what = at < text.size() ? "unexpected '" + text.substr(at, 1) + "'"
                                          : std::string("unexpected end of input");
      throw YAML::ParserException(starts.last, what);
    }
    previous_pos = starts.last.pos;
    ++documents;
  }
  return documents;
}

}  // namespace

bool internal::listener_key_applies(std::string_view key, Protocol p) {
  for (const ListenerKey& k : kListenerKeys) {
    if (k.key == key) return (k.protocols & bit(p)) != 0;
  }
  return false;
}

base::Result<Config> internal::decode_tree(const YAML::Node& root, const std::string& base_dir) {
  try {
    return Decoder(base_dir).document(root);
  } catch (DecodeError& e) {
    return std::move(e.error);
  } catch (const std::exception& e) {  // the decoder uses no yaml-cpp conversions: a bug
    return base::Error::internal(std::string("decoding the configuration failed: ") + e.what());
  }
}

base::Result<Config> decode_yaml(std::string_view text, const std::string& base_dir) {
  if (text.size() > kMaxYamlBytes) {
    return base::Error::config("", "document too large (more than 16 MiB)");
  }
  Config config;
  try {
    const std::string input(text);
    size_t documents = count_documents(input);
    if (documents > 1) {
      return base::Error::config("",
                                 "expected one YAML document, found " + std::to_string(documents));
    }
    YAML::Node root = documents == 1 ? YAML::Load(input) : YAML::Node();
    if (root.IsNull()) return base::Error::config("", "the document is empty");
    base::Result<Config> decoded = internal::decode_tree(root, base_dir);
    if (!decoded.ok()) return decoded.take_error();
    config = std::move(decoded).value();
  } catch (const TooManyYamlNodes&) {
    return base::Error::config("", "document too large (more than 1000000 YAML nodes)");
  } catch (const YAML::ParserException& e) {  // includes DeepRecursion (nesting too deep)
    std::string message = "YAML syntax error";
    if (!e.mark.is_null()) {
      message += " at line " + std::to_string(e.mark.line + 1) + ", column " +
                 std::to_string(e.mark.column + 1);
    }
    return base::Error::config("", message + ": " + e.msg);
  } catch (const YAML::Exception& e) {  // the decoder uses no yaml-cpp conversions: a bug
    return base::Error::internal(std::string("decoding YAML failed: ") + e.what());
  } catch (const std::exception& e) {
    return base::Error::internal(std::string("decoding YAML failed: ") + e.what());
  } catch (...) {
    return base::Error::internal("decoding YAML failed: unknown exception");
  }
  if (base::Status valid = validate(config); !valid) return valid.take_error();
  return config;
}

base::Result<Config> load_yaml_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) {
    int err = errno;
    return base::Error::system(err, "cannot open " + path + ": " + std::strerror(err));
  }
  std::string text;
  std::array<char, 64 * 1024> buffer;
  while (size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get())) {
    text.append(buffer.data(), n);
    if (text.size() > kMaxYamlBytes) {
      return base::Error::config("", path + ": document too large (more than 16 MiB)");
    }
  }
  if (std::ferror(file.get())) {
    int err = errno;
    return base::Error::system(err, "cannot read " + path + ": " + std::strerror(err));
  }
  return decode_yaml(text, std::filesystem::path(path).parent_path().string());
}

}  // namespace fulcrum::config
