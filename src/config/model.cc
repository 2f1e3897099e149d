#include "config/model.h"

#include <array>
#include <utility>

namespace fulcrum::config {
namespace {

// One spelling per enumerator, indexed by the enumerator's value.
constexpr std::array<std::string_view, 5> kSchedulerNames = {"wrr", "rr", "wlc", "sch", "tch"};
constexpr std::array<std::string_view, 4> kProtocolNames = {"tcp", "udp", "http", "https"};
constexpr std::array<std::string_view, 3> kProxyProtocolNames = {"none", "v1", "v2"};
constexpr std::array<std::string_view, 2> kAllUnhealthyNames = {"fail_closed", "fail_open"};
constexpr std::array<std::string_view, 2> kAclTypeNames = {"white", "black"};
constexpr std::array<std::string_view, 2> kListenerStatusNames = {"running", "stopped"};

template <class E, size_t N>
std::string_view name_of(const std::array<std::string_view, N>& names, E value) {
  auto i = static_cast<size_t>(value);
  return i < N ? names[i] : std::string_view("?");
}

template <class E, size_t N>
std::optional<E> parse_name(const std::array<std::string_view, N>& names, std::string_view text) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == text) return static_cast<E>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(Scheduler s) {
  return name_of(kSchedulerNames, s);
}
std::string_view to_string(Protocol p) {
  return name_of(kProtocolNames, p);
}
std::string_view to_string(ProxyProtocol p) {
  return name_of(kProxyProtocolNames, p);
}
std::string_view to_string(AllUnhealthy a) {
  return name_of(kAllUnhealthyNames, a);
}
std::string_view to_string(AclType t) {
  return name_of(kAclTypeNames, t);
}
std::string_view to_string(ListenerStatus s) {
  return name_of(kListenerStatusNames, s);
}

std::optional<Scheduler> parse_scheduler(std::string_view text) {
  return parse_name<Scheduler>(kSchedulerNames, text);
}
std::optional<Protocol> parse_protocol(std::string_view text) {
  return parse_name<Protocol>(kProtocolNames, text);
}
std::optional<ProxyProtocol> parse_proxy_protocol(std::string_view text) {
  return parse_name<ProxyProtocol>(kProxyProtocolNames, text);
}
std::optional<AllUnhealthy> parse_all_unhealthy(std::string_view text) {
  return parse_name<AllUnhealthy>(kAllUnhealthyNames, text);
}
std::optional<AclType> parse_acl_type(std::string_view text) {
  return parse_name<AclType>(kAclTypeNames, text);
}
std::optional<ListenerStatus> parse_listener_status(std::string_view text) {
  return parse_name<ListenerStatus>(kListenerStatusNames, text);
}

std::string Listener::id() const {
  std::string out(to_string(protocol));
  out += ':';
  out += std::to_string(port);
  return out;
}

int64_t default_idle_timeout_ms(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return 900'000;
    case Protocol::kUdp:
      return 90'000;
    case Protocol::kHttp:
    case Protocol::kHttps:
      return 15'000;
  }
  return 900'000;
}

HealthCheck default_health_check(Protocol p) {
  HealthCheck hc;
  switch (p) {
    case Protocol::kTcp:
      hc.type = "tcp";
      break;
    case Protocol::kUdp:
      hc.type = "udp";
      hc.interval_ms = 5'000;
      hc.timeout_ms = 10'000;
      break;
    case Protocol::kHttp:
    case Protocol::kHttps:
      hc.type = "http";
      break;
  }
  return hc;
}

Listener default_listener(Protocol p) {
  Listener l;
  l.protocol = p;
  l.idle_timeout_ms = default_idle_timeout_ms(p);
  l.health_check = default_health_check(p);
  return l;
}

}  // namespace fulcrum::config
