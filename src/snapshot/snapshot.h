// The immutable runtime view of configuration that workers see. Built once per generation on the
// control thread (config/compile), shared read-only by all workers as shared_ptr<const ...>.
// A connection keeps the Listener it started with (and through it its group and balancer table)
// until it ends, whatever newer generations say.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "balance/balancer.h"
#include "net/address.h"
#include "snapshot/acl.h"
#include "snapshot/routes.h"
#include "tls/server_context.h"

namespace fulcrum::snapshot {

enum class Protocol : uint8_t { kTcp, kUdp, kHttp, kHttps };
enum class ProxyProtocol : uint8_t { kNone, kV1, kV2 };

// A backend's health as seen by one listener's checks. kUnchecked and kHealthy backends take new
// connections; kUnhealthy ones do not (unless the listener is fail_open and all are unhealthy).
enum class Health : uint8_t { kUnchecked, kHealthy, kUnhealthy };
std::string_view to_string(Health h);
// What an operator sees for a backend: "draining" when its weight is 0 (it keeps its connections
// for drain_timeout and gets no new ones), else its health ("healthy", "unhealthy", "unchecked").
std::string_view backend_status(uint32_t weight, Health h);

// The health of every (listener, backend) pair, keyed by health_key(). Kept by the control
// plane's health monitor, read by config::compile. [control]
using HealthTable = std::unordered_map<std::string, Health>;
// A sticky-session token names a backend without revealing it: 16 hex digits of a hash of the
// backend's id keyed with a secret the process chose (a client cannot tell which token belongs to
// which address).
std::string sticky_token(uint64_t secret, uint64_t backend_id);

std::string health_key(std::string_view lb_name, std::string_view listener_id,
                       std::string_view backend_name);

// A listener's active health check, resolved (durations in ms, port 0 = the backend's port).
struct HealthCheck {
  bool enabled = true;
  enum class Type : uint8_t { kTcp, kHttp, kUdp } type = Type::kTcp;
  uint16_t port = 0;
  int64_t interval_ms = 2000;
  int64_t timeout_ms = 5000;
  uint32_t healthy_threshold = 3;
  uint32_t unhealthy_threshold = 3;
  // kHttp:
  std::string method = "HEAD";
  std::string uri = "/";
  std::string domain;                    // Host; empty = the backend's address
  uint32_t http_code_classes = 0b01100;  // bit n set: nxx accepted (default 2xx, 3xx)
  // kUdp: the datagram sent (may be empty) and the text a reply must contain. With no `expect`,
  // a check passes unless the backend's host answers ICMP port-unreachable within the timeout
  // (any reply passes at once).
  std::string request;
  std::string expect;
  bool operator==(const HealthCheck&) const = default;
};

struct Backend {
  std::string name;  // "address:port" as configured, for logs and metrics
  net::SocketAddress address;
  uint32_t weight = 100;  // 0 = no new connections
  uint64_t id = 0;        // stable across generations: hash of name
};

struct ServerGroup {
  std::string name;
  std::vector<Backend> backends;
  std::unordered_map<uint64_t, uint32_t> index_by_id;  // Backend::id -> index in backends
};

// Where an HTTP request goes: a server group with this listener's view of its health and a
// balancer table, or a redirect. targets[0] of a listener is its default server group.
struct HttpTarget {
  std::string name;                          // the rule's name, or "" for the default group
  std::shared_ptr<const ServerGroup> group;  // null for a redirect
  std::vector<Health> health;                // index-aligned with group->backends
  std::shared_ptr<const balance::Table> table;
  std::string redirect;                    // absolute URL or path: answered with 302 Location
  std::vector<std::string> sticky_tokens;  // per backend, when the listener has sticky sessions
};

struct StickySession {
  enum class Type : uint8_t { kNone, kInsert, kServer } type = Type::kNone;
  int64_t cookie_timeout_s = 0;  // kInsert: Max-Age of the cookie
  std::string cookie;            // kServer: the backend's cookie, prefixed with the token
  std::string cookie_name;       // kInsert: the cookie Fulcrum sets (SERVERID by default)
  std::string attributes;        // kInsert: "; Max-Age=N; Path=/; HttpOnly; SameSite=Lax"...
};

struct XForwarded {
  bool proto = false;  // X-Forwarded-Proto
  bool port = false;   // X-Forwarded-Port
  bool lb_id = false;  // SLB-ID
  bool lb_ip = false;  // SLB-IP
};

struct Listener {
  std::string lb_name;
  std::string id;  // "tcp:8000"
  Protocol protocol = Protocol::kTcp;
  net::SocketAddress bind;  // load balancer address + listener port
  bool running = true;
  balance::Scheduler scheduler = balance::Scheduler::kWrr;
  std::shared_ptr<const ServerGroup> group;
  // Index-aligned with group->backends: this listener's view of their health.
  std::vector<Health> health;
  // Built for `group` with `scheduler`; an unhealthy backend has weight 0 here (all backends keep
  // their weights when every one is unhealthy and fail_open is set).
  std::shared_ptr<const balance::Table> table;
  HealthCheck health_check;
  int64_t connect_timeout_ms = 5000;
  int64_t idle_timeout_ms = 900000;
  int64_t persistence_timeout_ms = 0;  // 0 = no source-IP persistence
  int64_t drain_timeout_ms = 300000;
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  bool fail_open = false;
  // Which clients may open a connection (TCP, HTTP) or a flow (UDP). Checked once per new
  // connection, against the generation current at accept; L7 listeners get kNone for an empty
  // white list (PRODUCT.md §2: empty white list, L4 drops all, L7 allows all).
  AccessControl access;
  uint32_t connect_attempts = 3;  // first try + at most 2 retries on other backends
  // HTTP only:
  std::vector<HttpTarget> targets;           // [0] = the default group (same as group/table)
  std::shared_ptr<const RouteTable> routes;  // Rule::target indexes `targets`
  int64_t request_timeout_ms = 60000;        // no response head by then: 504
  XForwarded x_forwarded;
  std::string lb_address;  // for SLB-IP
  StickySession sticky;
  bool gzip = true;  // compress text responses for clients that accept gzip
  bool access_log = false;
  // HTTP only: every request is answered with a redirect to https://host[:port]/path (0 = off).
  uint16_t redirect_https_port = 0;
  // HTTPS only: the TLS contexts of this generation (certificates, policy, client CA, ALPN).
  std::shared_ptr<const tls::ServerContext> tls;
};

struct Snapshot {
  uint64_t generation = 0;
  std::vector<std::shared_ptr<const Listener>> listeners;
};

}  // namespace fulcrum::snapshot
