// Plain counters that data-plane objects own and the metrics module reads: per-listener totals,
// per-backend totals and fixed-bucket latency histograms. Every object here has one writer, the
// worker that owns it; nothing is atomic or locked. Others read them only by asking that worker
// (a posted message) to copy them. [worker] unless stated otherwise.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace fulcrum::base {

// Upper bounds of the latency buckets, log-spaced from 0.5 ms to 10 s, in nanoseconds; one more
// bucket (+Inf) holds the rest. Prometheus buckets are "less or equal": 1 ms exactly counts in
// the 1 ms bucket. These are API (they become the `le` labels): change them only with the docs.
inline constexpr size_t kLatencyBounds = 14;
inline constexpr std::array<int64_t, kLatencyBounds> kLatencyBoundsNs = {
    500'000,       1'000'000,     2'500'000,     5'000'000,     10'000'000,
    25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
inline constexpr size_t kLatencyBuckets = kLatencyBounds + 1;

// The bucket of a duration: the first whose bound is >= ns, or kLatencyBounds (+Inf). Most
// durations are small, so a forward scan stops after a few compares. [any]
constexpr size_t latency_bucket(int64_t ns) {
  size_t i = 0;
  while (i < kLatencyBounds && ns > kLatencyBoundsNs[i]) ++i;
  return i;
}

struct LatencyHistogram {
  std::array<uint64_t, kLatencyBuckets> buckets{};  // per bucket, not cumulative
  uint64_t sum_ns = 0;

  // Counts one duration; a negative one (a clock read out of order) counts as 0.
  void observe(int64_t ns) {
    if (ns < 0) ns = 0;
    ++buckets[latency_bucket(ns)];
    sum_ns += static_cast<uint64_t>(ns);
  }
  uint64_t count() const;
  void add(const LatencyHistogram& other);
};

// What one listener saw on one worker. Carried across generations while the listener's key
// (transport and address) stays.
struct ListenerCounters {
  uint64_t connections = 0;  // client connections accepted
  uint64_t active = 0;       // client connections open now
  uint64_t dropped = 0;      // closed without a backend serving them (none available, draining,
                             // refused by the ACL)
  uint64_t bytes_in = 0;     // client -> backend (HTTP: bytes read from the client)
  uint64_t bytes_out = 0;    // backend -> client (HTTP: bytes written to the client)
  uint64_t packets_in = 0;   // UDP listeners only: datagrams from clients
  uint64_t packets_out = 0;  // UDP listeners only: datagrams to clients
  uint64_t acl_denied = 0;   // refused by the listener's ACL (also in `dropped`); UDP: datagrams
  uint64_t flow_table_full = 0;  // UDP listeners only: new clients dropped, the table was full
  void add(const ListenerCounters& other);
};

// TLS handshakes of one HTTPS listener on one worker. The enums index the arrays; their label
// values (docs/metrics.md) are in metrics/names.h. Fixed sets: no free text from the network.
enum class TlsFailure : uint8_t {
  kNoSharedCipher,     // no cipher suite (or signature algorithm, group) both sides support
  kBadCertificate,     // the client refused Fulcrum's certificate (it sent a certificate alert)
  kClientCertificate,  // mutual TLS: the client's certificate is missing or not verified
  kProtocol,           // no common version, a malformed or unexpected message, another alert
  kTimeout,            // not complete within the listener's idle_timeout
  kClosed,             // the client closed or reset the connection before completing
  kOther,              // closed by Fulcrum (drain, shutdown), out of memory, anything else
};
inline constexpr size_t kTlsFailures = 7;
enum class TlsVersion : uint8_t { kTls1_0, kTls1_1, kTls1_2, kTls1_3 };
inline constexpr size_t kTlsVersions = 4;
enum class TlsAlpn : uint8_t { kH2, kHttp11, kNone };  // the server offers only h2 and http/1.1
inline constexpr size_t kTlsAlpns = 3;

struct TlsCounters {
  uint64_t full = 0;                              // completed without resumption
  uint64_t resumed = 0;                           // completed by resuming a session (ticket)
  std::array<uint64_t, kTlsFailures> failures{};  // by TlsFailure
  std::array<uint64_t, kTlsVersions> versions{};  // completed, by TlsVersion
  std::array<uint64_t, kTlsAlpns> alpn{};         // completed, by TlsAlpn
  uint64_t sni_unmatched = 0;  // ClientHellos naming a server no certificate covers
  void count_failure(TlsFailure f) { ++failures[static_cast<size_t>(f)]; }
  uint64_t failed() const;  // the sum of failures
  void add(const TlsCounters& other);
};

// What one listener saw of one backend of one server group on one worker. Touched when a backend
// connection (TCP) or request (HTTP) starts or ends, never per byte.
struct BackendCounters {
  std::string group;                    // server group name
  std::string backend;                  // "address:port"
  uint64_t connections = 0;             // connections opened to it (attempts, failed ones included)
  uint64_t active = 0;                  // TCP: connections open now; HTTP: requests in flight
  uint64_t connect_failures = 0;        // refused, timed out, unreachable
  uint64_t responses_by_class[6] = {};  // HTTP: [1] 1xx ... [5] 5xx answered by the backend
  void add(const BackendCounters& other);
};

// The BackendCounters of one listener, keyed by (server group, backend id) so that a backend keeps
// its counters across generations while it stays in the group. Each listener generation holds
// shared_ptrs to the entries of its backends: sessions count into them through that pointer (no
// lookup per connection), and an entry dropped from the table lives on until its last holder ends.
class BackendCounterTable {
 public:
  // The entry of `backend_id` in `group` (created when new), marked as used by the generation
  // being built.
  std::shared_ptr<BackendCounters> use(const std::string& group, uint64_t backend_id,
                                       std::string_view backend_name);
  // Ends a generation: entries not used since the previous sweep leave the table (and the
  // report); sessions that still hold them go on counting into them unreported.
  void sweep();
  size_t size() const { return entries_.size(); }
  // Calls f(const BackendCounters&) for every entry, ordered by group then backend id.
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [key, entry] : entries_)
      f(static_cast<const BackendCounters&>(*entry.counters));
  }

 private:
  struct Entry {
    std::shared_ptr<BackendCounters> counters;
    uint64_t used_in = 0;  // the sweep round that last used it
  };
  std::map<std::pair<std::string, uint64_t>, Entry> entries_;
  uint64_t round_ = 1;
};

}  // namespace fulcrum::base
