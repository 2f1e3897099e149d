// What the metrics report is made of: plain copies of the workers' counters (one WorkerSample per
// worker, built on that worker), the control plane's view of backend health, and process facts.
// Samples are values: they cross threads by being moved inside posted messages. [any]
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/counters.h"

namespace fulcrum::metrics {

struct BackendSample {
  std::string server_group;
  std::string backend;  // "address:port"
  uint64_t connections = 0;
  uint64_t active = 0;
  uint64_t connect_failures = 0;
  std::array<uint64_t, 6> responses_by_class{};  // HTTP: [1] 1xx ... [5] 5xx

  static BackendSample from(const base::BackendCounters& c);
  void add(const BackendSample& other);
};

struct ListenerSample {
  std::string lb;
  std::string listener;      // "http:8080"
  bool http = false;         // the HTTP families apply
  bool has_packets = false;  // UDP: the packet families apply
  bool tls = false;          // HTTPS: the TLS families apply
  base::ListenerCounters counters;
  base::TlsCounters tls_counters;                // HTTPS
  std::array<uint64_t, 6> responses_by_class{};  // HTTP: [1] 1xx ... [5] 5xx
  base::LatencyHistogram request_duration;       // HTTP
  base::LatencyHistogram upstream_response;      // HTTP
  std::vector<BackendSample> backends;

  // Adds the other's counters and histograms (not its backends: aggregate() merges those).
  void add(const ListenerSample& other);
};

// One worker's counters, copied on that worker.
struct WorkerSample {
  std::vector<ListenerSample> listeners;
};

enum class BackendStatus : uint8_t { kHealthy, kUnhealthy, kDraining, kUnchecked };

// A backend as the running configuration sees it (control plane).
struct BackendHealthSample {
  std::string lb;
  std::string listener;
  std::string server_group;
  std::string backend;
  BackendStatus status = BackendStatus::kUnchecked;
};

// The active checks of one (listener, backend) pair (control plane).
struct HealthCheckSample {
  std::string lb;
  std::string listener;
  std::string backend;
  uint64_t successes = 0;
  uint64_t failures = 0;
};

// What the node knows of its configuration store (in cluster mode: etcd and the other nodes).
struct StoreSample {
  int64_t revision = 0;  // of the configuration the node serves
  bool reachable = true;
  uint32_t nodes_up = 1;
  uint32_t nodes_down = 0;
};

struct Report {
  uint64_t config_generation = 0;
  StoreSample store;
  uint32_t workers = 0;
  std::vector<ListenerSample> listeners;  // one per (lb, listener): see aggregate()
  std::vector<BackendHealthSample> backend_health;
  std::vector<HealthCheckSample> health_checks;
};

// Sums the workers' samples: one ListenerSample per (lb, listener), holding one BackendSample per
// (server_group, backend), both ordered by those keys.
std::vector<ListenerSample> aggregate(const std::vector<WorkerSample>& workers);

}  // namespace fulcrum::metrics
