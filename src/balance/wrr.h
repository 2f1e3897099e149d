// Smooth weighted round robin. Every round each eligible host gains its weight, the host with the
// largest running total wins and pays back the round's total weight; this interleaves hosts
// evenly (weights {5,1,1} give a a b a c a a) instead of sending bursts. Pure. [worker]
#pragma once

#include <cstdint>
#include <span>

#include "balance/host_mask.h"

namespace fulcrum::balance::wrr {

// Picks a host and updates `current` (one running total per host, all 0 initially; same length
// as `weights`). Hosts with weight 0 or set in `skip` (may be null) sit the round out and keep
// their running total. Ties go to the lowest index. Returns UINT32_MAX when no host is eligible.
uint32_t pick(std::span<const uint32_t> weights, std::span<int64_t> current, const HostMask* skip);

}  // namespace fulcrum::balance::wrr
