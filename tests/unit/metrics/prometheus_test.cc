#include "metrics/prometheus.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/names.h"

namespace fulcrum::metrics {
namespace {

// One parsed sample line.
struct Line {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  std::string value;
};

// Checks `text` against the text exposition format 0.0.4 as far as Fulcrum uses it: every line is
// a HELP, a TYPE or a sample; each family has exactly one HELP and one TYPE, before its samples,
// and its samples are contiguous; label values use only the three escapes. Returns the samples.
std::vector<Line> parse_exposition(const std::string& text) {
  std::vector<Line> out;
  std::map<std::string, std::string> types;
  std::set<std::string> helped, finished;
  std::string current;  // the family whose samples are being read
  EXPECT_TRUE(text.empty() || text.back() == '\n');
  std::istringstream in(text);
  std::string line;
  auto family_of = [&](const std::string& sample) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s(suffix);
      if (sample.size() > s.size() && sample.ends_with(s)) {
        std::string base = sample.substr(0, sample.size() - s.size());
        if (types.count(base) && types[base] == "histogram") return base;
      }
    }
    return sample;
  };
  while (std::getline(in, line)) {
    if (line.starts_with("# HELP ")) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(helped.insert(name).second) << "second HELP for " << name;
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      std::string rest = line.substr(7);
      std::string name = rest.substr(0, rest.find(' '));
      std::string type = rest.substr(rest.find(' ') + 1);
      EXPECT_TRUE(helped.count(name)) << "TYPE before HELP for " << name;
      EXPECT_FALSE(types.count(name)) << "second TYPE for " << name;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << type;
      types[name] = type;
      if (!current.empty()) finished.insert(current);
      current = name;
      continue;
    }
    EXPECT_FALSE(line.starts_with("#")) << line;
    Line l;
    size_t i = 0;
    while (i < line.size() &&
           (isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':')) {
      ++i;
    }
    l.name = line.substr(0, i);
    EXPECT_FALSE(l.name.empty()) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        EXPECT_NE(eq, std::string::npos) << line;
        if (eq == std::string::npos) return out;
        std::string key = line.substr(i, eq - i);
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            EXPECT_TRUE(line[j] == '\\' || line[j] == '"' || line[j] == 'n') << line;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        EXPECT_TRUE(l.labels.emplace(key, value).second) << "label twice: " << line;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    l.value = line.substr(i + 1);
    EXPECT_FALSE(l.value.empty()) << line;
    std::string family = family_of(l.name);
    EXPECT_EQ(family, current) << "sample outside its family block: " << line;
    EXPECT_FALSE(finished.count(family)) << line;
    out.push_back(std::move(l));
  }
  return out;
}

std::vector<Line> find(const std::vector<Line>& lines, const std::string& name) {
  std::vector<Line> out;
  for (const Line& l : lines) {
    if (l.name == name) out.push_back(l);
  }
  return out;
}

Report sample_report() {
  Report r;
  r.config_generation = 7;
  r.store = StoreSample{4182, false, 2, 1};
  r.workers = 2;
  ListenerSample tcp;
  tcp.lb = "shop";
  tcp.listener = "tcp:8000";
  tcp.counters = {10, 2, 1, 1000, 2000, 0, 0, 1};
  BackendSample b;
  b.server_group = "demo";
  b.backend = "127.0.0.1:9001";
  b.connections = 9;
  b.active = 2;
  b.connect_failures = 1;
  tcp.backends.push_back(b);
  ListenerSample http;
  http.lb = "shop";
  http.listener = "http:8080";
  http.http = true;
  http.counters = {5, 1, 0, 300, 400, 0, 0};
  http.responses_by_class = {0, 0, 40, 1, 2, 3};
  http.request_duration.observe(300'000);         // 0.3 ms
  http.request_duration.observe(2'000'000);       // 2 ms
  http.request_duration.observe(2'000'000);       // 2 ms
  http.request_duration.observe(60'000'000'000);  // 60 s: +Inf
  http.upstream_response.observe(1'000'000);
  BackendSample hb = b;
  hb.server_group = "web";
  hb.responses_by_class = {0, 0, 38, 0, 0, 3};
  http.backends.push_back(hb);
  r.listeners = {http, tcp};
  r.backend_health = {{"shop", "tcp:8000", "demo", "127.0.0.1:9001", BackendStatus::kHealthy},
                      {"shop", "http:8080", "web", "127.0.0.1:9001", BackendStatus::kDraining}};
  r.health_checks = {{"shop", "http:8080", "127.0.0.1:9001", 12, 3}};
  return r;
}

TEST(RenderPrometheus, EmptyReportHasTheProcessFamiliesOnly) {
  Report r;
  std::string expected = std::string("# HELP fulcrum_build_info ") + std::string(kBuildInfo.help) +
                         "\n# TYPE fulcrum_build_info gauge\nfulcrum_build_info{version=\"" +
                         std::string(build_version()) + "\"} 1\n";
  std::string text = render_prometheus(r);
  EXPECT_TRUE(text.starts_with(expected)) << text;
  EXPECT_NE(text.find("\nfulcrum_config_generation 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfulcrum_workers 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfulcrum_store_reachable 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfulcrum_cluster_nodes{state=\"up\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("fulcrum_listener"), std::string::npos) << text;
  EXPECT_EQ(text.find("fulcrum_http"), std::string::npos) << text;
  parse_exposition(text);
}

TEST(RenderPrometheus, BuildVersionIsTheProjectVersion) {
  EXPECT_EQ(build_version(), "0.1.0");
}

TEST(RenderPrometheus, EveryFamilyWithLabelsAndValues) {
  std::string text = render_prometheus(sample_report());
  auto lines = parse_exposition(text);
  EXPECT_NE(text.find("\nfulcrum_config_generation 7\n"), std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_workers 2\n"), std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_store_revision 4182\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfulcrum_store_reachable 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfulcrum_cluster_nodes{state=\"up\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfulcrum_cluster_nodes{state=\"down\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfulcrum_listener_connections_total{lb=\"shop\",listener=\"tcp:8000\"} "
                      "10\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\nfulcrum_listener_active_connections{lb=\"shop\",listener=\"http:8080\"} "
                      "1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_listener_dropped_connections_total{lb=\"shop\",listener=\"tcp:"
                      "8000\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_listener_acl_denied_total{lb=\"shop\",listener=\"tcp:8000\"} "
                      "1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_listener_bytes_in_total{lb=\"shop\",listener=\"tcp:8000\"} "
                      "1000\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_listener_bytes_out_total{lb=\"shop\",listener=\"tcp:8000\"} "
                      "2000\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_http_requests_total{lb=\"shop\",listener=\"http:8080\",code_"
                      "class=\"2xx\"} 40\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_backend_connections_total{lb=\"shop\",listener=\"tcp:8000\","
                      "server_group=\"demo\",backend=\"127.0.0.1:9001\"} 9\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_backend_active_connections{lb=\"shop\",listener=\"tcp:8000\","
                      "server_group=\"demo\",backend=\"127.0.0.1:9001\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_backend_connect_failures_total{lb=\"shop\",listener=\"tcp:8000\","
                      "server_group=\"demo\",backend=\"127.0.0.1:9001\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_backend_http_responses_total{lb=\"shop\",listener=\"http:8080\","
                      "server_group=\"web\",backend=\"127.0.0.1:9001\",code_class=\"5xx\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_backend_up{lb=\"shop\",listener=\"tcp:8000\",server_group="
                      "\"demo\",backend=\"127.0.0.1:9001\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_backend_up{lb=\"shop\",listener=\"http:8080\",server_group="
                      "\"web\",backend=\"127.0.0.1:9001\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nfulcrum_health_checks_total{lb=\"shop\",listener=\"http:8080\",backend="
                      "\"127.0.0.1:9001\",result=\"failure\"} 3\n"),
            std::string::npos);

  // Every HTTP listener has all five classes (stable series), TCP listeners none.
  auto requests = find(lines, "fulcrum_http_requests_total");
  ASSERT_EQ(requests.size(), 5u);
  std::vector<std::string> classes;
  for (const Line& l : requests) {
    EXPECT_EQ(l.labels.at("listener"), "http:8080");
    classes.push_back(l.labels.at("code_class"));
  }
  EXPECT_EQ(classes, (std::vector<std::string>{"1xx", "2xx", "3xx", "4xx", "5xx"}));
  // One health series per status, 1 for the current one.
  std::map<std::string, std::string> draining;
  for (const Line& l : find(lines, "fulcrum_backend_health")) {
    if (l.labels.at("listener") == "http:8080") draining[l.labels.at("status")] = l.value;
  }
  EXPECT_EQ(draining,
            (std::map<std::string, std::string>{
                {"healthy", "0"}, {"unhealthy", "0"}, {"draining", "1"}, {"unchecked", "0"}}));
  // Nothing for UDP.
  EXPECT_EQ(text.find("packets"), std::string::npos);
}

TEST(RenderPrometheus, HistogramBucketsAreCumulativeWithSumAndCount) {
  auto lines = parse_exposition(render_prometheus(sample_report()));
  auto buckets = find(lines, "fulcrum_http_request_duration_seconds_bucket");
  ASSERT_EQ(buckets.size(), 15u);
  std::vector<std::string> le, values;
  for (const Line& l : buckets) {
    le.push_back(l.labels.at("le"));
    values.push_back(l.value);
    EXPECT_EQ(l.labels.at("lb"), "shop");
  }
  EXPECT_EQ(le,
            (std::vector<std::string>{"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                                      "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}));
  EXPECT_EQ(values, (std::vector<std::string>{"1", "1", "3", "3", "3", "3", "3", "3", "3", "3", "3",
                                              "3", "3", "3", "4"}));
  auto sum = find(lines, "fulcrum_http_request_duration_seconds_sum");
  auto count = find(lines, "fulcrum_http_request_duration_seconds_count");
  ASSERT_EQ(sum.size(), 1u);
  ASSERT_EQ(count.size(), 1u);
  EXPECT_EQ(sum[0].value, "60.0043");  // 0.3 ms + 2 ms + 2 ms + 60 s
  EXPECT_EQ(count[0].value, "4");
  auto upstream = find(lines, "fulcrum_http_upstream_response_seconds_count");
  ASSERT_EQ(upstream.size(), 1u);
  EXPECT_EQ(upstream[0].value, "1");
}

TEST(RenderPrometheus, LabelValuesAreEscaped) {
  EXPECT_EQ(escape_label_value("plain:8080"), "plain:8080");
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  Report r;
  ListenerSample l;
  l.lb = "we\"ird\\lb\nname";
  l.listener = "tcp:1";
  r.listeners.push_back(l);
  std::string text = render_prometheus(r);
  EXPECT_NE(text.find("lb=\"we\\\"ird\\\\lb\\nname\""), std::string::npos) << text;
  auto lines = parse_exposition(text);
  auto conns = find(lines, "fulcrum_listener_connections_total");
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_EQ(conns[0].labels.at("lb"), "we\"ird\\lb\nname");  // round trip
}

TEST(RenderPrometheus, PacketFamiliesOnlyForListenersThatHavePackets) {
  Report r;
  ListenerSample tcp;
  tcp.lb = "x";
  tcp.listener = "tcp:1";
  ListenerSample udp;
  udp.lb = "x";
  udp.listener = "udp:53";
  udp.has_packets = true;
  udp.counters.packets_in = 5;
  udp.counters.packets_out = 4;
  r.listeners = {tcp};
  EXPECT_EQ(render_prometheus(r).find("packets"), std::string::npos);
  r.listeners = {tcp, udp};
  auto lines = parse_exposition(render_prometheus(r));
  auto in = find(lines, "fulcrum_listener_packets_in_total");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].labels.at("listener"), "udp:53");
  EXPECT_EQ(in[0].value, "5");
  EXPECT_EQ(find(lines, "fulcrum_listener_packets_out_total")[0].value, "4");
  EXPECT_EQ(find(lines, "fulcrum_udp_flow_table_full_total")[0].value, "0");
}

TEST(RenderPrometheus, TlsFamiliesOnlyForHttpsListenersWithEveryLabelValue) {
  Report r;
  ListenerSample http;
  http.lb = "x";
  http.listener = "http:80";
  http.http = true;
  r.listeners = {http};
  EXPECT_EQ(render_prometheus(r).find("fulcrum_tls_"), std::string::npos);
  ListenerSample https = http;
  https.listener = "https:443";
  https.tls = true;
  base::TlsCounters& c = https.tls_counters;
  c.full = 5;
  c.resumed = 2;
  c.count_failure(base::TlsFailure::kNoSharedCipher);
  c.count_failure(base::TlsFailure::kClientCertificate);
  c.count_failure(base::TlsFailure::kClientCertificate);
  c.count_failure(base::TlsFailure::kTimeout);
  c.versions[static_cast<size_t>(base::TlsVersion::kTls1_2)] = 3;
  c.versions[static_cast<size_t>(base::TlsVersion::kTls1_3)] = 4;
  c.alpn[static_cast<size_t>(base::TlsAlpn::kH2)] = 1;
  c.alpn[static_cast<size_t>(base::TlsAlpn::kNone)] = 6;
  c.sni_unmatched = 9;
  r.listeners = {http, https};
  auto lines = parse_exposition(render_prometheus(r));
  auto values = [&](const std::string& family, const std::string& label) {
    std::map<std::string, std::string> out;
    for (const Line& l : find(lines, family)) {
      EXPECT_EQ(l.labels.at("listener"), "https:443");
      out[label.empty() ? "" : l.labels.at(label)] = l.value;
    }
    return out;
  };
  using M = std::map<std::string, std::string>;
  EXPECT_EQ(values("fulcrum_tls_handshakes_total", "outcome"),
            (M{{"full", "5"}, {"resumed", "2"}, {"failed", "4"}}));
  EXPECT_EQ(values("fulcrum_tls_handshake_failures_total", "reason"),
            (M{{"no_shared_cipher", "1"},
               {"bad_certificate", "0"},
               {"client_certificate", "2"},
               {"protocol", "0"},
               {"timeout", "1"},
               {"closed", "0"},
               {"other", "0"}}));
  EXPECT_EQ(values("fulcrum_tls_versions_total", "version"),
            (M{{"TLSv1", "0"}, {"TLSv1.1", "0"}, {"TLSv1.2", "3"}, {"TLSv1.3", "4"}}));
  EXPECT_EQ(values("fulcrum_tls_alpn_total", "protocol"),
            (M{{"h2", "1"}, {"http/1.1", "0"}, {"none", "6"}}));
  EXPECT_EQ(values("fulcrum_tls_client_cert_failures_total", ""), (M{{"", "2"}}));
  EXPECT_EQ(values("fulcrum_tls_sni_unmatched_total", ""), (M{{"", "9"}}));
}

TEST(FormatSeconds, ExactDecimalWithoutTrailingZeros) {
  EXPECT_EQ(format_seconds(0), "0");
  EXPECT_EQ(format_seconds(500'000), "0.0005");
  EXPECT_EQ(format_seconds(1), "0.000000001");
  EXPECT_EQ(format_seconds(2'500'000'000), "2.5");
  EXPECT_EQ(format_seconds(10'000'000'000), "10");
  EXPECT_EQ(format_seconds(123'456'789'012), "123.456789012");
}

// The names are API: this list changes only by adding.
TEST(Names, StableFamilyNamesAndTypes) {
  std::vector<std::string> names;
  std::set<std::string> unique;
  for (const Family& f : kFamilies) {
    names.emplace_back(f.name);
    EXPECT_TRUE(unique.insert(std::string(f.name)).second) << f.name;
    EXPECT_TRUE(f.name.starts_with("fulcrum_")) << f.name;
    EXPECT_EQ(f.type == Type::kCounter, f.name.ends_with("_total")) << f.name;
    EXPECT_EQ(f.help.find('\\'), std::string_view::npos);
    EXPECT_EQ(f.help.find('\n'), std::string_view::npos);
  }
  EXPECT_EQ(names, (std::vector<std::string>{
                       "fulcrum_build_info",
                       "fulcrum_config_generation",
                       "fulcrum_workers",
                       "fulcrum_store_revision",
                       "fulcrum_store_reachable",
                       "fulcrum_cluster_nodes",
                       "fulcrum_listener_connections_total",
                       "fulcrum_listener_active_connections",
                       "fulcrum_listener_dropped_connections_total",
                       "fulcrum_listener_bytes_in_total",
                       "fulcrum_listener_bytes_out_total",
                       "fulcrum_listener_packets_in_total",
                       "fulcrum_listener_packets_out_total",
                       "fulcrum_udp_flow_table_full_total",
                       "fulcrum_http_requests_total",
                       "fulcrum_http_request_duration_seconds",
                       "fulcrum_http_upstream_response_seconds",
                       "fulcrum_backend_connections_total",
                       "fulcrum_backend_active_connections",
                       "fulcrum_backend_connect_failures_total",
                       "fulcrum_backend_http_responses_total",
                       "fulcrum_backend_up",
                       "fulcrum_backend_health",
                       "fulcrum_health_checks_total",
                       "fulcrum_listener_acl_denied_total",
                       "fulcrum_tls_handshakes_total",
                       "fulcrum_tls_handshake_failures_total",
                       "fulcrum_tls_versions_total",
                       "fulcrum_tls_alpn_total",
                       "fulcrum_tls_client_cert_failures_total",
                       "fulcrum_tls_sni_unmatched_total",
                   }));
  EXPECT_EQ(kHttpRequestDuration.type, Type::kHistogram);
  EXPECT_EQ(kHttpUpstreamResponse.type, Type::kHistogram);
  EXPECT_EQ(kListenerActive.type, Type::kGauge);
  EXPECT_EQ(kBackendActive.type, Type::kGauge);
  EXPECT_EQ(kBackendUp.type, Type::kGauge);
}

}  // namespace
}  // namespace fulcrum::metrics
