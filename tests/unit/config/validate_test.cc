#include "config/validate.h"

#include <gtest/gtest.h>

#include <string>

namespace fulcrum::config {
namespace {

Listener listener(Protocol p, uint16_t port) {
  Listener l = default_listener(p);
  l.port = port;
  l.server_group = "app";
  return l;
}

// A valid configuration: load balancer "web" with listeners[0] tcp:80, [1] udp:53, [2] http:8080,
// [3] https:8443; a server certificate, a CA certificate and one ACL.
Config valid_config() {
  Config c;
  LoadBalancer lb;
  lb.name = "web";
  lb.address = "10.1.1.1";
  ServerGroup app;
  app.name = "app";
  app.backends = {Backend{"10.0.0.1", 80, 100, "", ""}, Backend{"10.0.0.2", 80, 50, "", ""}};
  lb.server_groups = {app};
  lb.listeners = {listener(Protocol::kTcp, 80), listener(Protocol::kUdp, 53),
                  listener(Protocol::kHttp, 8080), listener(Protocol::kHttps, 8443)};
  lb.listeners[3].certificates = {"web-cert"};
  c.loadbalancers = {lb};
  c.certificates = {Certificate{"web-cert", "server", "web.pem", "web.key", "", ""},
                    Certificate{"root", "ca", "ca.pem", "", "", ""}};
  c.acls = {Acl{"office", {AclEntry{"10.0.0.0/8", "office"}}}};
  return c;
}

// "ok" or the error as "field: message".
std::string error_of(const Config& c) {
  base::Status s = validate(c);
  return s.ok() ? "ok" : s.error().to_string();
}

LoadBalancer& lb0(Config& c) {
  return c.loadbalancers[0];
}
Listener& tcp(Config& c) {
  return c.loadbalancers[0].listeners[0];
}
Listener& udp(Config& c) {
  return c.loadbalancers[0].listeners[1];
}
Listener& http(Config& c) {
  return c.loadbalancers[0].listeners[2];
}
Listener& https(Config& c) {
  return c.loadbalancers[0].listeners[3];
}
Backend& backend(Config& c, size_t i) {
  return c.loadbalancers[0].server_groups[0].backends[i];
}

TEST(Validate, ValidConfigPasses) {
  EXPECT_EQ(error_of(valid_config()), "ok");
  EXPECT_EQ(error_of(Config{}), "ok");
}

TEST(Validate, NamesAreRequiredShortAndPlain) {
  Config c = valid_config();
  lb0(c).name = "";
  EXPECT_EQ(error_of(c), "loadbalancers[0].name: is required");
  lb0(c).name = std::string(65, 'a');
  EXPECT_EQ(error_of(c), "loadbalancers[0].name: must be at most 64 characters");
  lb0(c).name = std::string(64, 'a');
  EXPECT_EQ(error_of(c), "ok");
  for (const char* bad : {"a b", "web\n", "a/b", "é", "a:b"}) {
    lb0(c).name = bad;
    EXPECT_EQ(error_of(c),
              "loadbalancers[0].name: may contain only letters, digits, '.', '_' and '-'")
        << bad;
  }
  lb0(c).name = "Web-1.prod_a";
  EXPECT_EQ(error_of(c), "ok");

  c = valid_config();
  c.loadbalancers[0].server_groups[0].name = "";
  EXPECT_EQ(error_of(c), "loadbalancers[0].server_groups[0].name: is required");
  c = valid_config();
  c.certificates[1].name = "bad name";
  EXPECT_EQ(error_of(c),
            "certificates[1].name: may contain only letters, digits, '.', '_' and '-'");
  c = valid_config();
  c.acls[0].name = "";
  EXPECT_EQ(error_of(c), "acls[0].name: is required");
}

TEST(Validate, LoadBalancerNamesAreUnique) {
  Config c = valid_config();
  LoadBalancer other = lb0(c);
  other.address = "10.1.1.2";
  c.loadbalancers.push_back(other);
  EXPECT_EQ(error_of(c), "loadbalancers[1].name: already used by loadbalancers[0]");
}

TEST(Validate, ServerGroupNamesAreUniquePerLoadBalancer) {
  Config c = valid_config();
  lb0(c).server_groups.push_back(ServerGroup{"app", {}});
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[1].name: already used by "
            "loadbalancers[0].server_groups[0]");
}

TEST(Validate, CertificateAndAclNamesAreUnique) {
  Config c = valid_config();
  c.certificates[1].name = "web-cert";
  EXPECT_EQ(error_of(c), "certificates[1].name: already used by certificates[0]");
  c = valid_config();
  c.acls.push_back(c.acls[0]);
  EXPECT_EQ(error_of(c), "acls[1].name: already used by acls[0]");
}

TEST(Validate, ListenerServerGroupMustExist) {
  Config c = valid_config();
  tcp(c).server_group = "nope";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].server_group: unknown server group \"nope\"");
  tcp(c).server_group = "";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].server_group: is required");
}

TEST(Validate, RuleServerGroupMustExist) {
  Config c = valid_config();
  http(c).rules = {Rule{"api", "api.example.com", "/v1", "nope", ""}};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].rules[0].server_group: unknown server group \"nope\"");
}

TEST(Validate, LoadBalancerAddress) {
  Config c = valid_config();
  for (const char* good : {"0.0.0.0", "::", "2001:db8::1", "127.0.0.1"}) {
    lb0(c).address = good;
    EXPECT_EQ(error_of(c), "ok") << good;
  }
  for (const char* bad :
       {"localhost", "10.1.1", "10.1.1.256", "[::1]", "fe80::1%eth0", " 10.1.1.1"}) {
    lb0(c).address = bad;
    EXPECT_EQ(error_of(c), "loadbalancers[0].address: must be an IPv4 or IPv6 address") << bad;
  }
  lb0(c).address = std::string("10.1.1.1\0x", 10);
  EXPECT_EQ(error_of(c), "loadbalancers[0].address: must be an IPv4 or IPv6 address");
  lb0(c).address = "";
  EXPECT_EQ(error_of(c), "loadbalancers[0].address: is required");
}

TEST(Validate, BackendAddress) {
  Config c = valid_config();
  backend(c, 1).address = "example.com";
  EXPECT_EQ(
      error_of(c),
      "loadbalancers[0].server_groups[0].backends[1].address: must be an IPv4 or IPv6 address");
  backend(c, 1).address = "0.0.0.0";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[0].backends[1].address: must not be 0.0.0.0 or ::");
  backend(c, 1).address = "::";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[0].backends[1].address: must not be 0.0.0.0 or ::");
  backend(c, 1).address = "";
  EXPECT_EQ(error_of(c), "loadbalancers[0].server_groups[0].backends[1].address: is required");
  backend(c, 1).address = "2001:db8::2";
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, Ports) {
  Config c = valid_config();
  backend(c, 0).port = 0;
  EXPECT_EQ(error_of(c), "loadbalancers[0].server_groups[0].backends[0].port: must be 1–65535");
  c = valid_config();
  tcp(c).port = 0;
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].port: must be 1–65535");
  c = valid_config();
  tcp(c).health_check.port = 0;
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].health_check.port: must be 1–65535");
  tcp(c).health_check.port = 8080;
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, Weight) {
  Config c = valid_config();
  backend(c, 1).weight = 101;
  EXPECT_EQ(error_of(c), "loadbalancers[0].server_groups[0].backends[1].weight: must be 0–100");
  backend(c, 1).weight = 0;
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, DuplicateBackend) {
  Config c = valid_config();
  backend(c, 1).address = "10.0.0.1";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[0].backends[1]: same address and port as "
            "loadbalancers[0].server_groups[0].backends[0]");
  backend(c, 1).address = "::ffff:10.0.0.1";  // the same address, IPv4-mapped
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[0].backends[1]: same address and port as "
            "loadbalancers[0].server_groups[0].backends[0]");
  backend(c, 1).port = 81;
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, BackendZoneAndDescription) {
  Config c = valid_config();
  backend(c, 0).zone = "zone a";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[0].backends[0].zone: may contain only "
            "letters, digits, '.', '_' and '-'");
  backend(c, 0).zone = "zone-a";
  backend(c, 0).description = "line\nbreak";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[0].backends[0].description: must not "
            "contain control characters");
  backend(c, 0).description = std::string(257, 'x');
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].server_groups[0].backends[0].description: must be at "
            "most 256 characters");
}

TEST(Validate, LoadBalancerFields) {
  Config c = valid_config();
  lb0(c).address_type = "public";
  EXPECT_EQ(error_of(c), "loadbalancers[0].address_type: must be internet or intranet");
  c = valid_config();
  lb0(c).status = "on";
  EXPECT_EQ(error_of(c), "loadbalancers[0].status: must be active or inactive");
  c = valid_config();
  lb0(c).charge_type = "pay_by_bandwidth";
  EXPECT_EQ(error_of(c), "loadbalancers[0].charge_type: must be pay_by_traffic");
  c = valid_config();
  lb0(c).zones = Zones{"zone-a", "zone-a"};
  EXPECT_EQ(error_of(c), "loadbalancers[0].zones.slave: must differ from zones.master");
  lb0(c).zones = Zones{"zone-a", ""};
  EXPECT_EQ(error_of(c), "loadbalancers[0].zones.slave: is required");
  lb0(c).zones = Zones{"zone-a", "zone-b"};
  EXPECT_EQ(error_of(c), "ok");
  lb0(c).tags["env"] = "a\tb";
  EXPECT_EQ(error_of(c), "loadbalancers[0].tags.env: must not contain control characters");
  lb0(c).tags.clear();
  for (int i = 0; i < 21; ++i) lb0(c).tags["k" + std::to_string(i)] = "v";
  EXPECT_EQ(error_of(c), "loadbalancers[0].tags: must have at most 20 tags");
}

TEST(Validate, Bandwidth) {
  Config c = valid_config();
  for (int32_t bad : {0, -2, 5121}) {
    lb0(c).bandwidth_mbps = bad;
    EXPECT_EQ(error_of(c), "loadbalancers[0].bandwidth_mbps: must be -1 (unlimited) or 1–5120")
        << bad;
  }
  lb0(c).bandwidth_mbps = 5120;
  tcp(c).bandwidth_mbps = 0;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].bandwidth_mbps: must be -1 (unlimited) or "
            "1–5120");
  lb0(c).bandwidth_mbps = 100;
  tcp(c).bandwidth_mbps = 200;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].bandwidth_mbps: must not exceed the load "
            "balancer's bandwidth_mbps (100)");
  tcp(c).bandwidth_mbps = 100;
  EXPECT_EQ(error_of(c), "ok");
}

// Every duration range of PRODUCT.md §2: one past each end fails with the range in seconds.
TEST(Validate, DurationRanges) {
  struct Case {
    std::string field;
    int64_t Listener::*member;
    Listener& (*pick)(Config&);
    int64_t lo_ms, hi_ms;
    std::string message;
  };
  const Case cases[] = {
      {"listeners[0].drain_timeout", &Listener::drain_timeout_ms, tcp, 0, 900'000,
       "must be 0–900 s"},
      {"listeners[0].persistence_timeout", &Listener::persistence_timeout_ms, tcp, 0, 3'600'000,
       "must be 0–3600 s"},
      {"listeners[0].idle_timeout", &Listener::idle_timeout_ms, tcp, 10'000, 900'000,
       "must be 10–900 s"},
      {"listeners[1].idle_timeout", &Listener::idle_timeout_ms, udp, 10'000, 900'000,
       "must be 10–900 s"},
      {"listeners[2].idle_timeout", &Listener::idle_timeout_ms, http, 1'000, 60'000,
       "must be 1–60 s"},
      {"listeners[3].idle_timeout", &Listener::idle_timeout_ms, https, 1'000, 60'000,
       "must be 1–60 s"},
      {"listeners[0].connect_timeout", &Listener::connect_timeout_ms, tcp, 1'000, 60'000,
       "must be 1–60 s"},
      {"listeners[2].request_timeout", &Listener::request_timeout_ms, http, 1'000, 180'000,
       "must be 1–180 s"},
  };
  for (const Case& k : cases) {
    Config c = valid_config();
    k.pick(c).*k.member = k.lo_ms;
    EXPECT_EQ(error_of(c), "ok") << k.field;
    k.pick(c).*k.member = k.hi_ms;
    EXPECT_EQ(error_of(c), "ok") << k.field;
    k.pick(c).*k.member = k.hi_ms + 1;
    EXPECT_EQ(error_of(c), "loadbalancers[0]." + k.field + ": " + k.message);
    if (k.lo_ms > 0) {
      k.pick(c).*k.member = k.lo_ms - 1;
      EXPECT_EQ(error_of(c), "loadbalancers[0]." + k.field + ": " + k.message);
    }
  }
}

TEST(Validate, HealthCheckRanges) {
  Config c = valid_config();
  tcp(c).health_check.interval_ms = 51'000;
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].health_check.interval: must be 1–50 s");
  tcp(c).health_check.interval_ms = 500;
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].health_check.interval: must be 1–50 s");
  tcp(c).health_check.interval_ms = 1'000;
  tcp(c).health_check.timeout_ms = 301'000;
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].health_check.timeout: must be 1–300 s");
  tcp(c).health_check.timeout_ms = 300'000;
  EXPECT_EQ(error_of(c), "ok");
  tcp(c).health_check.healthy_threshold = 1;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].health_check.healthy_threshold: must be 2–10");
  tcp(c).health_check.healthy_threshold = 10;
  tcp(c).health_check.unhealthy_threshold = 11;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].health_check.unhealthy_threshold: must be 2–10");
}

TEST(Validate, HealthCheckTypeFitsTheProtocol) {
  Config c = valid_config();
  udp(c).health_check.type = "tcp";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[1].health_check.type: must be udp for udp "
            "listeners");
  c = valid_config();
  tcp(c).health_check.type = "udp";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].health_check.type: must be tcp or http for "
            "tcp listeners");
  tcp(c).health_check.type = "icmp";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].health_check.type: must be tcp, http or udp");
  tcp(c).health_check.type = "http";  // an HTTP check of a TCP service is fine
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, HttpHealthCheck) {
  Config c = valid_config();
  HealthCheck& hc = http(c).health_check;
  hc.method = "POST";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[2].health_check.method: must be HEAD or GET");
  hc.method = "GET";
  hc.uri = "health";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[2].health_check.uri: must start with '/'");
  hc.uri = "/a b";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].health_check.uri: must not contain spaces "
            "or control characters");
  hc.uri = "/health?full=1";
  hc.domain = "-bad.example.com";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].health_check.domain: must be a domain name "
            "such as www.example.com");
  hc.domain = "www.example.com";
  hc.http_codes = {"2xx", "200"};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].health_check.http_codes[1]: must be 2xx, "
            "3xx, 4xx or 5xx");
  hc.http_codes = {};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].health_check.http_codes: must list at "
            "least one of 2xx, 3xx, 4xx, 5xx");
  hc.http_codes = {"4xx", "5xx"};
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, UdpHealthCheckPayloads) {
  Config c = valid_config();
  udp(c).health_check.request = std::string(513, 'x');
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[1].health_check.request: must be at most 512 "
            "bytes");
  c = valid_config();
  tcp(c).health_check.expect = "pong";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].health_check.expect: only for health "
            "checks of type udp");
}

TEST(Validate, SameProtocolAndPortTwiceInALoadBalancer) {
  Config c = valid_config();
  lb0(c).listeners.push_back(listener(Protocol::kTcp, 80));
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[4].port: listener tcp:80 already defined by "
            "loadbalancers[0].listeners[0]");
}

TEST(Validate, SameTransportPortInOneLoadBalancer) {
  Config c = valid_config();
  http(c).port = 80;  // tcp:80 and http:80 both bind TCP port 80
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].port: port 80 already used by "
            "loadbalancers[0].listeners[0]");
  c = valid_config();
  udp(c).port = 80;  // udp:80 next to tcp:80 is fine
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, PortConflictsAcrossLoadBalancers) {
  Config c = valid_config();
  LoadBalancer other;
  other.name = "other";
  other.address = "10.1.1.1";
  other.server_groups = {ServerGroup{"app", {}}};
  other.listeners = {listener(Protocol::kHttp, 5000), listener(Protocol::kHttp, 80)};
  c.loadbalancers.push_back(other);
  EXPECT_EQ(error_of(c),
            "loadbalancers[1].listeners[1].port: port 80 already used by "
            "loadbalancers[0].listeners[0]");
  c.loadbalancers[1].address = "10.1.1.2";  // another address: no conflict
  EXPECT_EQ(error_of(c), "ok");
  c.loadbalancers[1].address = "0.0.0.0";  // the wildcard covers 10.1.1.1
  EXPECT_EQ(error_of(c),
            "loadbalancers[1].listeners[1].port: port 80 already used by "
            "loadbalancers[0].listeners[0]");
  c.loadbalancers[1].address = "::";  // dual-stack wildcard covers IPv4 too
  EXPECT_EQ(error_of(c),
            "loadbalancers[1].listeners[1].port: port 80 already used by "
            "loadbalancers[0].listeners[0]");
  c.loadbalancers[1].address = "2001:db8::1";
  EXPECT_EQ(error_of(c), "ok");
  c.loadbalancers[1].address = "::ffff:10.1.1.1";
  EXPECT_EQ(error_of(c),
            "loadbalancers[1].listeners[1].port: port 80 already used by "
            "loadbalancers[0].listeners[0]");
  c.loadbalancers[1].address = "10.1.1.1";
  c.loadbalancers[1].listeners[1] = listener(Protocol::kUdp, 80);  // other transport
  EXPECT_EQ(error_of(c), "ok");
  c.loadbalancers[1].listeners[1] = listener(Protocol::kTcp, 80);
  EXPECT_EQ(error_of(c),
            "loadbalancers[1].listeners[1].port: port 80 already used by "
            "loadbalancers[0].listeners[0]");
}

TEST(Validate, TchOnlyOnLayer4) {
  Config c = valid_config();
  tcp(c).scheduler = Scheduler::kTch;
  udp(c).scheduler = Scheduler::kTch;
  EXPECT_EQ(error_of(c), "ok");
  http(c).scheduler = Scheduler::kTch;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].scheduler: tch only for tcp and udp "
            "listeners");
}

TEST(Validate, ProxyProtocol) {
  Config c = valid_config();
  tcp(c).proxy_protocol = ProxyProtocol::kV1;
  udp(c).proxy_protocol = ProxyProtocol::kV2;
  EXPECT_EQ(error_of(c), "ok");
  udp(c).proxy_protocol = ProxyProtocol::kV1;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[1].proxy_protocol: must be none or v2 for udp "
            "listeners");
  c = valid_config();
  http(c).proxy_protocol = ProxyProtocol::kV2;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].proxy_protocol: only for tcp and udp "
            "listeners");
}

TEST(Validate, Layer7OnlySettingsOnLayer4Listeners) {
  Config c = valid_config();
  tcp(c).sticky_session = StickySession{"insert", 100, ""};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].sticky_session: only for http and https "
            "listeners");
  c = valid_config();
  udp(c).rules = {Rule{"r", "", "/", "app", ""}};
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[1].rules: only for http and https listeners");
  c = valid_config();
  tcp(c).x_forwarded.proto = true;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[0].x_forwarded: only for http and https "
            "listeners");
  c = valid_config();
  http(c).persistence_timeout_ms = 10'000;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].persistence_timeout: only for tcp and udp "
            "listeners");
  c = valid_config();
  tcp(c).certificates = {"web-cert"};
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].certificates: only for https listeners");
}

TEST(Validate, StickySession) {
  Config c = valid_config();
  http(c).sticky_session = StickySession{"insert", 86'400, ""};
  EXPECT_EQ(error_of(c), "ok");
  http(c).sticky_session->cookie_timeout_s = 86'401;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.cookie_timeout: must be "
            "1–86400 s");
  http(c).sticky_session->cookie_timeout_s = 0;
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.cookie_timeout: must be "
            "1–86400 s");
  http(c).sticky_session = StickySession{"server", 0, ""};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.cookie: is required for "
            "type server");
  http(c).sticky_session->cookie = "bad cookie";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.cookie: must be a cookie "
            "name (letters, digits and !#$%&'*+-.^_`|~)");
  http(c).sticky_session->cookie = "JSESSIONID";
  EXPECT_EQ(error_of(c), "ok");
  http(c).sticky_session = StickySession{"insert", 60, ""};
  http(c).sticky_session->cookie_name = "my cookie";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.cookie_name: must be a cookie name "
            "(letters, digits and !#$%&'*+-.^_`|~)");
  http(c).sticky_session->cookie_name = "LB";
  http(c).sticky_session->path = "app";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.path: must start with / (no ';' or "
            "control characters)");
  http(c).sticky_session->path = "/a;b";
  EXPECT_NE(error_of(c), "ok");
  http(c).sticky_session->path = "/app";
  http(c).sticky_session->same_site = "None";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.same_site: None needs secure: true "
            "(browsers drop it otherwise)");
  http(c).sticky_session->secure = true;
  EXPECT_EQ(error_of(c), "ok");
  http(c).sticky_session->type = "rewrite";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].sticky_session.type: must be insert or "
            "server");
}

TEST(Validate, RedirectToHttps) {
  Config c = valid_config();
  http(c).redirect_to_https = RedirectToHttps{443};
  http(c).server_group = "";  // a redirect-only listener needs no group
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].redirect_to_https.port: no https listener "
            "on port 443 in this load balancer");
  http(c).redirect_to_https->port = 8443;
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, Rules) {
  Config c = valid_config();
  std::vector<Rule>& rules = http(c).rules;
  rules = {Rule{"api", "api.example.com", "/v1", "app", ""},
           Rule{"wild", "*.example.com", "", "app", ""}, Rule{"root", "", "/", "app", ""},
           Rule{"old", "", "/old", "", "https://example.com/"}};
  EXPECT_EQ(error_of(c), "ok");
  rules[0].path = "v1";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[2].rules[0].path: must start with '/'");
  rules[0].path = "/v1";
  for (const char* bad :
       {"*", "*.", "a..b", "a.*.com", "api.example.com.", "a_b.com", "**.a.com"}) {
    rules[0].domain = bad;
    EXPECT_EQ(error_of(c),
              "loadbalancers[0].listeners[2].rules[0].domain: must be a domain name "
              "(a.example.com) or a wildcard (*.example.com)")
        << bad;
  }
  rules[0].domain = "api.example.com";
  rules[1].name = "api";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].rules[1].name: already used by "
            "loadbalancers[0].listeners[2].rules[0]");
  rules[1].name = "wild";
  rules[2].path = "";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[2].rules[2]: must set domain, path or both");
  rules[2].path = "/";
  rules[2].redirect = "/elsewhere";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].rules[2].redirect: cannot be combined with "
            "server_group");
  rules[2].server_group = "";
  rules[2].redirect = "";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].rules[2].server_group: is required (or set "
            "redirect)");
  rules[2].redirect = "ftp://x";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].rules[2].redirect: must be a URL (http://, "
            "https://) or a path ('/...')");
  rules[2].redirect = "/elsewhere";
  rules[3].domain = "api.example.com";
  rules[3].path = "/v1";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[2].rules[3]: same domain and path as "
            "loadbalancers[0].listeners[2].rules[0]");
}

TEST(Validate, HttpsCertificates) {
  Config c = valid_config();
  https(c).certificates = {};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[3].certificates: at least one certificate is "
            "required");
  https(c).certificates = {"web-cert", "missing"};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[3].certificates[1]: unknown certificate "
            "\"missing\"");
  https(c).certificates = {"root"};
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[3].certificates[0]: certificate \"root\" is "
            "not of type server");
  https(c).certificates = {"web-cert", "web-cert"};
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[3].certificates[1]: listed twice");
  https(c).certificates = {"web-cert"};
  https(c).ca_certificate = "web-cert";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[3].ca_certificate: certificate \"web-cert\" is "
            "not of type ca");
  https(c).ca_certificate = "nope";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[3].ca_certificate: unknown certificate "
            "\"nope\"");
  https(c).ca_certificate = "root";
  https(c).tls_policy = "tls_1_3";
  EXPECT_EQ(error_of(c),
            "loadbalancers[0].listeners[3].tls_policy: must be one of tls_1_0, "
            "tls_1_1, tls_1_2, tls_1_2_strict, tls_1_2_strict_with_1_3");
  https(c).tls_policy = "tls_1_2_strict";
  EXPECT_EQ(error_of(c), "ok");
}

TEST(Validate, CertificateFiles) {
  Config c = valid_config();
  c.certificates[0].key_file = "";
  EXPECT_EQ(error_of(c),
            "certificates[0].key_file: is required for server certificates (or key with the PEM "
            "text)");
  c.certificates[0].key_pem = "-----BEGIN PRIVATE KEY-----";
  EXPECT_EQ(error_of(c), "ok");
  c.certificates[1].cert_file = "";
  EXPECT_EQ(error_of(c), "certificates[1].cert_file: is required (or cert with the PEM text)");
  c.certificates[1].cert_file = "ca.pem";
  c.certificates[1].key_file = "ca.key";
  EXPECT_EQ(error_of(c), "certificates[1].key_file: only for server certificates");
  c.certificates[1].key_file = "";
  c.certificates[1].type = "client";
  EXPECT_EQ(error_of(c), "certificates[1].type: must be server or ca");
}

TEST(Validate, CertificatePemText) {
  Config c = valid_config();
  c.certificates[0].cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  EXPECT_EQ(error_of(c), "certificates[0].cert: cannot be combined with cert_file");
  c.certificates[0].cert_file = "";
  EXPECT_EQ(error_of(c), "ok");
  c.certificates[0].key_pem = "-----BEGIN PRIVATE KEY-----\r\nMIGH\r\n-----END PRIVATE KEY-----";
  EXPECT_EQ(error_of(c), "certificates[0].key: cannot be combined with key_file");
  c.certificates[0].key_file = "";
  EXPECT_EQ(error_of(c), "ok");
  c.certificates[0].key_pem = "secret\x01";
  EXPECT_EQ(error_of(c), "certificates[0].key: must be PEM text (printable ASCII lines)");
  c.certificates[0].key_pem =
      "s\xc3\xa9"
      "cret";
  EXPECT_EQ(error_of(c), "certificates[0].key: must be PEM text (printable ASCII lines)");
  c.certificates[0].key_pem = "k";
  c.certificates[1].key_pem = "k";
  EXPECT_EQ(error_of(c), "certificates[1].key: only for server certificates");
}

TEST(Validate, TextIsUtf8) {
  Config c = valid_config();
  backend(c, 0).description = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";  // é € emoji
  EXPECT_EQ(error_of(c), "ok");
  for (const char* bad :
       {"\xff", "caf\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    backend(c, 0).description = bad;
    EXPECT_EQ(error_of(c),
              "loadbalancers[0].server_groups[0].backends[0].description: must be valid UTF-8")
        << bad;
  }
  backend(c, 0).description = "";
  udp(c).health_check.request = "\x80";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[1].health_check.request: must be valid UTF-8");
}

// A field that does not apply to the listener's protocol (or the health check's type) keeps its
// default: the YAML and JSON forms cannot carry it.
TEST(Validate, FieldsThatDoNotApplyKeepTheirDefaults) {
  struct Case {
    void (*set)(Config&);
    std::string error;
  };
  const Case cases[] = {
      {[](Config& c) { udp(c).connect_timeout_ms = 6'000; },
       "loadbalancers[0].listeners[1].connect_timeout: only for tcp, http and https listeners"},
      {[](Config& c) { tcp(c).request_timeout_ms = 30'000; },
       "loadbalancers[0].listeners[0].request_timeout: only for http and https listeners"},
      {[](Config& c) { tcp(c).gzip = false; },
       "loadbalancers[0].listeners[0].gzip: only for http and https listeners"},
      {[](Config& c) { http(c).tls_policy = "tls_1_0"; },
       "loadbalancers[0].listeners[2].tls_policy: only for https listeners"},
      {[](Config& c) { udp(c).http2 = false; },
       "loadbalancers[0].listeners[1].http2: only for https listeners"},
      {[](Config& c) { tcp(c).health_check.method = "GET"; },
       "loadbalancers[0].listeners[0].health_check.method: only for health checks of type http"},
      {[](Config& c) { tcp(c).health_check.uri = "/x"; },
       "loadbalancers[0].listeners[0].health_check.uri: only for health checks of type http"},
      {[](Config& c) { udp(c).health_check.domain = "a.example.com"; },
       "loadbalancers[0].listeners[1].health_check.domain: only for health checks of type http"},
      {[](Config& c) { tcp(c).health_check.http_codes = {"2xx"}; },
       "loadbalancers[0].listeners[0].health_check.http_codes: only for health checks of type "
       "http"},
  };
  for (const Case& k : cases) {
    Config c = valid_config();
    k.set(c);
    EXPECT_EQ(error_of(c), k.error);
  }
}

TEST(Validate, AclReference) {
  Config c = valid_config();
  tcp(c).acl = AclRef{AclType::kWhite, "office"};
  EXPECT_EQ(error_of(c), "ok");
  tcp(c).acl->acl = "home";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].acl.acl: unknown acl \"home\"");
  tcp(c).acl->acl = "";
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].acl.acl: is required");
}

TEST(Validate, AclEntries) {
  Config c = valid_config();
  std::vector<AclEntry>& entries = c.acls[0].entries;
  entries = {AclEntry{"10.0.0.0/8", ""},    AclEntry{"192.168.1.7", "one host"},
             AclEntry{"2001:db8::/32", ""}, AclEntry{"0.0.0.0/0", ""},
             AclEntry{"::/0", ""},          AclEntry{"2001:db8::1/128", ""}};
  EXPECT_EQ(error_of(c), "ok");
  for (const char* bad :
       {"10.0.0.0/", "10.0.0/8", "10.0.0.0/8/8", "10.0.0.0/x", "/8", "host/24", "10.0.0.0/0008"}) {
    entries[0].cidr = bad;
    EXPECT_EQ(error_of(c),
              "acls[0].entries[0].cidr: must be a CIDR such as 10.0.0.0/8 or "
              "2001:db8::/32")
        << bad;
  }
  entries[0].cidr = "10.0.0.0/33";
  EXPECT_EQ(error_of(c), "acls[0].entries[0].cidr: prefix length must be 0–32");
  entries[0].cidr = "2001:db8::/129";
  EXPECT_EQ(error_of(c), "acls[0].entries[0].cidr: prefix length must be 0–128");
  entries[0].cidr = "10.1.2.3/8";
  EXPECT_EQ(error_of(c), "acls[0].entries[0].cidr: has host bits set; did you mean 10.0.0.0/8?");
  entries[0].cidr = "2001:db8::1/32";
  EXPECT_EQ(error_of(c), "acls[0].entries[0].cidr: has host bits set; did you mean 2001:db8::/32?");
  entries[0].cidr = "";
  EXPECT_EQ(error_of(c), "acls[0].entries[0].cidr: is required");
  entries[0].cidr = "192.168.1.7/32";
  EXPECT_EQ(error_of(c), "acls[0].entries[1].cidr: same as acls[0].entries[0]");
}

TEST(Validate, AclHoldsAtMost300Entries) {
  Config c = valid_config();
  std::vector<AclEntry>& entries = c.acls[0].entries;
  entries.clear();
  for (int i = 0; i < 300; ++i) {
    entries.push_back(
        AclEntry{"10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), ""});
  }
  EXPECT_EQ(error_of(c), "ok");
  entries.push_back(AclEntry{"10.1.0.0/16", ""});
  EXPECT_EQ(error_of(c), "acls[0].entries: must have at most 300 entries");
}

TEST(Validate, FirstErrorInDocumentOrder) {
  Config c = valid_config();
  c.acls[0].entries[0].cidr = "bad";
  c.certificates[1].type = "bad";
  udp(c).idle_timeout_ms = 0;
  tcp(c).drain_timeout_ms = -1;
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[0].drain_timeout: must be 0–900 s");
  tcp(c).drain_timeout_ms = 0;
  EXPECT_EQ(error_of(c), "loadbalancers[0].listeners[1].idle_timeout: must be 10–900 s");
  udp(c).idle_timeout_ms = 10'000;
  EXPECT_EQ(error_of(c), "certificates[1].type: must be server or ca");
  c.certificates[1].type = "ca";
  EXPECT_EQ(error_of(c),
            "acls[0].entries[0].cidr: must be a CIDR such as 10.0.0.0/8 or "
            "2001:db8::/32");
}

}  // namespace
}  // namespace fulcrum::config
