#include "metrics/sample.h"

#include <map>
#include <utility>

namespace fulcrum::metrics {

BackendSample BackendSample::from(const base::BackendCounters& c) {
  BackendSample s;
  s.server_group = c.group;
  s.backend = c.backend;
  s.connections = c.connections;
  s.active = c.active;
  s.connect_failures = c.connect_failures;
  for (size_t i = 0; i < s.responses_by_class.size(); ++i) {
    s.responses_by_class[i] = c.responses_by_class[i];
  }
  return s;
}

void BackendSample::add(const BackendSample& other) {
  connections += other.connections;
  active += other.active;
  connect_failures += other.connect_failures;
  for (size_t i = 0; i < responses_by_class.size(); ++i) {
    responses_by_class[i] += other.responses_by_class[i];
  }
}

void ListenerSample::add(const ListenerSample& other) {
  http = http || other.http;
  has_packets = has_packets || other.has_packets;
  tls = tls || other.tls;
  counters.add(other.counters);
  tls_counters.add(other.tls_counters);
  for (size_t i = 0; i < responses_by_class.size(); ++i) {
    responses_by_class[i] += other.responses_by_class[i];
  }
  request_duration.add(other.request_duration);
  upstream_response.add(other.upstream_response);
}

std::vector<ListenerSample> aggregate(const std::vector<WorkerSample>& workers) {
  using Key = std::pair<std::string, std::string>;
  struct Sum {
    ListenerSample listener;
    std::map<Key, BackendSample> backends;  // by (server_group, backend)
  };
  std::map<Key, Sum> by_key;  // by (lb, listener)
  for (const WorkerSample& w : workers) {
    for (const ListenerSample& l : w.listeners) {
      auto [it, fresh] = by_key.try_emplace({l.lb, l.listener});
      Sum& sum = it->second;
      if (fresh) {
        sum.listener.lb = l.lb;
        sum.listener.listener = l.listener;
      }
      sum.listener.add(l);
      for (const BackendSample& b : l.backends) {
        auto [bit, new_backend] = sum.backends.try_emplace({b.server_group, b.backend});
        if (new_backend) {
          bit->second.server_group = b.server_group;
          bit->second.backend = b.backend;
        }
        bit->second.add(b);
      }
    }
  }
  std::vector<ListenerSample> out;
  out.reserve(by_key.size());
  for (auto& [key, sum] : by_key) {
    sum.listener.backends.reserve(sum.backends.size());
    for (auto& [bkey, b] : sum.backends) sum.listener.backends.push_back(std::move(b));
    out.push_back(std::move(sum.listener));
  }
  return out;
}

}  // namespace fulcrum::metrics
