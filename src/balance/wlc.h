// Weighted least connections: the host minimising (active + 1) / weight wins, compared exactly by
// cross-multiplication. Among equal hosts the first found from a rotating start wins, so equal
// hosts share load. Pure. [worker]
#pragma once

#include <cstdint>
#include <span>

#include "balance/host_mask.h"

namespace fulcrum::balance::wlc {

// `active` holds active connections per host, index-aligned with `weights`; missing entries count
// as 0. Scans from `next` (wrapping), skipping weight-0 hosts and hosts in `skip` (may be null),
// and sets `next` just past the winner. Returns UINT32_MAX, leaving `next` alone, when no host is
// eligible.
uint32_t pick(std::span<const uint32_t> weights, std::span<const uint32_t> active, uint32_t& next,
              const HostMask* skip);

}  // namespace fulcrum::balance::wlc
