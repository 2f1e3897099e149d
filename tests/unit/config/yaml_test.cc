#include "config/yaml.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace fulcrum::config {
namespace {

// PRODUCT.md §3's example, with its certificates and ACL present.
constexpr const char* kFullDocument = R"(
loadbalancers:
  - name: web
    address: 127.0.0.1
    address_type: intranet
    server_groups:
      - name: app
        backends:
          - {address: 127.0.0.1, port: 9001, weight: 100}
          - {address: 127.0.0.1, port: 9002, weight: 50}
    listeners:
      - protocol: http
        port: 8080
        server_group: app
        sticky_session: {type: insert, cookie_timeout: 1000}
        health_check: {type: http, uri: /health, interval: 2, timeout: 5}
        rules:
          - {name: api, domain: api.example.com, path: /v1, server_group: app}
      - protocol: https
        port: 8443
        server_group: app
        certificates: [web-cert, api-cert]   # first is the default; the rest chosen by SNI
      - protocol: tcp
        port: 5000
        server_group: app
        scheduler: sch
certificates:
  - {name: web-cert, type: server, cert_file: certs/web.pem, key_file: certs/web.key}
  - {name: api-cert, type: server, cert_file: certs/api.pem, key_file: certs/api.key}
acls:
  - {name: office, entries: [{cidr: 10.0.0.0/8, comment: office}]}
)";

// The error of decoding `text` as "field: message", or "ok".
std::string decode_error(const std::string& text) {
  auto result = decode_yaml(text, "");
  return result.ok() ? "ok" : result.error().to_string();
}

// A one-listener document; `listener` is the listener's extra YAML lines (indented 8 spaces).
std::string with_listener(const std::string& protocol, const std::string& listener) {
  return "loadbalancers:\n"
         "  - name: lb\n"
         "    address: 10.1.1.1\n"
         "    server_groups: [{name: g, backends: [{address: 10.0.0.1, port: 80}]}]\n"
         "    listeners:\n"
         "      - protocol: " +
         protocol +
         "\n"
         "        port: 80\n"
         "        server_group: g\n" +
         listener;
}

// A one-listener document whose listener is `lines` (each indented 8 spaces) after its protocol.
std::string with_listener_lines(const std::string& lines) {
  return "loadbalancers:\n"
         "  - name: lb\n"
         "    address: 10.1.1.1\n"
         "    server_groups: [{name: g, backends: [{address: 10.0.0.1, port: 80}]}]\n"
         "    listeners:\n"
         "      - protocol: tcp\n" +
         lines;
}

Config decode_ok(const std::string& text) {
  auto result = decode_yaml(text, "");
  EXPECT_TRUE(result.ok()) << result.error().to_string();
  return result.ok() ? std::move(result).value() : Config{};
}

TEST(Yaml, FullDocumentDecodesWithDefaults) {
  auto result = decode_yaml(kFullDocument, "/etc/fulcrum");
  ASSERT_TRUE(result.ok()) << result.error().to_string();
  const Config& c = *result;
  ASSERT_EQ(c.loadbalancers.size(), 1u);
  const LoadBalancer& lb = c.loadbalancers[0];
  EXPECT_EQ(lb.name, "web");
  EXPECT_EQ(lb.address, "127.0.0.1");
  EXPECT_EQ(lb.address_type, "intranet");
  EXPECT_EQ(lb.status, "active");
  EXPECT_EQ(lb.bandwidth_mbps, -1);
  EXPECT_FALSE(lb.zones);
  ASSERT_EQ(lb.server_groups.size(), 1u);
  ASSERT_EQ(lb.server_groups[0].backends.size(), 2u);
  EXPECT_EQ(lb.server_groups[0].backends[1].address, "127.0.0.1");
  EXPECT_EQ(lb.server_groups[0].backends[1].port, 9002);
  EXPECT_EQ(lb.server_groups[0].backends[1].weight, 50u);
  ASSERT_EQ(lb.listeners.size(), 3u);

  const Listener& http = lb.listeners[0];
  EXPECT_EQ(http.id(), "http:8080");
  EXPECT_EQ(http.idle_timeout_ms, 15'000);
  EXPECT_EQ(http.request_timeout_ms, 60'000);
  ASSERT_TRUE(http.sticky_session);
  EXPECT_EQ(http.sticky_session->type, "insert");
  EXPECT_EQ(http.sticky_session->cookie_timeout_s, 1000);
  EXPECT_EQ(http.health_check.type, "http");
  EXPECT_EQ(http.health_check.uri, "/health");
  EXPECT_EQ(http.health_check.interval_ms, 2'000);
  EXPECT_EQ(http.health_check.timeout_ms, 5'000);
  EXPECT_EQ(http.health_check.method, "HEAD");
  ASSERT_EQ(http.rules.size(), 1u);
  EXPECT_EQ(http.rules[0].domain, "api.example.com");
  EXPECT_EQ(http.rules[0].path, "/v1");
  EXPECT_EQ(http.rules[0].server_group, "app");

  const Listener& https = lb.listeners[1];
  EXPECT_EQ(https.protocol, Protocol::kHttps);
  EXPECT_EQ(https.certificates, (std::vector<std::string>{"web-cert", "api-cert"}));
  EXPECT_EQ(https.tls_policy, "tls_1_2");
  EXPECT_TRUE(https.http2);
  EXPECT_EQ(https.health_check.type, "http");

  const Listener& tcp = lb.listeners[2];
  EXPECT_EQ(tcp.scheduler, Scheduler::kSch);
  EXPECT_EQ(tcp.idle_timeout_ms, 900'000);
  EXPECT_EQ(tcp.connect_timeout_ms, 5'000);
  EXPECT_EQ(tcp.drain_timeout_ms, 300'000);
  EXPECT_EQ(tcp.health_check.type, "tcp");
  EXPECT_FALSE(tcp.health_check.port);

  ASSERT_EQ(c.certificates.size(), 2u);
  EXPECT_EQ(c.certificates[0].cert_file, "/etc/fulcrum/certs/web.pem");
  EXPECT_EQ(c.certificates[1].key_file, "/etc/fulcrum/certs/api.key");
  EXPECT_TRUE(c.certificates[0].cert_pem.empty());
  ASSERT_EQ(c.acls.size(), 1u);
  EXPECT_EQ(c.acls[0].entries[0].cidr, "10.0.0.0/8");
  EXPECT_EQ(c.acls[0].entries[0].comment, "office");
}

TEST(Yaml, UdpDefaults) {
  Config c = decode_ok(with_listener("udp", ""));
  const Listener& l = c.loadbalancers[0].listeners[0];
  EXPECT_EQ(l.idle_timeout_ms, 90'000);
  EXPECT_EQ(l.health_check.type, "udp");
  EXPECT_EQ(l.health_check.interval_ms, 5'000);
  EXPECT_EQ(l.health_check.timeout_ms, 10'000);
}

TEST(Yaml, EveryListenerField) {
  Config c = decode_ok(
      "loadbalancers:\n"
      "  - name: lb\n"
      "    address: '::'\n"
      "    address_type: internet\n"
      "    status: inactive\n"
      "    bandwidth_mbps: 100\n"
      "    charge_type: pay_by_traffic\n"
      "    zones: {master: zone-a, slave: zone-b}\n"
      "    tags: {env: prod, empty: }\n"
      "    server_groups:\n"
      "      - name: g\n"
      "        backends:\n"
      "          - {address: '2001:db8::1', port: 80, weight: 0, zone: zone-a, description: x y}\n"
      "    listeners:\n"
      "      - protocol: http\n"
      "        port: 80\n"
      "        status: stopped\n"
      "        scheduler: wlc\n"
      "        acl: {type: black, acl: office}\n"
      "        bandwidth_mbps: 10\n"
      "        drain_timeout: 0\n"
      "        all_unhealthy: fail_open\n"
      "        idle_timeout: 30s\n"
      "        connect_timeout: 1500ms\n"
      "        request_timeout: 2m\n"
      "        sticky_session: {type: server, cookie: JSESSIONID}\n"
      "        x_forwarded: {proto: true, port: true, lb_id: true, lb_ip: false}\n"
      "        gzip: false\n"
      "        redirect_to_https: {port: 443}\n"
      "        access_log: true\n"
      "        health_check:\n"
      "          enabled: false\n"
      "          type: http\n"
      "          port: 8080\n"
      "          interval: 2.5\n"
      "          timeout: '3s'\n"
      "          healthy_threshold: 2\n"
      "          unhealthy_threshold: 10\n"
      "          method: GET\n"
      "          uri: /ping\n"
      "          domain: www.example.com\n"
      "          http_codes: [2xx]\n"
      "      - protocol: https\n"
      "        port: 443\n"
      "        server_group: g\n"
      "        certificates: [c]\n"
      "        tls_policy: tls_1_2_strict_with_1_3\n"
      "        ca_certificate: ca\n"
      "        http2: false\n"
      "        rules:\n"
      "          - {name: old, path: /old, redirect: 'https://example.com/new'}\n"
      "      - protocol: udp\n"
      "        port: 53\n"
      "        server_group: g\n"
      "        persistence_timeout: 60\n"
      "        proxy_protocol: v2\n"
      "        health_check: {request: ping, expect: pong}\n"
      "      - protocol: tcp\n"
      "        port: 22\n"
      "        server_group: g\n"
      "        scheduler: tch\n"
      "        proxy_protocol: v1\n"
      "certificates:\n"
      "  - {name: c, cert_file: /abs/c.pem, key_file: c.key}\n"
      "  - {name: ca, type: ca, cert_file: ca.pem}\n"
      "acls:\n"
      "  - name: office\n"
      "    entries: [{cidr: '2001:db8::/32'}, {cidr: 192.168.1.7}]\n");
  const LoadBalancer& lb = c.loadbalancers[0];
  EXPECT_EQ(lb.address_type, "internet");
  EXPECT_EQ(lb.status, "inactive");
  EXPECT_EQ(lb.bandwidth_mbps, 100);
  ASSERT_TRUE(lb.zones);
  EXPECT_EQ(lb.zones->slave, "zone-b");
  EXPECT_EQ(lb.tags.at("env"), "prod");
  EXPECT_EQ(lb.tags.at("empty"), "");
  EXPECT_EQ(lb.server_groups[0].backends[0].weight, 0u);
  EXPECT_EQ(lb.server_groups[0].backends[0].description, "x y");

  const Listener& http = lb.listeners[0];
  EXPECT_EQ(http.status, ListenerStatus::kStopped);
  EXPECT_EQ(http.scheduler, Scheduler::kWlc);
  ASSERT_TRUE(http.acl);
  EXPECT_EQ(http.acl->type, AclType::kBlack);
  EXPECT_EQ(http.acl->acl, "office");
  EXPECT_EQ(http.bandwidth_mbps, 10);
  EXPECT_EQ(http.drain_timeout_ms, 0);
  EXPECT_EQ(http.all_unhealthy, AllUnhealthy::kFailOpen);
  EXPECT_EQ(http.idle_timeout_ms, 30'000);
  EXPECT_EQ(http.connect_timeout_ms, 1'500);
  EXPECT_EQ(http.request_timeout_ms, 120'000);
  EXPECT_EQ(http.sticky_session->cookie, "JSESSIONID");
  EXPECT_TRUE(http.x_forwarded.proto && http.x_forwarded.port && http.x_forwarded.lb_id);
  EXPECT_FALSE(http.x_forwarded.lb_ip);
  EXPECT_FALSE(http.gzip);
  EXPECT_EQ(http.redirect_to_https->port, 443);
  EXPECT_TRUE(http.access_log);
  const HealthCheck& hc = http.health_check;
  EXPECT_FALSE(hc.enabled);
  EXPECT_EQ(hc.port, 8080);
  EXPECT_EQ(hc.interval_ms, 2'500);
  EXPECT_EQ(hc.timeout_ms, 3'000);
  EXPECT_EQ(hc.healthy_threshold, 2u);
  EXPECT_EQ(hc.unhealthy_threshold, 10u);
  EXPECT_EQ(hc.method, "GET");
  EXPECT_EQ(hc.uri, "/ping");
  EXPECT_EQ(hc.domain, "www.example.com");
  EXPECT_EQ(hc.http_codes, (std::vector<std::string>{"2xx"}));

  const Listener& https = lb.listeners[1];
  EXPECT_EQ(https.tls_policy, "tls_1_2_strict_with_1_3");
  EXPECT_EQ(https.ca_certificate, "ca");
  EXPECT_FALSE(https.http2);
  EXPECT_EQ(https.rules[0].redirect, "https://example.com/new");

  const Listener& udp = lb.listeners[2];
  EXPECT_EQ(udp.persistence_timeout_ms, 60'000);
  EXPECT_EQ(udp.proxy_protocol, ProxyProtocol::kV2);
  EXPECT_EQ(udp.health_check.request, "ping");
  EXPECT_EQ(udp.health_check.expect, "pong");

  EXPECT_EQ(lb.listeners[3].proxy_protocol, ProxyProtocol::kV1);
  EXPECT_EQ(c.certificates[0].cert_file, "/abs/c.pem");
  EXPECT_EQ(c.certificates[0].key_file, "c.key");  // base_dir "" keeps names as written
  EXPECT_EQ(c.certificates[1].type, "ca");
}

TEST(Yaml, DurationForms) {
  struct Case {
    const char* text;
    int64_t ms;
  };
  for (Case k :
       {Case{"900", 900'000}, Case{"'15s'", 15'000}, Case{"\"15s\"", 15'000}, Case{"12.5", 12'500},
        Case{"10500ms", 10'500}, Case{"1m", 60'000}, Case{"'10'", 10'000}}) {
    Config c =
        decode_ok(with_listener("tcp", std::string("        idle_timeout: ") + k.text + "\n"));
    EXPECT_EQ(c.loadbalancers[0].listeners[0].idle_timeout_ms, k.ms) << k.text;
  }
  for (const char* bad : {"-1", "5x", "abc", "1e3", "[1]", "{a: 1}", "'1 s'"}) {
    EXPECT_EQ(
        decode_error(with_listener("tcp", std::string("        idle_timeout: ") + bad + "\n")),
        "loadbalancers[0].listeners[0].idle_timeout: must be a duration: seconds (2, 0.5) or "
        "a number with a unit (500ms, 2s, 1m)")
        << bad;
  }
}

TEST(Yaml, CookieTimeoutIsWholeSeconds) {
  EXPECT_EQ(decode_error(with_listener("http",
                                       "        sticky_session: {type: insert, "
                                       "cookie_timeout: 1.5}\n")),
            "loadbalancers[0].listeners[0].sticky_session.cookie_timeout: must be a whole number "
            "of seconds");
  Config c = decode_ok(
      with_listener("http", "        sticky_session: {type: insert, cookie_timeout: 1h}\n"));
  EXPECT_EQ(c.loadbalancers[0].listeners[0].sticky_session->cookie_timeout_s, 3600);
}

TEST(Yaml, StickyCookieOptions) {
  Config c = decode_ok(with_listener("http",
                                     "        sticky_session: {type: insert, cookie_timeout: 60, "
                                     "cookie_name: LB, path: /app, same_site: Strict, "
                                     "http_only: false, secure: true}\n"));
  const StickySession& s = *c.loadbalancers[0].listeners[0].sticky_session;
  EXPECT_EQ(s.cookie_name, "LB");
  EXPECT_EQ(s.path, "/app");
  EXPECT_EQ(s.same_site, "Strict");
  EXPECT_FALSE(s.http_only);
  EXPECT_TRUE(s.secure);
  // Defaults on an HTTP listener: SERVERID, /, Lax, HttpOnly, not Secure (HTTPS: Secure).
  c = decode_ok(
      with_listener("http", "        sticky_session: {type: insert, cookie_timeout: 60}\n"));
  const StickySession& d = *c.loadbalancers[0].listeners[0].sticky_session;
  EXPECT_EQ(d.cookie_name, "SERVERID");
  EXPECT_EQ(d.path, "/");
  EXPECT_EQ(d.same_site, "Lax");
  EXPECT_TRUE(d.http_only);
  EXPECT_FALSE(d.secure);
  EXPECT_EQ(decode_error(with_listener("http",
                                       "        sticky_session: {type: insert, cookie_timeout: "
                                       "60, same_site: lax}\n")),
            "loadbalancers[0].listeners[0].sticky_session.same_site: must be Lax, Strict or None");
  // The backend's own cookie keeps the attributes the backend gave it.
  EXPECT_EQ(decode_error(with_listener("http",
                                       "        sticky_session: {type: server, cookie: J, "
                                       "secure: true}\n")),
            "loadbalancers[0].listeners[0].sticky_session.secure: only for type insert");
}

TEST(Yaml, CertificatesTakeFilesOrPemText) {
  Config c = decode_ok(
      "certificates:\n"
      "  - {name: files, cert_file: c.pem, key_file: c.key}\n"
      "  - name: text\n"
      "    cert: |\n"
      "      -----BEGIN CERTIFICATE-----\n"
      "      MIIB\n"
      "      -----END CERTIFICATE-----\n"
      "    key: \"-----BEGIN PRIVATE KEY-----\\nMIGH\\n-----END PRIVATE KEY-----\\n\"\n");
  EXPECT_EQ(c.certificates[0].cert_file, "c.pem");
  EXPECT_TRUE(c.certificates[0].cert_pem.empty());
  EXPECT_EQ(c.certificates[1].cert_pem,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(c.certificates[1].key_pem,
            "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n");
  EXPECT_TRUE(c.certificates[1].cert_file.empty());
  EXPECT_EQ(decode_error("certificates: [{name: c, cert_file: c.pem, cert: x, key: y}]\n"),
            "certificates[0].cert: cannot be combined with cert_file");
}

TEST(Yaml, ExplicitlyTypedScalarsAreNotStrings) {
  EXPECT_EQ(decode_error("acls: [{name: !!int 5}]\n"), "acls[0].name: must be a string");
  EXPECT_EQ(decode_error("acls: [{name: !!bool true}]\n"), "acls[0].name: must be a string");
  EXPECT_EQ(decode_ok("acls: [{name: 5}]\n").acls[0].name, "5");  // plain scalars are strings
}

TEST(Yaml, UnknownKeysAreRefusedWithTheirPath) {
  EXPECT_EQ(decode_error("loadbalancer: []\n"), "loadbalancer: unknown field");
  EXPECT_EQ(decode_error(with_listener("tcp", "        health_check: {intervall: 2}\n")),
            "loadbalancers[0].listeners[0].health_check.intervall: unknown field");
  EXPECT_EQ(decode_error("loadbalancers:\n"
                         "  - name: lb\n"
                         "    address: 10.1.1.1\n"
                         "    server_groups:\n"
                         "      - name: g\n"
                         "        backends: [{address: 10.0.0.1, port: 80, wieght: 5}]\n"),
            "loadbalancers[0].server_groups[0].backends[0].wieght: unknown field");
  EXPECT_EQ(decode_error("acls: [{name: a, entries: [{cidr: 10.0.0.0/8, note: x}]}]\n"),
            "acls[0].entries[0].note: unknown field");
  EXPECT_EQ(decode_error("certificates: [{name: c, crt: x}]\n"),
            "certificates[0].crt: unknown field");
}

TEST(Yaml, KeysThatDoNotApplyToTheProtocol) {
  EXPECT_EQ(decode_error(with_listener("tcp", "        gzip: true\n")),
            "loadbalancers[0].listeners[0].gzip: only for http and https listeners");
  EXPECT_EQ(decode_error(with_listener("http", "        certificates: [c]\n")),
            "loadbalancers[0].listeners[0].certificates: only for https listeners");
  EXPECT_EQ(decode_error(with_listener("http", "        proxy_protocol: v1\n")),
            "loadbalancers[0].listeners[0].proxy_protocol: only for tcp and udp listeners");
  EXPECT_EQ(
      decode_error(with_listener("udp", "        connect_timeout: 5\n")),
      "loadbalancers[0].listeners[0].connect_timeout: only for tcp, http and https listeners");
  EXPECT_EQ(decode_error(with_listener("https", "        redirect_to_https: {port: 443}\n")),
            "loadbalancers[0].listeners[0].redirect_to_https: only for http listeners");
  EXPECT_EQ(decode_error(with_listener("tcp", "        health_check: {uri: /x}\n")),
            "loadbalancers[0].listeners[0].health_check.uri: only for health checks of type http");
  EXPECT_EQ(decode_error(with_listener("tcp", "        health_check: {type: http, request: x}\n")),
            "loadbalancers[0].listeners[0].health_check.request: only for health checks of type "
            "udp");
}

TEST(Yaml, WrongTypes) {
  EXPECT_EQ(decode_error(with_listener("tcp", "        access_log: yes\n")),
            "loadbalancers[0].listeners[0].access_log: must be true or false");
  EXPECT_EQ(decode_error(with_listener("tcp", "        access_log: 'true'\n")),
            "loadbalancers[0].listeners[0].access_log: must be true or false");
  EXPECT_EQ(decode_error(with_listener("tcp", "        bandwidth_mbps: '10'\n")),
            "loadbalancers[0].listeners[0].bandwidth_mbps: must be an integer");
  EXPECT_EQ(decode_error(with_listener("tcp", "        bandwidth_mbps: 10.5\n")),
            "loadbalancers[0].listeners[0].bandwidth_mbps: must be an integer");
  EXPECT_EQ(decode_error(with_listener("tcp", "        bandwidth_mbps: 0x10\n")),
            "loadbalancers[0].listeners[0].bandwidth_mbps: must be an integer");
  EXPECT_EQ(decode_error(with_listener("tcp", "        bandwidth_mbps: 010\n")),
            "loadbalancers[0].listeners[0].bandwidth_mbps: must be an integer");
  EXPECT_EQ(decode_error(with_listener_lines("        port: 80\n        server_group: [g]\n")),
            "loadbalancers[0].listeners[0].server_group: must be a string");
  EXPECT_EQ(decode_error(with_listener("tcp", "        scheduler: fastest\n")),
            "loadbalancers[0].listeners[0].scheduler: must be wrr, rr, wlc, sch or tch");
  EXPECT_EQ(decode_error(with_listener("tcp", "        health_check: 5\n")),
            "loadbalancers[0].listeners[0].health_check: must be a mapping");
  EXPECT_EQ(decode_error("loadbalancers: {name: x}\n"), "loadbalancers: must be a list");
  EXPECT_EQ(decode_error("loadbalancers: [x]\n"), "loadbalancers[0]: must be a mapping");
  EXPECT_EQ(decode_error("- a\n- b\n"),
            "the document must be a mapping with loadbalancers, certificates and acls");
  EXPECT_EQ(decode_error("loadbalancers:\n"
                         "  - name: lb\n"
                         "    address: 10.1.1.1\n"
                         "    listeners: [{protocol: sctp, port: 1}]\n"),
            "loadbalancers[0].listeners[0].protocol: must be tcp, udp, http or https");
}

TEST(Yaml, IntegersOutOfRangeNameTheRange) {
  EXPECT_EQ(decode_error(with_listener_lines("        port: 65536\n")),
            "loadbalancers[0].listeners[0].port: must be 1–65535");
  EXPECT_EQ(decode_error(with_listener_lines("        port: 99999999999999999999999\n")),
            "loadbalancers[0].listeners[0].port: must be 1–65535");
  EXPECT_EQ(decode_error(with_listener_lines("        port: -80\n")),
            "loadbalancers[0].listeners[0].port: must be 1–65535");
  EXPECT_EQ(decode_error("loadbalancers:\n"
                         "  - name: lb\n"
                         "    address: 10.1.1.1\n"
                         "    server_groups:\n"
                         "      - name: g\n"
                         "        backends:\n"
                         "          - {address: 10.0.0.1, port: 80}\n"
                         "          - {address: 10.0.0.2, port: 80, weight: 101}\n"),
            "loadbalancers[0].server_groups[0].backends[1].weight: must be 0–100");
}

TEST(Yaml, RequiredKeys) {
  EXPECT_EQ(decode_error("loadbalancers:\n"
                         "  - name: lb\n"
                         "    address: 10.1.1.1\n"
                         "    listeners: [{port: 80}]\n"),
            "loadbalancers[0].listeners[0].protocol: is required");
  EXPECT_EQ(decode_error("loadbalancers:\n"
                         "  - name: lb\n"
                         "    address: 10.1.1.1\n"
                         "    listeners: [{protocol: tcp}]\n"),
            "loadbalancers[0].listeners[0].port: is required");
  EXPECT_EQ(decode_error("loadbalancers: [{address: 10.1.1.1}]\n"),
            "loadbalancers[0].name: is required");
  EXPECT_EQ(decode_error(with_listener("tcp", "        acl: {acl: office}\n")),
            "loadbalancers[0].listeners[0].acl.type: is required");
}

TEST(Yaml, NullMeansAbsent) {
  Config c = decode_ok(with_listener("tcp", "        scheduler:\n        acl: ~\n"));
  EXPECT_EQ(c.loadbalancers[0].listeners[0].scheduler, Scheduler::kWrr);
  EXPECT_FALSE(c.loadbalancers[0].listeners[0].acl);
  EXPECT_EQ(decode_error("loadbalancers: [{name: ~, address: 10.1.1.1}]\n"),
            "loadbalancers[0].name: is required");
}

TEST(Yaml, DuplicateKeysAreRefused) {
  EXPECT_EQ(decode_error(with_listener("tcp", "        port: 81\n")),
            "loadbalancers[0].listeners[0].port: duplicate key");
}

TEST(Yaml, SyntaxErrorsCarryLineAndColumn) {
  std::string error = decode_error("loadbalancers:\n  - name: a\n    address: [1\n");
  EXPECT_EQ(error.rfind("YAML syntax error at line ", 0), 0u) << error;
  EXPECT_NE(error.find(", column "), std::string::npos) << error;
  EXPECT_EQ(decode_error("a: b: c\n"), "YAML syntax error at line 1, column 5: illegal map value");
}

// yaml-cpp 0.7 loops forever on these in YAML::LoadAll (jbeder/yaml-cpp#1040); found by fuzzing.
TEST(Yaml, InputsThatHangYamlCppAreSyntaxErrors) {
  EXPECT_EQ(decode_error(","), "YAML syntax error at line 1, column 1: unexpected ','");
  EXPECT_EQ(decode_error("!a,\n"), "YAML syntax error at line 1, column 3: unexpected ','");
  EXPECT_EQ(decode_error("acls: []\n---\n,"),
            "YAML syntax error at line 3, column 1: unexpected ','");
}

TEST(Yaml, DocumentShape) {
  EXPECT_EQ(decode_error(""), "the document is empty");
  EXPECT_EQ(decode_error("# nothing\n"), "the document is empty");
  EXPECT_EQ(decode_error("acls: []\n---\nacls: []\n"), "expected one YAML document, found 2");
  Config empty = decode_ok("{}");
  EXPECT_TRUE(empty.loadbalancers.empty());
}

TEST(Yaml, AliasExplosionHitsTheBudget) {
  // 100 load balancers x 100 groups x 100 backends through aliases: a few KiB of text naming a
  // million backends. Decoding must stop at its budget instead of building them.
  std::string text =
      "loadbalancers:\n"
      "  - &lb\n"
      "    name: lb\n"
      "    address: 10.1.1.1\n"
      "    server_groups:\n"
      "      - &sg\n"
      "        name: g\n"
      "        backends:\n"
      "          - &be {address: 10.0.0.1, port: 80}\n";
  for (int i = 0; i < 99; ++i) text += "          - *be\n";
  for (int i = 0; i < 99; ++i) text += "      - *sg\n";
  for (int i = 0; i < 99; ++i) text += "  - *lb\n";
  EXPECT_EQ(decode_error(text),
            "document too large (more than 1000000 values; an alias counts at each use)");
}

// Anchors and aliases are allowed (docs/configuration.md): one health check shared by listeners.
TEST(Yaml, AliasesShareABlock) {
  Config c = decode_ok(
      "loadbalancers:\n"
      "  - name: lb\n"
      "    address: 10.1.1.1\n"
      "    server_groups: [{name: g, backends: [{address: 10.0.0.1, port: 80}]}]\n"
      "    listeners:\n"
      "      - {protocol: tcp, port: 80, server_group: g, health_check: &hc {interval: 3}}\n"
      "      - {protocol: tcp, port: 81, server_group: g, health_check: *hc}\n");
  ASSERT_EQ(c.loadbalancers.at(0).listeners.size(), 2u);
  EXPECT_EQ(c.loadbalancers[0].listeners[0].health_check.interval_ms, 3'000);
  EXPECT_EQ(c.loadbalancers[0].listeners[1].health_check.interval_ms, 3'000);
}

// "Billion laughs": three levels of 1,000 aliases, 10^9 backends named in some 36 KB. Refused at
// the budget (a million values), in well under a second and without building the backends.
TEST(Yaml, BillionLaughsIsRefusedAtTheBudget) {
  std::string text =
      "loadbalancers:\n"
      "  - &lb\n"
      "    name: lb\n"
      "    address: 10.1.1.1\n"
      "    server_groups:\n"
      "      - &sg\n"
      "        name: g\n"
      "        backends:\n"
      "          - &be {address: 10.0.0.1, port: 80}\n";
  for (int i = 0; i < 999; ++i) text += "          - *be\n";
  for (int i = 0; i < 999; ++i) text += "      - *sg\n";
  for (int i = 0; i < 999; ++i) text += "  - *lb\n";
  EXPECT_LT(text.size(), 40'000u);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(decode_error(text),
            "document too large (more than 1000000 values; an alias counts at each use)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));  // ~0.3 s
}

// An alias of a long text costs its length at each use: 20 load balancers sharing one 1 MiB tag
// value would be 20 MiB of decoded text from 1 MiB of YAML (and a 16 MiB scalar named a million
// times, terabytes). Refused before the copies are made.
TEST(Yaml, AliasesOfLongTextHitTheTextBudget) {
  std::string text = "loadbalancers:\n  - &lb {name: lb, address: 10.1.1.1, tags: {k: &t " +
                     std::string(1 << 20, 'x') + "}}\n";
  for (int i = 0; i < 19; ++i) text += "  - *lb\n";
  EXPECT_EQ(decode_error(text),
            "document too large (more than 16 MiB of text; an alias counts at each use)");
  // The same text once is only refused by validation, with its field.
  std::string once =
      "loadbalancers:\n  - {name: lb, address: 10.1.1.1, tags: {k: " + std::string(1 << 20, 'x') +
      "}}\n";
  EXPECT_NE(decode_error(once).find("loadbalancers[0].tags"), std::string::npos)
      << decode_error(once);
}

// yaml-cpp's tree costs some 500 bytes per node: the nodes are counted (as parse events, before
// any tree is built) and a document of more than a million is refused whatever its size.
TEST(Yaml, MoreThanAMillionNodesAreRefusedBeforeTheTreeIsBuilt) {
  std::string text = "acls: [";
  for (int i = 0; i < 1'000'000; ++i) text += "1,";
  text += "1]\n";
  EXPECT_EQ(decode_error(text), "document too large (more than 1000000 YAML nodes)");
  // Aliases are one node each: a short document of many aliases is not refused here.
  EXPECT_EQ(decode_error("acls: [&a {name: a}, *a]\n"), "acls[1].name: already used by acls[0]");
}

TEST(Yaml, DocumentsAbove16MiBAreRefusedBeforeParsing) {
  std::string text = "# " + std::string(kMaxYamlBytes - 3, 'x') + "\n";
  ASSERT_EQ(text.size(), kMaxYamlBytes);
  EXPECT_EQ(decode_error(text), "the document is empty");  // 16 MiB exactly: parsed
  text += " ";
  EXPECT_EQ(decode_error(text), "document too large (more than 16 MiB)");

  auto dir = std::filesystem::path(::testing::TempDir()) / "fulcrum_yaml_large";
  std::filesystem::create_directories(dir);
  auto file = dir / "large.yaml";
  {
    std::ofstream out(file);
    out << text << std::string(8 << 20, 'x');  // the reading stops at 16 MiB
  }
  auto result = load_yaml_file(file.string());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().to_string(), file.string() + ": document too large (more than 16 MiB)");
  std::filesystem::remove_all(dir);
}

TEST(Yaml, ValidationRunsAfterDecoding) {
  EXPECT_EQ(decode_error(with_listener("tcp", "        idle_timeout: 5\n")),
            "loadbalancers[0].listeners[0].idle_timeout: must be 10–900 s");
  EXPECT_EQ(decode_error(with_listener("http", "        health_check: {interval: 51}\n")),
            "loadbalancers[0].listeners[0].health_check.interval: must be 1–50 s");
}

TEST(Yaml, LoadFileResolvesCertificatesAgainstItsFolder) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "fulcrum_yaml_test";
  std::filesystem::create_directories(dir);
  auto file = dir / "lb.yaml";
  {
    std::ofstream out(file);
    out << "certificates: [{name: c, cert_file: certs/c.pem, key_file: ../keys/c.key}]\n";
  }
  auto result = load_yaml_file(file.string());
  ASSERT_TRUE(result.ok()) << result.error().to_string();
  EXPECT_EQ(result->certificates[0].cert_file, (dir / "certs/c.pem").string());
  EXPECT_EQ(result->certificates[0].key_file,
            (dir.parent_path() / "keys/c.key").lexically_normal().string());
  std::filesystem::remove_all(dir);

  auto missing = load_yaml_file((dir / "missing.yaml").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot open"), std::string::npos);
  EXPECT_NE(missing.error().sys_errno, 0);
}

TEST(Yaml, QuickstartExampleIsValid) {
  auto result = load_yaml_file(std::string(FULCRUM_EXAMPLES_DIR) + "/quickstart.yaml");
  ASSERT_TRUE(result.ok()) << result.error().to_string();
  const LoadBalancer& lb = result->loadbalancers.at(0);
  EXPECT_EQ(lb.name, "quickstart");
  EXPECT_EQ(lb.address, "127.0.0.1");
  EXPECT_EQ(lb.server_groups.at(0).name, "demo");
  EXPECT_EQ(lb.server_groups[0].backends.size(), 2u);
  EXPECT_EQ(lb.listeners.at(0).id(), "tcp:8000");
  EXPECT_EQ(lb.listeners[0].scheduler, Scheduler::kWrr);
}

}  // namespace
}  // namespace fulcrum::config
