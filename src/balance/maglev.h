// Weighted Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software
// Network Load Balancer", NSDI 2016, section 3.4). Each host walks its own permutation of the
// lookup table's slots, seeded by a stable host identity, and claims the next free slot on its
// turns; a host of weight w gets w turns for every max-weight turns of the heaviest host, so slot
// counts are proportional to weight and weight 0 gets none. Removing a host moves little more than
// that host's own keys. A host whose share of the slots (table_size * weight / total weight) is
// below one gets no slot and no traffic. Pure.
//
// The output (which host a key maps to) is product behaviour: sticky clients move when it changes.
// Golden tests pin it; change the seeds, sizes or fill order only on purpose, with a release note.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "balance/host_mask.h"

namespace fulcrum::balance::maglev {

// Lookup table sizes, all prime so that every skip in [1, size) walks every slot. Each size keeps
// at least ~100 slots per host (65537 / 650, 655373 / 6553), which bounds the imbalance between
// equal hosts to about 1 %.
inline constexpr uint32_t kSmallTableSize = 65537;   // up to 650 hosts
inline constexpr uint32_t kLargeTableSize = 655373;  // up to 6553 hosts
inline constexpr uint32_t kHugeTableSize = 6553733;  // beyond
inline constexpr size_t kSmallTableMaxHosts = 650;
inline constexpr size_t kLargeTableMaxHosts = 6553;

// Re-probes with a rehashed key before falling back to a scan when the mapped host is skipped.
// 16 misses in a row need more than 16 independent hits on skipped slots: with half the hosts
// skipped that is 1 in 65536.
inline constexpr uint32_t kReprobes = 16;

// Lookup table size for a pool of `hosts` hosts (counting weight-0 hosts, so draining a host
// never changes the size and remaps every key).
uint32_t table_size_for(size_t hosts);

// [control] Builds the lookup table: `table_size` slots (a prime, at least 2), each holding the
// index of a host with weight > 0, or all UINT32_MAX when no host has weight > 0. Host i's
// permutation is seeded by host_ids[i], or by i when host_ids is shorter than weights.
// Cost ~ table_size * log(table_size) probes (tens of ms for 655373 slots), plus up to
// table_size * log2(hosts) for ordering turns when weights are very unequal.
std::vector<uint32_t> build(std::span<const uint32_t> weights, std::span<const uint64_t> host_ids,
                            uint32_t table_size);

// [any] Host for `key`: lookup[key % size]. When that host is in `skip` (may be null), re-probes
// up to kReprobes times with mix64(key + attempt), then scans hosts from key % hosts for the first
// one with weight > 0 not in `skip`, so a retry goes to the same alternative every time. Returns
// UINT32_MAX when no host is eligible.
uint32_t pick(std::span<const uint32_t> lookup, std::span<const uint32_t> weights, uint64_t key,
              const HostMask* skip);

}  // namespace fulcrum::balance::maglev
