#include "metrics/prometheus.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <utility>

#include "metrics/names.h"

namespace fulcrum::metrics {

namespace {

constexpr std::string_view kCodeClasses[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
constexpr uint64_t kNsPerSecond = 1'000'000'000;

std::string_view type_name(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string_view status_name(BackendStatus s) {
  switch (s) {
    case BackendStatus::kHealthy:
      return "healthy";
    case BackendStatus::kUnhealthy:
      return "unhealthy";
    case BackendStatus::kDraining:
      return "draining";
    case BackendStatus::kUnchecked:
      return "unchecked";
  }
  return "unchecked";
}

constexpr BackendStatus kStatuses[] = {BackendStatus::kHealthy, BackendStatus::kUnhealthy,
                                       BackendStatus::kDraining, BackendStatus::kUnchecked};

using Label = std::pair<std::string_view, std::string_view>;

// Appends families and series to one string.
class Writer {
 public:
  // Starts a family: its HELP and TYPE lines.
  void family(const Family& f) {
    out_.append("# HELP ").append(f.name).append(" ").append(f.help).append("\n");
    out_.append("# TYPE ").append(f.name).append(" ").append(type_name(f.type)).append("\n");
  }
  void series(std::string_view name, std::initializer_list<Label> labels, std::string_view value,
              const Label* extra = nullptr) {
    out_.append(name);
    if (labels.size() > 0 || extra) {
      out_ += '{';
      bool first = true;
      auto put = [&](const Label& l) {
        if (!first) out_ += ',';
        first = false;
        out_.append(l.first).append("=\"").append(escape_label_value(l.second)).append("\"");
      };
      for (const Label& l : labels) put(l);
      if (extra) put(*extra);
      out_ += '}';
    }
    out_.append(" ").append(value).append("\n");
  }
  void series(std::string_view name, std::initializer_list<Label> labels, uint64_t value,
              const Label* extra = nullptr) {
    series(name, labels, std::to_string(value), extra);
  }
  // A histogram's _bucket (cumulative, ending with +Inf), _sum and _count series.
  void histogram(const Family& f, std::initializer_list<Label> labels,
                 const base::LatencyHistogram& h) {
    std::string bucket = std::string(f.name) + "_bucket";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < base::kLatencyBuckets; ++i) {
      cumulative += h.buckets[i];
      std::string le = i < base::kLatencyBounds
                           ? format_seconds(static_cast<uint64_t>(base::kLatencyBoundsNs[i]))
                           : std::string("+Inf");
      Label extra{"le", le};
      series(bucket, labels, cumulative, &extra);
    }
    series(std::string(f.name) + "_sum", labels, format_seconds(h.sum_ns));
    series(std::string(f.name) + "_count", labels, cumulative);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

void render_listeners(const Report& r, Writer& w) {
  struct Plain {
    const Family& family;
    uint64_t base::ListenerCounters::*field;
  };
  const Plain plain[] = {
      {kListenerConnections, &base::ListenerCounters::connections},
      {kListenerActive, &base::ListenerCounters::active},
      {kListenerDropped, &base::ListenerCounters::dropped},
      {kListenerAclDenied, &base::ListenerCounters::acl_denied},
      {kListenerBytesIn, &base::ListenerCounters::bytes_in},
      {kListenerBytesOut, &base::ListenerCounters::bytes_out},
  };
  if (r.listeners.empty()) return;
  for (const Plain& p : plain) {
    w.family(p.family);
    for (const ListenerSample& l : r.listeners) {
      w.series(p.family.name, {{"lb", l.lb}, {"listener", l.listener}}, l.counters.*p.field);
    }
  }
  // UDP work adds packet counters; their families appear only once some listener has them.
  bool any_packets = false;
  for (const ListenerSample& l : r.listeners) any_packets = any_packets || l.has_packets;
  if (!any_packets) return;
  const Plain packets[] = {{kListenerPacketsIn, &base::ListenerCounters::packets_in},
                           {kListenerPacketsOut, &base::ListenerCounters::packets_out},
                           {kUdpFlowTableFull, &base::ListenerCounters::flow_table_full}};
  for (const Plain& p : packets) {
    w.family(p.family);
    for (const ListenerSample& l : r.listeners) {
      if (!l.has_packets) continue;
      w.series(p.family.name, {{"lb", l.lb}, {"listener", l.listener}}, l.counters.*p.field);
    }
  }
}

void render_http(const Report& r, Writer& w) {
  bool any = false;
  for (const ListenerSample& l : r.listeners) any = any || l.http;
  if (!any) return;
  w.family(kHttpRequests);
  for (const ListenerSample& l : r.listeners) {
    if (!l.http) continue;
    for (size_t c = 1; c <= 5; ++c) {
      Label code{"code_class", kCodeClasses[c]};
      w.series(kHttpRequests.name, {{"lb", l.lb}, {"listener", l.listener}},
               l.responses_by_class[c], &code);
    }
  }
  w.family(kHttpRequestDuration);
  for (const ListenerSample& l : r.listeners) {
    if (l.http) {
      w.histogram(kHttpRequestDuration, {{"lb", l.lb}, {"listener", l.listener}},
                  l.request_duration);
    }
  }
  w.family(kHttpUpstreamResponse);
  for (const ListenerSample& l : r.listeners) {
    if (l.http) {
      w.histogram(kHttpUpstreamResponse, {{"lb", l.lb}, {"listener", l.listener}},
                  l.upstream_response);
    }
  }
}

void render_tls(const Report& r, Writer& w) {
  bool any = false;
  for (const ListenerSample& l : r.listeners) any = any || l.tls;
  if (!any) return;
  // One family, one value per label value, for every HTTPS listener.
  auto by_label = [&](const Family& f, std::string_view label, auto values, auto count) {
    w.family(f);
    for (const ListenerSample& l : r.listeners) {
      if (!l.tls) continue;
      for (size_t i = 0; i < values.size(); ++i) {
        Label extra{label, values[i]};
        w.series(f.name, {{"lb", l.lb}, {"listener", l.listener}}, count(l.tls_counters, i),
                 &extra);
      }
    }
  };
  constexpr std::array<std::string_view, 3> kOutcomes = {"full", "resumed", "failed"};
  by_label(kTlsHandshakes, "outcome", kOutcomes, [](const base::TlsCounters& c, size_t i) {
    return i == 0 ? c.full : i == 1 ? c.resumed : c.failed();
  });
  by_label(kTlsHandshakeFailures, "reason", kTlsFailureReasons,
           [](const base::TlsCounters& c, size_t i) { return c.failures[i]; });
  by_label(kTlsVersions, "version", kTlsVersionNames,
           [](const base::TlsCounters& c, size_t i) { return c.versions[i]; });
  by_label(kTlsAlpn, "protocol", kTlsAlpnNames,
           [](const base::TlsCounters& c, size_t i) { return c.alpn[i]; });
  // The client_certificate failures again, as their own family (alerts need no label match).
  w.family(kTlsClientCertFailures);
  for (const ListenerSample& l : r.listeners) {
    if (!l.tls) continue;
    w.series(kTlsClientCertFailures.name, {{"lb", l.lb}, {"listener", l.listener}},
             l.tls_counters.failures[static_cast<size_t>(base::TlsFailure::kClientCertificate)]);
  }
  w.family(kTlsSniUnmatched);
  for (const ListenerSample& l : r.listeners) {
    if (!l.tls) continue;
    w.series(kTlsSniUnmatched.name, {{"lb", l.lb}, {"listener", l.listener}},
             l.tls_counters.sni_unmatched);
  }
}

void render_backends(const Report& r, Writer& w) {
  struct Plain {
    const Family& family;
    uint64_t BackendSample::*field;
  };
  const Plain plain[] = {
      {kBackendConnections, &BackendSample::connections},
      {kBackendActive, &BackendSample::active},
      {kBackendConnectFailures, &BackendSample::connect_failures},
  };
  bool any = false;
  bool any_http = false;
  for (const ListenerSample& l : r.listeners) {
    any = any || !l.backends.empty();
    any_http = any_http || (l.http && !l.backends.empty());
  }
  if (any) {
    for (const Plain& p : plain) {
      w.family(p.family);
      for (const ListenerSample& l : r.listeners) {
        for (const BackendSample& b : l.backends) {
          w.series(p.family.name,
                   {{"lb", l.lb},
                    {"listener", l.listener},
                    {"server_group", b.server_group},
                    {"backend", b.backend}},
                   b.*p.field);
        }
      }
    }
  }
  if (any_http) {
    w.family(kBackendHttpResponses);
    for (const ListenerSample& l : r.listeners) {
      if (!l.http) continue;
      for (const BackendSample& b : l.backends) {
        for (size_t c = 1; c <= 5; ++c) {
          Label code{"code_class", kCodeClasses[c]};
          w.series(kBackendHttpResponses.name,
                   {{"lb", l.lb},
                    {"listener", l.listener},
                    {"server_group", b.server_group},
                    {"backend", b.backend}},
                   b.responses_by_class[c], &code);
        }
      }
    }
  }
  if (r.backend_health.empty()) return;
  w.family(kBackendUp);
  for (const BackendHealthSample& b : r.backend_health) {
    bool up = b.status == BackendStatus::kHealthy || b.status == BackendStatus::kUnchecked;
    w.series(kBackendUp.name,
             {{"lb", b.lb},
              {"listener", b.listener},
              {"server_group", b.server_group},
              {"backend", b.backend}},
             up ? 1u : 0u);
  }
  w.family(kBackendHealth);
  for (const BackendHealthSample& b : r.backend_health) {
    for (BackendStatus s : kStatuses) {
      Label status{"status", status_name(s)};
      w.series(kBackendHealth.name,
               {{"lb", b.lb},
                {"listener", b.listener},
                {"server_group", b.server_group},
                {"backend", b.backend}},
               b.status == s ? 1u : 0u, &status);
    }
  }
}

void render_health_checks(const Report& r, Writer& w) {
  if (r.health_checks.empty()) return;
  w.family(kHealthChecks);
  for (const HealthCheckSample& h : r.health_checks) {
    for (bool ok : {true, false}) {
      Label result{"result", ok ? "success" : "failure"};
      w.series(kHealthChecks.name, {{"lb", h.lb}, {"listener", h.listener}, {"backend", h.backend}},
               ok ? h.successes : h.failures, &result);
    }
  }
}

}  // namespace

std::string_view build_version() {
  return FULCRUM_VERSION;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_seconds(uint64_t ns) {
  std::string out = std::to_string(ns / kNsPerSecond);
  uint64_t frac = ns % kNsPerSecond;
  if (frac == 0) return out;
  std::string digits = std::to_string(frac);
  out += '.';
  out.append(9 - digits.size(), '0');
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  out += digits;
  return out;
}

std::string render_prometheus(const Report& r) {
  Writer w;
  w.family(kBuildInfo);
  w.series(kBuildInfo.name, {{"version", build_version()}}, 1);
  w.family(kConfigGeneration);
  w.series(kConfigGeneration.name, {}, r.config_generation);
  w.family(kWorkers);
  w.series(kWorkers.name, {}, r.workers);
  w.family(kStoreRevision);
  w.series(kStoreRevision.name, {}, static_cast<uint64_t>(std::max<int64_t>(r.store.revision, 0)));
  w.family(kStoreReachable);
  w.series(kStoreReachable.name, {}, r.store.reachable ? 1 : 0);
  w.family(kClusterNodes);
  w.series(kClusterNodes.name, {{"state", "up"}}, r.store.nodes_up);
  w.series(kClusterNodes.name, {{"state", "down"}}, r.store.nodes_down);
  render_listeners(r, w);
  render_http(r, w);
  render_tls(r, w);
  render_backends(r, w);
  render_health_checks(r, w);
  return w.take();
}

}  // namespace fulcrum::metrics
