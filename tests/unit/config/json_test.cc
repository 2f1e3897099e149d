#include "config/json.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "config/yaml.h"

namespace fulcrum::config {
namespace {

constexpr const char* kCertPem =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJ\n-----END CERTIFICATE-----\n";
constexpr const char* kKeyPem =
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n";

// Every field of the model set to something other than its default somewhere: two load
// balancers, one listener of each protocol, certificates by file and by PEM text.
constexpr const char* kMaximalYaml = R"(
loadbalancers:
  - name: edge
    address: '::'
    address_type: internet
    status: inactive
    bandwidth_mbps: 100
    charge_type: pay_by_traffic
    zones: {master: zone-a, slave: zone-b}
    tags: {env: prod, empty: '', "clé": "välue"}
    server_groups:
      - name: g
        backends:
          - {address: '2001:db8::1', port: 80, weight: 0, zone: zone-a, description: "x y"}
          - {address: 10.0.0.2, port: 8080}
      - name: h
        backends: []
    listeners:
      - protocol: http
        port: 80
        server_group: g
        status: stopped
        scheduler: wlc
        acl: {type: black, acl: office}
        bandwidth_mbps: 10
        drain_timeout: 0.5
        all_unhealthy: fail_open
        idle_timeout: 30s
        connect_timeout: 1500ms
        request_timeout: 2m
        sticky_session: {type: server, cookie: JSESSIONID}
        x_forwarded: {proto: true, port: true, lb_id: true, lb_ip: false}
        gzip: false
        redirect_to_https: {port: 443}
        access_log: true
        rules:
          - {name: api, domain: '*.example.com', path: /v1, server_group: h}
          - {name: old, path: /old, redirect: 'https://example.com/new'}
        health_check:
          enabled: false
          type: http
          port: 8080
          interval: 2.5
          timeout: 3s
          healthy_threshold: 2
          unhealthy_threshold: 10
          method: GET
          uri: /ping
          domain: www.example.com
          http_codes: [2xx, 5xx]
      - protocol: https
        port: 443
        server_group: g
        acl: {type: white, acl: office}
        sticky_session: {type: insert, cookie_timeout: 3600}
        certificates: [pem, file]
        tls_policy: tls_1_2_strict_with_1_3
        ca_certificate: root
        http2: false
        health_check: {type: tcp, port: 444}
      - protocol: udp
        port: 53
        server_group: g
        scheduler: tch
        persistence_timeout: 60
        idle_timeout: 12.345
        proxy_protocol: v2
        health_check: {request: ping, expect: pong, interval: 1.001}
      - protocol: tcp
        port: 22
        server_group: h
        scheduler: sch
        persistence_timeout: 1
        connect_timeout: 59.999
        proxy_protocol: v1
  - name: inner
    address: 10.1.1.1
    server_groups: [{name: g, backends: [{address: 10.0.0.1, port: 80}]}]
    listeners: [{protocol: tcp, port: 81, server_group: g}]
certificates:
  - {name: file, cert_file: /abs/c.pem, key_file: c.key}
  - name: pem
    cert: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJ\n-----END CERTIFICATE-----\n"
    key: "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n"
  - {name: root, type: ca, cert_file: ca.pem}
acls:
  - name: office
    entries: [{cidr: '2001:db8::/32', comment: "Büro"}, {cidr: 192.168.1.7}]
  - {name: empty}
)";

Config yaml_ok(const std::string& text) {
  auto result = decode_yaml(text, "");
  EXPECT_TRUE(result.ok()) << result.error().to_string();
  return result.ok() ? std::move(result).value() : Config{};
}

Config json_ok(const std::string& text) {
  auto result = decode_json(text);
  EXPECT_TRUE(result.ok()) << result.error().to_string() << "\n" << text;
  return result.ok() ? std::move(result).value() : Config{};
}

// The error of decoding `text` as "field: message", or "ok".
std::string json_error(const std::string& text) {
  auto result = decode_json(text);
  return result.ok() ? "ok" : result.error().to_string();
}
std::string yaml_error(const std::string& text) {
  auto result = decode_yaml(text, "");
  return result.ok() ? "ok" : result.error().to_string();
}

// One load balancer with one listener; `listener` is extra JSON members (",\"gzip\":true").
std::string json_listener(const std::string& protocol, const std::string& listener) {
  return R"({"loadbalancers":[{"name":"lb","address":"10.1.1.1",)"
         R"("server_groups":[{"name":"g","backends":[{"address":"10.0.0.1","port":80}]}],)"
         R"("listeners":[{"protocol":")" +
         protocol + R"(","port":80,"server_group":"g")" + listener + "}]}]}";
}
// The same document in YAML; `listener` is extra lines, each indented 8 spaces.
std::string yaml_listener(const std::string& protocol, const std::string& listener) {
  return "loadbalancers:\n"
         "  - name: lb\n"
         "    address: 10.1.1.1\n"
         "    server_groups: [{name: g, backends: [{address: 10.0.0.1, port: 80}]}]\n"
         "    listeners:\n"
         "      - protocol: " +
         protocol + "\n        port: 80\n        server_group: g\n" + listener;
}

void expect_round_trip(const Config& c) {
  std::string json = encode_json(c, Secrets::kInclude);
  auto back = decode_json(json);
  ASSERT_TRUE(back.ok()) << back.error().to_string() << "\n" << json;
  EXPECT_TRUE(*back == c) << json;
  EXPECT_EQ(encode_json(*back, Secrets::kInclude), json);  // canonical: a fixed point
}

// The document in the order from_store() assembles it: every list sorted by its key.
Config in_store_order(Config c) {
  auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
  std::sort(c.loadbalancers.begin(), c.loadbalancers.end(), by_name);
  for (LoadBalancer& lb : c.loadbalancers) {
    std::sort(lb.server_groups.begin(), lb.server_groups.end(), by_name);
    std::sort(lb.listeners.begin(), lb.listeners.end(),
              [](const Listener& a, const Listener& b) { return a.id() < b.id(); });
  }
  std::sort(c.certificates.begin(), c.certificates.end(), by_name);
  std::sort(c.acls.begin(), c.acls.end(), by_name);
  return c;
}

TEST(Json, MaximalDocumentRoundTrips) {
  Config c = yaml_ok(kMaximalYaml);
  ASSERT_EQ(c.loadbalancers.size(), 2u);
  // The document really sets what it claims to.
  const Listener& http = c.loadbalancers[0].listeners[0];
  EXPECT_EQ(http.drain_timeout_ms, 500);
  EXPECT_EQ(http.connect_timeout_ms, 1500);
  EXPECT_EQ(c.loadbalancers[0].listeners[2].idle_timeout_ms, 12'345);
  EXPECT_EQ(c.certificates[1].cert_pem, kCertPem);
  EXPECT_EQ(c.certificates[1].key_pem, kKeyPem);
  EXPECT_TRUE(c.certificates[1].cert_file.empty());
  EXPECT_EQ(c.loadbalancers[0].tags.at("clé"), "välue");
  expect_round_trip(c);
}

TEST(Json, ExamplesRoundTrip) {
  size_t examples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(FULCRUM_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    auto c = load_yaml_file(entry.path().string());
    ASSERT_TRUE(c.ok()) << entry.path() << ": " << c.error().to_string();
    expect_round_trip(*c);
    ++examples;
  }
  EXPECT_GT(examples, 0u);
}

TEST(Json, JsonAndYamlDecodeToTheSameConfig) {
  Config from_json = json_ok(json_listener(
      "http",
      R"(,"idle_timeout":"30s","drain_timeout":0.5,"health_check":{"interval":2.5,"uri":"/h"})"));
  Config from_yaml = yaml_ok(yaml_listener("http",
                                           "        idle_timeout: 30s\n"
                                           "        drain_timeout: 0.5\n"
                                           "        health_check: {interval: 2.5, uri: /h}\n"));
  EXPECT_TRUE(from_json == from_yaml);
}

TEST(Json, CanonicalEncoding) {
  Config c = json_ok(json_listener("tcp", R"(,"connect_timeout":"1500ms","drain_timeout":0)"));
  EXPECT_EQ(encode_json(c),
            R"({"loadbalancers":[{"name":"lb","address":"10.1.1.1","address_type":"intranet",)"
            R"("status":"active","bandwidth_mbps":-1,"charge_type":"pay_by_traffic","tags":{},)"
            R"("server_groups":[{"name":"g","backends":[{"address":"10.0.0.1","port":80,)"
            R"("weight":100,"zone":"","description":""}]}],"listeners":[{"protocol":"tcp",)"
            R"("port":80,"server_group":"g","status":"running","scheduler":"wrr",)"
            R"("bandwidth_mbps":-1,"drain_timeout":0,"all_unhealthy":"fail_closed",)"
            R"("persistence_timeout":0,"idle_timeout":900,"connect_timeout":1.5,)"
            R"("proxy_protocol":"none","access_log":false,"health_check":{"enabled":true,)"
            R"("type":"tcp","interval":2,"timeout":5,"healthy_threshold":3,)"
            R"("unhealthy_threshold":3}}]}],"certificates":[],"acls":[]})");
  EXPECT_EQ(encode_json(Config{}), R"({"loadbalancers":[],"certificates":[],"acls":[]})");
}

TEST(Json, ProtocolSpecificKeysOnlyWhereTheyApply) {
  Config c = yaml_ok(kMaximalYaml);
  std::string json = encode_json(c);
  // Listener objects in order: http, https, udp, tcp.
  auto listener_json = [&](size_t i) {
    size_t at = 0;
    for (size_t k = 0; k <= i; ++k) at = json.find(R"({"protocol":)", at + 1);
    return json.substr(at, json.find(R"({"protocol":)", at + 1) - at);
  };
  EXPECT_EQ(listener_json(0).find("proxy_protocol"), std::string::npos);
  EXPECT_EQ(listener_json(0).find("tls_policy"), std::string::npos);
  EXPECT_NE(listener_json(0).find("redirect_to_https"), std::string::npos);
  EXPECT_EQ(listener_json(1).find("redirect_to_https"), std::string::npos);
  EXPECT_NE(listener_json(1).find("tls_policy"), std::string::npos);
  EXPECT_EQ(listener_json(2).find("connect_timeout"), std::string::npos);
  EXPECT_EQ(listener_json(2).find("gzip"), std::string::npos);
  EXPECT_NE(listener_json(2).find(R"("request":"ping")"), std::string::npos);
  EXPECT_EQ(listener_json(3).find("request_timeout"), std::string::npos);
  EXPECT_NE(listener_json(3).find("connect_timeout\":59.999"), std::string::npos);
  // Unset optional fields are left out.
  EXPECT_EQ(listener_json(3).find("\"acl\""), std::string::npos);
  EXPECT_EQ(listener_json(3).find("sticky_session"), std::string::npos);
  EXPECT_EQ(listener_json(3).find("\"port\":444"), std::string::npos);
}

TEST(Json, SecretsAndCertificateForms) {
  Config c = yaml_ok(kMaximalYaml);
  std::string with = encode_json(c, Secrets::kInclude);
  std::string without = encode_json(c, Secrets::kOmit);
  EXPECT_NE(with.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(without.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(without.find(R"("key":)"), std::string::npos);
  EXPECT_NE(without.find(R"({"name":"pem","type":"server","cert":"-----BEGIN CERTIFICATE-----\n)"),
            std::string::npos);
  EXPECT_NE(without.find(R"({"name":"file","type":"server","cert_file":"/abs/c.pem",)"
                         R"("key_file":"c.key"})"),
            std::string::npos);
  EXPECT_NE(without.find(R"({"name":"root","type":"ca","cert_file":"ca.pem"})"), std::string::npos);
  // A certificate whose PEM text was loaded next to its file name: the text wins.
  c.certificates[0].cert_pem = kCertPem;
  EXPECT_EQ(encode_json(c).find("/abs/c.pem"), std::string::npos);
}

TEST(Json, CertificatesTakeOneFormOfEach) {
  const std::string both_certs = R"({"certificates":[{"name":"c","cert_file":"c.pem","cert":")" +
                                 std::string("x") + R"(","key_file":"c.key"}]})";
  EXPECT_EQ(json_error(both_certs), "certificates[0].cert: cannot be combined with cert_file");
  EXPECT_EQ(yaml_error("certificates: [{name: c, cert_file: c.pem, cert: x, key_file: c.key}]\n"),
            "certificates[0].cert: cannot be combined with cert_file");
  EXPECT_EQ(json_error(R"({"certificates":[{"name":"c","cert":"x","key":"y","key_file":"k"}]})"),
            "certificates[0].key: cannot be combined with key_file");
  EXPECT_EQ(json_error(R"({"certificates":[{"name":"c","key":"y"}]})"),
            "certificates[0].cert_file: is required (or cert with the PEM text)");
  EXPECT_EQ(json_error(R"({"certificates":[{"name":"c","type":"ca","cert":"x","key":"y"}]})"),
            "certificates[0].key: only for server certificates");
  EXPECT_EQ(json_error(R"({"certificates":[{"name":"c","cert":"x\u0000","key":"y"}]})"),
            "certificates[0].cert: must be PEM text (printable ASCII lines)");
}

TEST(Json, SyntaxIsStrict) {
  auto syntax = [](const std::string& text) {
    std::string error = json_error(text);
    EXPECT_EQ(error.rfind("JSON syntax error at line ", 0), 0u) << text << " -> " << error;
    return error;
  };
  syntax(R"({"acls":[],})");              // trailing comma in an object
  syntax(R"({"acls":[{"name":"a"},]})");  // ... and in an array
  syntax("{\"acls\":[] /* comment */}");  // comments
  syntax("{\"acls\":[] // comment\n}");   //
  syntax("{\"acls\":[]} {}");             // two documents
  syntax(R"({'acls':[]})");               // single quotes
  syntax(R"({acls:[]})");                 // bare keys
  syntax(json_listener("tcp", R"(,"idle_timeout":NaN)"));
  syntax(json_listener("tcp", R"(,"idle_timeout":Infinity)"));
  syntax(json_listener("tcp", R"(,"idle_timeout":0x10)"));
  syntax(json_listener("tcp", R"(,"idle_timeout":010)"));
  syntax("{\"acls\":[{\"name\":\"a\xff\"}]}");     // invalid UTF-8
  syntax("{\"acls\":[{\"name\":\"\xc0\xaf\"}]}");  // overlong
  syntax(R"({"acls":[{"name":"\ud800"}]})");       // lone surrogate
  syntax("{\"acls\":[{\"name\":\"a\nb\"}]}");      // raw control character
  EXPECT_EQ(syntax("{\n  \"acls\": [],\n}"),
            "JSON syntax error at line 3, column 1: parsing object key - unexpected '}'; "
            "expected string literal");
  EXPECT_EQ(json_error(""), "the document is empty");
  EXPECT_EQ(json_error(" \n\t"), "the document is empty");
  EXPECT_EQ(json_error(std::string(kMaxJsonBytes + 1, ' ')),
            "document too large (more than 16 MiB)");
}

TEST(Json, SyntaxErrorsNeverQuoteTheInput) {
  // A raw newline inside a private key: the error must not echo the key.
  std::string error =
      json_error(R"({"certificates":[{"name":"c","cert":"x","key":"-----BEGIN PRIVATE KEY-----)"
                 "\nMIGHAgEAMBMGByqGSM49\"}]}");
  EXPECT_EQ(error.rfind("JSON syntax error at line 1, column ", 0), 0u) << error;
  EXPECT_EQ(error.find("PRIVATE"), std::string::npos) << error;
  EXPECT_EQ(error.find("MIGH"), std::string::npos) << error;
}

TEST(Json, DuplicateKeysNameTheirPath) {
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"port":81)")),
            "loadbalancers[0].listeners[0].port: duplicate key");
  EXPECT_EQ(json_error(R"({"acls":[],"acls":[]})"), "acls: duplicate key");
  EXPECT_EQ(json_error(R"({"acls":[{"name":"a","entries":[{"cidr":"10.0.0.0/8","cidr":"x"}]}]})"),
            "acls[0].entries[0].cidr: duplicate key");
  // Also where the decoder would never look (an unknown field) and in tags.
  EXPECT_EQ(json_error(R"({"x":{"a":1,"a":2}})"), "x.a: duplicate key");
  EXPECT_EQ(json_error(R"({"loadbalancers":[{"tags":{"k":"1","k":"2"}}]})"),
            "loadbalancers[0].tags.k: duplicate key");
}

TEST(Json, TypesAreStrict) {
  const std::string l = "loadbalancers[0].listeners[0].";
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"bandwidth_mbps":"10")")),
            l + "bandwidth_mbps: must be an integer");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"bandwidth_mbps":10.0)")),
            l + "bandwidth_mbps: must be an integer");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"bandwidth_mbps":1e1)")),
            l + "bandwidth_mbps: must be an integer");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"access_log":"true")")),
            l + "access_log: must be true or false");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"access_log":1)")),
            l + "access_log: must be true or false");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"access_log":[])")),
            l + "access_log: must be true or false");
  // Numbers and booleans are not strings in JSON (in YAML a plain 123 is).
  EXPECT_EQ(json_error(R"({"acls":[{"name":123}]})"), "acls[0].name: must be a string");
  EXPECT_EQ(json_error(R"({"acls":[{"name":true}]})"), "acls[0].name: must be a string");
  EXPECT_EQ(json_error(R"({"loadbalancers":[{"name":"a","tags":{"k":1}}]})"),
            "loadbalancers[0].tags.k: must be a string");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"health_check":[])")),
            l + "health_check: must be a mapping");
  EXPECT_EQ(json_error(R"({"loadbalancers":{}})"), "loadbalancers: must be a list");
  EXPECT_EQ(json_error("[]"),
            "the document must be a mapping with loadbalancers, certificates and acls");
  EXPECT_EQ(json_error("null"),
            "the document must be a mapping with loadbalancers, certificates and acls");
  EXPECT_EQ(json_error(R"({"acl":[]})"), "acl: unknown field");
  // null is an absent key, as in YAML.
  json_ok(json_listener("tcp", R"(,"acl":null,"scheduler":null)"));
}

TEST(Json, NumbersOutsideEveryRange) {
  const std::string l = "loadbalancers[0].listeners[0].";
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"bandwidth_mbps":99999999999999999999999)")),
            l + "bandwidth_mbps: must be -1 (unlimited) or 1–5120");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"bandwidth_mbps":18446744073709551615)")),
            l + "bandwidth_mbps: must be -1 (unlimited) or 1–5120");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"bandwidth_mbps":-9223372036854775808)")),
            l + "bandwidth_mbps: must be -1 (unlimited) or 1–5120");
  const std::string duration =
      "must be a duration: seconds (2, 0.5) or a number with a unit (500ms, 2s, 1m)";
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"idle_timeout":1e400)")),
            l + "idle_timeout: number out of range");
  EXPECT_EQ(json_error(R"({"x":[1,-1e400]})"), "x[1]: number out of range");
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"idle_timeout":1e3)")),
            l + "idle_timeout: " + duration);
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"idle_timeout":-1)")),
            l + "idle_timeout: " + duration);
  EXPECT_EQ(json_error(json_listener("tcp", R"(,"idle_timeout":1e308)")),
            l + "idle_timeout: " + duration);
}

TEST(Json, NestingAndSizeAreBounded) {
  std::string deep = R"({"x":)" + std::string(100, '[') + std::string(100, ']') + "}";
  std::string error = json_error(deep);
  EXPECT_NE(error.find(": nested too deeply (more than 64 levels)"), std::string::npos) << error;
  EXPECT_EQ(error.rfind("x[0][0]", 0), 0u) << error;
  // Far deeper than any stack would take if the parser recursed.
  std::string very_deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  EXPECT_NE(json_error(very_deep).find("nested too deeply"), std::string::npos);
}

TEST(Json, ValueBudget) {
  std::string many = R"({"x":[)";
  for (int i = 0; i < 1'000'001; ++i) many += "0,";
  many += "0]}";
  EXPECT_EQ(json_error(many), "document too large (more than 1000000 values)");
}

// The same mistake gives the same error, field path and message, in YAML and in JSON.
TEST(Json, ErrorsAreTheYamlErrors) {
  struct Case {
    std::string protocol, yaml, json;
  };
  const Case cases[] = {
      {"tcp", "        gzip: true\n", R"(,"gzip":true)"},
      {"http", "        certificates: [c]\n", R"(,"certificates":["c"])"},
      {"udp", "        connect_timeout: 5\n", R"(,"connect_timeout":5)"},
      {"tcp", "        health_check: {uri: /x}\n", R"(,"health_check":{"uri":"/x"})"},
      {"tcp", "        health_check: {intervall: 2}\n", R"(,"health_check":{"intervall":2})"},
      {"tcp", "        port: 81\n", R"(,"port":81)"},
      {"tcp", "        bandwidth_mbps: '10'\n", R"(,"bandwidth_mbps":"10")"},
      {"tcp", "        bandwidth_mbps: 10.5\n", R"(,"bandwidth_mbps":10.5)"},
      {"tcp", "        bandwidth_mbps: 99999999999999999999\n",
       R"(,"bandwidth_mbps":99999999999999999999)"},
      {"tcp", "        access_log: 'true'\n", R"(,"access_log":"true")"},
      {"tcp", "        scheduler: fastest\n", R"(,"scheduler":"fastest")"},
      {"tcp", "        health_check: 5\n", R"(,"health_check":5)"},
      {"tcp", "        idle_timeout: 5\n", R"(,"idle_timeout":5)"},
      {"tcp", "        idle_timeout: 1e3\n", R"(,"idle_timeout":1e3)"},
      {"http", "        health_check: {interval: 51}\n", R"(,"health_check":{"interval":51})"},
      {"http", "        sticky_session: {type: insert, cookie_timeout: 1.5}\n",
       R"(,"sticky_session":{"type":"insert","cookie_timeout":1.5})"},
      {"tcp", "        acl: {acl: office}\n", R"(,"acl":{"acl":"office"})"},
  };
  for (const Case& k : cases) {
    std::string yaml = yaml_error(yaml_listener(k.protocol, k.yaml));
    EXPECT_NE(yaml, "ok") << k.yaml;
    EXPECT_EQ(json_error(json_listener(k.protocol, k.json)), yaml) << k.json;
  }
  EXPECT_EQ(json_error(R"({"loadbalancers":[{"name":"lb","address":"10.1.1.1",)"
                       R"("server_groups":[{"name":"g","backends":[{"address":"10.0.0.1",)"
                       R"("port":80,"weight":101}]}]}]})"),
            yaml_error("loadbalancers:\n"
                       "  - name: lb\n"
                       "    address: 10.1.1.1\n"
                       "    server_groups: [{name: g, backends: [{address: 10.0.0.1, port: 80, "
                       "weight: 101}]}]\n"));
  EXPECT_EQ(
      json_error(R"({"loadbalancers":[{"name":"lb","address":"10.1.1.1",)"
                 R"("listeners":[{"port":80}]}]})"),
      yaml_error("loadbalancers: [{name: lb, address: 10.1.1.1, listeners: [{port: 80}]}]\n"));
}

// --- The store
// ------------------------------------------------------------------------------------

TEST(JsonStore, KeysFollowTheLayout) {
  Config c = yaml_ok(kMaximalYaml);
  std::vector<std::string> keys;
  for (const auto& [key, value] : to_store(c)) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "/fulcrum/acl/empty",
                      "/fulcrum/acl/office",
                      "/fulcrum/certificate/file",
                      "/fulcrum/certificate/pem",
                      "/fulcrum/certificate/root",
                      "/fulcrum/lb/edge",
                      "/fulcrum/lb/edge/listener/http:80",
                      "/fulcrum/lb/edge/listener/https:443",
                      "/fulcrum/lb/edge/listener/tcp:22",
                      "/fulcrum/lb/edge/listener/udp:53",
                      "/fulcrum/lb/edge/servergroup/g",
                      "/fulcrum/lb/edge/servergroup/h",
                      "/fulcrum/lb/inner",
                      "/fulcrum/lb/inner/listener/tcp:81",
                      "/fulcrum/lb/inner/servergroup/g",
                  }));
  auto kvs = to_store(c);
  EXPECT_EQ(kvs.at("/fulcrum/lb/inner"),
            R"({"name":"inner","address":"10.1.1.1","address_type":"intranet","status":"active",)"
            R"("bandwidth_mbps":-1,"charge_type":"pay_by_traffic","tags":{}})");
  EXPECT_EQ(kvs.at("/fulcrum/lb/inner/servergroup/g"),
            R"({"name":"g","backends":[{"address":"10.0.0.1","port":80,"weight":100,)"
            R"("zone":"","description":""}]})");
  EXPECT_NE(kvs.at("/fulcrum/certificate/pem").find("PRIVATE KEY"), std::string::npos);
}

TEST(JsonStore, RoundTrip) {
  Config c = yaml_ok(kMaximalYaml);
  auto kvs = to_store(c);
  auto back = from_store(kvs);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_TRUE(*back == in_store_order(c));
  EXPECT_EQ(to_store(*back), kvs);
  auto empty = from_store({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(*empty == Config{});
}

TEST(JsonStore, KeysOutsideTheConfigurationAreSkipped) {
  auto kvs = to_store(yaml_ok(kMaximalYaml));
  kvs["/fulcrum/meta/generation"] = "7";
  kvs["/other"] = "not json";
  EXPECT_TRUE(from_store(kvs).ok());
}

std::string store_error(const std::map<std::string, std::string>& kvs) {
  auto result = from_store(kvs);
  return result.ok() ? "ok" : result.error().to_string();
}

TEST(JsonStore, ErrorsNameTheKey) {
  const auto good = to_store(yaml_ok(kMaximalYaml));
  auto kvs = good;
  kvs["/fulcrum/lb/edge/listener/tcp:22"] = R"({"protocol":"tcp","port":22,"server_group":"h",)"
                                            R"("health_check":{"interval":60}})";
  EXPECT_EQ(store_error(kvs),
            "/fulcrum/lb/edge/listener/tcp:22: health_check.interval: must be 1–50 s");

  kvs = good;
  kvs["/fulcrum/lb/edge/listener/tcp:22"] = R"({"protocol":"tcp","port":22,"port":23})";
  EXPECT_EQ(store_error(kvs), "/fulcrum/lb/edge/listener/tcp:22: port: duplicate key");

  kvs = good;
  kvs["/fulcrum/lb/edge/listener/tcp:22"] = R"({"protocol":"tcp","port":23,"server_group":"h"})";
  EXPECT_EQ(store_error(kvs),
            "/fulcrum/lb/edge/listener/tcp:22: protocol:port: \"tcp:23\" does not match the key "
            "(\"tcp:22\")");

  kvs = good;
  kvs["/fulcrum/acl/office"] = R"({"name":"elsewhere"})";
  EXPECT_EQ(store_error(kvs),
            "/fulcrum/acl/office: name: \"elsewhere\" does not match the key (\"office\")");

  kvs = good;
  kvs["/fulcrum/acl/office"] = "[]";
  EXPECT_EQ(store_error(kvs), "/fulcrum/acl/office: must be a JSON object");

  kvs = good;
  kvs["/fulcrum/acl/office"] = "{";
  EXPECT_EQ(store_error(kvs).rfind("/fulcrum/acl/office: JSON syntax error at line 1", 0), 0u);

  kvs = good;
  kvs["/fulcrum/lb/ghost/servergroup/g"] = R"({"name":"g"})";
  EXPECT_EQ(store_error(kvs),
            "/fulcrum/lb/ghost/servergroup/g: no load balancer \"ghost\" (/fulcrum/lb/ghost)");

  kvs = good;
  kvs["/fulcrum/lb/inner"] = R"({"name":"inner","address":"10.1.1.1","listeners":[]})";
  EXPECT_EQ(store_error(kvs), "/fulcrum/lb/inner: listeners: stored under keys of their own");

  for (const char* bad : {"/fulcrum/lb/", "/fulcrum/lb/a/", "/fulcrum/lb/a/rule/x",
                          "/fulcrum/lb/a/listener", "/fulcrum/acl/a/b", "/fulcrum/certificate/"}) {
    kvs = good;
    kvs[bad] = "{}";
    EXPECT_EQ(store_error(kvs).rfind(std::string(bad) + ": not a configuration key", 0), 0u)
        << store_error(kvs);
  }

  // A reference to another resource is named by its key too.
  kvs = good;
  kvs["/fulcrum/lb/inner/listener/tcp:22"] = R"({"protocol":"tcp","port":22,"server_group":"g"})";
  kvs["/fulcrum/lb/inner"] = R"({"name":"inner","address":"::"})";
  EXPECT_EQ(store_error(kvs),
            "/fulcrum/lb/inner/listener/tcp:22: port: port 22 already used by "
            "/fulcrum/lb/edge/listener/tcp:22");
}

}  // namespace
}  // namespace fulcrum::config
