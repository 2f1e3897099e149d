#include "base/counters.h"

namespace fulcrum::base {

static_assert(latency_bucket(0) == 0);
static_assert(latency_bucket(500'000) == 0, "bounds are inclusive (Prometheus le)");
static_assert(latency_bucket(500'001) == 1);
static_assert(latency_bucket(10'000'000'001) == kLatencyBounds, "+Inf");

uint64_t LatencyHistogram::count() const {
  uint64_t n = 0;
  for (uint64_t b : buckets) n += b;
  return n;
}

void LatencyHistogram::add(const LatencyHistogram& other) {
  for (size_t i = 0; i < kLatencyBuckets; ++i) buckets[i] += other.buckets[i];
  sum_ns += other.sum_ns;
}

void ListenerCounters::add(const ListenerCounters& other) {
  connections += other.connections;
  active += other.active;
  dropped += other.dropped;
  bytes_in += other.bytes_in;
  bytes_out += other.bytes_out;
  packets_in += other.packets_in;
  packets_out += other.packets_out;
  flow_table_full += other.flow_table_full;
  acl_denied += other.acl_denied;
}

void BackendCounters::add(const BackendCounters& other) {
  connections += other.connections;
  active += other.active;
  connect_failures += other.connect_failures;
  for (size_t i = 0; i < 6; ++i) responses_by_class[i] += other.responses_by_class[i];
}

std::shared_ptr<BackendCounters> BackendCounterTable::use(const std::string& group,
                                                          uint64_t backend_id,
                                                          std::string_view backend_name) {
  Entry& e = entries_[{group, backend_id}];
  if (!e.counters) {
    e.counters = std::make_shared<BackendCounters>();
    e.counters->group = group;
    e.counters->backend = std::string(backend_name);
  }
  e.used_in = round_;
  return e.counters;
}

void BackendCounterTable::sweep() {
  std::erase_if(entries_, [this](const auto& kv) { return kv.second.used_in != round_; });
  ++round_;
}

uint64_t TlsCounters::failed() const {
  uint64_t n = 0;
  for (uint64_t f : failures) n += f;
  return n;
}

void TlsCounters::add(const TlsCounters& other) {
  full += other.full;
  resumed += other.resumed;
  for (size_t i = 0; i < failures.size(); ++i) failures[i] += other.failures[i];
  for (size_t i = 0; i < versions.size(); ++i) versions[i] += other.versions[i];
  for (size_t i = 0; i < alpn.size(); ++i) alpn[i] += other.alpn[i];
  sni_unmatched += other.sni_unmatched;
}

}  // namespace fulcrum::base
