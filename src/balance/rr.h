// Plain round robin: rotation over hosts with weight > 0, ignoring the size of the weight. Pure.
// [worker]
#pragma once

#include <cstdint>
#include <span>

#include "balance/host_mask.h"

namespace fulcrum::balance::rr {

// Returns the first host at or after `next` (wrapping) with weight > 0 that is not in `skip`
// (may be null), and sets `next` just past it. Returns UINT32_MAX, leaving `next` alone, when no
// host is eligible.
uint32_t pick(std::span<const uint32_t> weights, uint32_t& next, const HostMask* skip);

}  // namespace fulcrum::balance::rr
