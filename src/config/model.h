// The configuration model: plain, copyable structs that describe what the user asked for. The
// field names are the user-facing names of PRODUCT.md (they double as the REST API's JSON names);
// durations are milliseconds in fields named `*_ms` (the YAML/JSON key drops the suffix).
//
// A Config says nothing about its own validity: build one with decode_yaml() (config/yaml.h), which
// applies defaults and runs validate() (config/validate.h), or check one with validate() yourself.
// Pure data, no I/O; safe to share across threads once built (treat as immutable). Every struct
// compares field by field (defaulted operator==).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fulcrum::config {

// Same enumerators as balance::Scheduler; the compile step maps one onto the other.
enum class Scheduler : uint8_t { kWrr, kRr, kWlc, kSch, kTch };
enum class Protocol : uint8_t { kTcp, kUdp, kHttp, kHttps };
enum class ProxyProtocol : uint8_t { kNone, kV1, kV2 };
enum class AllUnhealthy : uint8_t { kFailClosed, kFailOpen };
enum class AclType : uint8_t { kWhite, kBlack };
enum class ListenerStatus : uint8_t { kRunning, kStopped };

// The user-facing spelling ("wrr", "tcp", "fail_open", ...) and back. parse_* is exact and
// case-sensitive; nullopt for anything else.
std::string_view to_string(Scheduler s);
std::string_view to_string(Protocol p);
std::string_view to_string(ProxyProtocol p);
std::string_view to_string(AllUnhealthy a);
std::string_view to_string(AclType t);
std::string_view to_string(ListenerStatus s);
std::optional<Scheduler> parse_scheduler(std::string_view text);
std::optional<Protocol> parse_protocol(std::string_view text);
std::optional<ProxyProtocol> parse_proxy_protocol(std::string_view text);
std::optional<AllUnhealthy> parse_all_unhealthy(std::string_view text);
std::optional<AclType> parse_acl_type(std::string_view text);
std::optional<ListenerStatus> parse_listener_status(std::string_view text);

// HTTP and HTTPS listeners are layer 7; TCP and UDP are layer 4.
constexpr bool is_l7(Protocol p) {
  return p == Protocol::kHttp || p == Protocol::kHttps;
}
// The transport a listener binds: UDP for udp, TCP for everything else.
constexpr bool uses_udp(Protocol p) {
  return p == Protocol::kUdp;
}

struct Backend {
  std::string address;  // IPv4 or IPv6 literal
  uint16_t port = 0;
  uint32_t weight = 100;  // 0–100; 0 = no new traffic
  std::string zone;
  std::string description;
  bool operator==(const Backend&) const = default;
};

struct ServerGroup {
  std::string name;  // unique inside its load balancer
  std::vector<Backend> backends;
  bool operator==(const ServerGroup&) const = default;
};

struct AclRef {
  AclType type = AclType::kWhite;
  std::string acl;  // Acl::name
  bool operator==(const AclRef&) const = default;
};

struct HealthCheck {
  bool enabled = true;
  std::string type = "tcp";          // tcp | http | udp; default by protocol (default_health_check)
  std::optional<uint16_t> port;      // unset = the backend's port
  int64_t interval_ms = 2000;        // 1–50 s; default 2 s (UDP 5 s)
  int64_t timeout_ms = 5000;         // 1–300 s; default 5 s (UDP 10 s)
  uint32_t healthy_threshold = 3;    // 2–10
  uint32_t unhealthy_threshold = 3;  // 2–10
  // type http only:
  std::string method = "HEAD";  // HEAD | GET
  std::string uri = "/";
  std::string domain;  // Host header; empty = the backend's address
  std::vector<std::string> http_codes = {"2xx", "3xx"};
  // type udp only (both empty: healthy unless ICMP port-unreachable):
  std::string request;
  std::string expect;
  bool operator==(const HealthCheck&) const = default;
};

struct StickySession {
  std::string type;              // insert | server
  int64_t cookie_timeout_s = 0;  // insert: 1–86400 s (required)
  std::string cookie;            // server: the cookie the backend sets (required)
  // insert only: the cookie Fulcrum sets and its attributes.
  std::string cookie_name = "SERVERID";
  std::string path = "/";
  std::string same_site = "Lax";  // Lax | Strict | None
  bool http_only = true;
  bool secure = false;  // decoded as true on https listeners unless given
  bool operator==(const StickySession&) const = default;
};

struct XForwarded {
  bool proto = false;  // X-Forwarded-Proto
  bool port = false;   // X-Forwarded-Port
  bool lb_id = false;  // SLB-ID
  bool lb_ip = false;  // SLB-IP
  bool operator==(const XForwarded&) const = default;
};

struct RedirectToHttps {
  uint16_t port = 443;  // an HTTPS listener of the same load balancer
  bool operator==(const RedirectToHttps&) const = default;
};

// A forwarding rule of an HTTP/HTTPS listener: matches domain and/or path prefix, then sends to
// server_group or answers with a redirect to `redirect` (exactly one of the two is set).
struct Rule {
  std::string name;
  std::string domain;  // exact (a.example.com) or wildcard (*.example.com); empty = any
  std::string path;    // prefix, starts with '/'; empty = any
  std::string server_group;
  std::string redirect;  // absolute URL (http:// or https://) or a path starting with '/'
  bool operator==(const Rule&) const = default;
};

struct Listener {
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;
  std::string server_group;  // the default group; may be empty only with redirect_to_https
  ListenerStatus status = ListenerStatus::kRunning;
  Scheduler scheduler = Scheduler::kWrr;
  std::optional<AclRef> acl;
  int32_t bandwidth_mbps = -1;  // -1 = unlimited, else 1–5120
  int64_t drain_timeout_ms = 300000;
  AllUnhealthy all_unhealthy = AllUnhealthy::kFailClosed;
  // tcp, udp:
  int64_t persistence_timeout_ms = 0;  // 0 = off
  int64_t idle_timeout_ms = 900000;    // default by protocol: tcp 900 s, udp 90 s, http(s) 15 s
  int64_t connect_timeout_ms = 5000;
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  // http, https:
  int64_t request_timeout_ms = 60000;
  std::optional<StickySession> sticky_session;
  XForwarded x_forwarded;
  bool gzip = true;
  std::optional<RedirectToHttps> redirect_to_https;  // http only
  std::vector<Rule> rules;
  // https:
  std::vector<std::string> certificates;  // Certificate::name; the first is the default
  std::string tls_policy = "tls_1_2";
  std::string ca_certificate;  // Certificate::name of type ca; enables mutual TLS
  bool http2 = true;
  bool access_log = false;
  HealthCheck health_check;

  // "<protocol>:<port>", e.g. "tcp:80": the listener's identity inside its load balancer.
  std::string id() const;

  bool operator==(const Listener&) const = default;
};

struct Zones {
  std::string master;
  std::string slave;
  bool operator==(const Zones&) const = default;
};

struct LoadBalancer {
  std::string name;
  std::string address;  // the service address (VIP); 0.0.0.0 or :: bind every address
  std::string address_type = "intranet";  // internet | intranet
  std::string status = "active";          // active | inactive
  int32_t bandwidth_mbps = -1;            // -1 = unlimited, else 1–5120
  std::string charge_type = "pay_by_traffic";
  std::optional<Zones> zones;
  std::map<std::string, std::string> tags;
  std::vector<ServerGroup> server_groups;
  std::vector<Listener> listeners;
  bool operator==(const LoadBalancer&) const = default;
};

struct Certificate {
  std::string name;
  std::string type = "server";  // server | ca
  // Exactly one of cert_file / cert_pem, and for type server exactly one of key_file / key_pem
  // (validate() checks it). The document keys are cert_file, key_file, cert and key.
  std::string cert_file;  // from YAML, resolved against the YAML file's folder
  std::string key_file;
  std::string cert_pem;  // PEM chain (from the API / the store, or `cert` in YAML)
  std::string key_pem;   // write-only: never returned by the API nor logged
  bool operator==(const Certificate&) const = default;
};

struct AclEntry {
  std::string cidr;  // 10.0.0.0/8, 2001:db8::/32, or one address (a /32 or /128)
  std::string comment;
  bool operator==(const AclEntry&) const = default;
};

struct Acl {
  std::string name;
  std::vector<AclEntry> entries;  // at most 300 (kMaxAclEntries, validate.h)
  bool operator==(const Acl&) const = default;
};

struct Config {
  std::vector<LoadBalancer> loadbalancers;
  std::vector<Certificate> certificates;
  std::vector<Acl> acls;
  bool operator==(const Config&) const = default;
};

// Defaults that depend on the protocol. default_listener(p) is a Listener of protocol p with
// every default applied (idle_timeout, health check type/interval/timeout).
int64_t default_idle_timeout_ms(Protocol p);
HealthCheck default_health_check(Protocol p);
Listener default_listener(Protocol p);

}  // namespace fulcrum::config
