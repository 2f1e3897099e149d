#include "balance/rr.h"

namespace fulcrum::balance::rr {

uint32_t pick(std::span<const uint32_t> weights, uint32_t& next, const HostMask* skip) {
  const size_t n = weights.size();
  if (n == 0) return UINT32_MAX;
  size_t i = next < n ? next : next % n;
  for (size_t tried = 0; tried < n; ++tried, i = (i + 1 == n) ? 0 : i + 1) {
    const auto host = static_cast<uint32_t>(i);
    if (weights[i] == 0 || (skip != nullptr && skip->test(host))) continue;
    next = (i + 1 == n) ? 0 : host + 1;
    return host;
  }
  return UINT32_MAX;
}

}  // namespace fulcrum::balance::rr
