// Load-balancing facade: one immutable Table per backend pool, built on the control thread and
// shared read-only by every worker, plus one mutable Cursor per worker and table.
//
// The module is pure: no I/O, clocks, threads, logging or exceptions of its own. Each scheduler
// lives in its own file (wrr, rr, wlc, maglev); this facade only dispatches to them.
//
// Host indexes are positions in the weights span given to Table::build. Weight 0 means "no new
// traffic": such a host is never picked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "balance/host_mask.h"

namespace fulcrum::balance {

enum class Scheduler : uint8_t {
  kWrr,  // smooth weighted round robin
  kRr,   // plain rotation over hosts with weight > 0
  kWlc,  // weighted least connections
  kSch,  // source hashing: Maglev over a hash of the source IP
  kTch,  // tuple hashing: Maglev over a hash of the 4-tuple
};

// "wrr", "rr", "wlc", "sch", "tch" (exact, lower case); nullopt for anything else.
std::optional<Scheduler> parse_scheduler(std::string_view name);
// Inverse of parse_scheduler.
std::string_view scheduler_name(Scheduler s);

inline constexpr uint32_t kNoHost = UINT32_MAX;

struct PickRequest {
  uint64_t key = 0;                       // flow hash: source IP (sch) or 4-tuple (tch)
  std::span<const uint32_t> active = {};  // active connections per host, index-aligned (wlc);
                                          // may be shorter or empty: missing entries count as 0
  const HostMask* skip = nullptr;         // hosts not to choose, may be null
};

// Immutable once built; share as shared_ptr<const Table>. Built on the control thread [control],
// read concurrently by any number of workers [any].
class Table {
 public:
  // Builds a table for `weights.size()` hosts. For kSch/kTch each host's Maglev permutation is
  // seeded by its index; prefer the host_ids overload so that removing a host moves few keys.
  // Never returns null.
  static std::shared_ptr<const Table> build(Scheduler s, std::span<const uint32_t> weights);
  // As above, but host i's Maglev permutation is seeded by host_ids[i], a stable identity such as
  // a hash of "addr:port". Hosts beyond host_ids.size() fall back to their index. Ignored by the
  // non-hashing schedulers.
  static std::shared_ptr<const Table> build(Scheduler s, std::span<const uint32_t> weights,
                                            std::span<const uint64_t> host_ids);

  Scheduler scheduler() const { return scheduler_; }
  size_t size() const { return weights_.size(); }
  // Weight of `host`; 0 for an index at or beyond size().
  uint32_t weight(uint32_t host) const { return host < weights_.size() ? weights_[host] : 0; }
  std::span<const uint32_t> weights() const { return weights_; }
  // Sum of all weights.
  uint64_t total_weight() const { return total_weight_; }
  // Number of hosts with weight > 0.
  size_t eligible() const { return eligible_; }
  // Maglev lookup table for kSch/kTch (slot -> host index, kNoHost when no host has weight > 0);
  // empty for other schedulers. Its length is a prime (maglev::table_size_for). Exposed for
  // simulators ("which backend would this flow hit") and golden tests.
  std::span<const uint32_t> maglev_lookup() const { return lookup_; }

 private:
  Table() = default;

  Scheduler scheduler_ = Scheduler::kWrr;
  std::vector<uint32_t> weights_;
  std::vector<uint32_t> lookup_;
  uint64_t total_weight_ = 0;
  size_t eligible_ = 0;
};

// Per-worker mutable state for one Table: wrr current weights, rr/wlc rotation. Never shared
// across threads. [worker]
class Cursor {
 public:
  // Allocates once, sized for `table`. `start` offsets the first rr/wlc position (modulo the host
  // count) so that workers can spread their first picks; it does not affect wrr or hashing.
  explicit Cursor(const Table& table, uint32_t start = 0);

  // Returns a host index in [0, table.size()) or kNoHost when no host is eligible. Hosts with
  // weight 0 and hosts in req.skip are never returned. Does not allocate while `table` has the
  // size the cursor was made for; given a table of another size it resets its state first.
  uint32_t pick(const Table& table, const PickRequest& req);

 private:
  std::vector<int64_t> current_;  // wrr current weight per host
  uint32_t next_ = 0;             // rr/wlc: index where the next scan starts
};

}  // namespace fulcrum::balance
