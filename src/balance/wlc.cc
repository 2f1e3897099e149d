#include "balance/wlc.h"

namespace fulcrum::balance::wlc {
namespace {

struct Best {
  uint32_t host = UINT32_MAX;
  uint64_t load = 0;    // active + 1 of the best host
  uint64_t weight = 1;  // weight of the best host
};

// Scans hosts [begin, end), keeping the first strict minimum of load / weight in `best`.
// `skipped(host)` excludes hosts besides those of weight 0; a template so that the common no-mask
// case compiles without the mask test.
template <class Skipped>
void scan(std::span<const uint32_t> weights, std::span<const uint32_t> active, size_t begin,
          size_t end, Skipped skipped, Best& best) {
  for (size_t i = begin; i < end; ++i) {
    const auto host = static_cast<uint32_t>(i);
    const uint64_t w = weights[i];
    if (w == 0 || skipped(host)) continue;
    const uint64_t load = (i < active.size() ? uint64_t{active[i]} : 0) + 1;
    // load / w < best.load / best.weight. Loads are at most 2^32 and weights below 2^32, so both
    // products fit in 64 bits.
    if (best.host == UINT32_MAX || load * best.weight < best.load * w) best = Best{host, load, w};
  }
}

// Scans every host starting at `start` and wrapping, so ties go to the first host from `start`.
template <class Skipped>
uint32_t scan_from(std::span<const uint32_t> weights, std::span<const uint32_t> active,
                   size_t start, Skipped skipped) {
  Best best;
  scan(weights, active, start, weights.size(), skipped, best);
  scan(weights, active, 0, start, skipped, best);
  return best.host;
}

}  // namespace

uint32_t pick(std::span<const uint32_t> weights, std::span<const uint32_t> active, uint32_t& next,
              const HostMask* skip) {
  const size_t n = weights.size();
  if (n == 0) return UINT32_MAX;
  const size_t start = next < n ? next : next % n;
  const uint32_t best =
      skip == nullptr || skip->count() == 0
          ? scan_from(weights, active, start, [](uint32_t) { return false; })
          : scan_from(weights, active, start, [skip](uint32_t host) { return skip->test(host); });
  if (best != UINT32_MAX) next = (static_cast<size_t>(best) + 1 == n) ? 0 : best + 1;
  return best;
}

}  // namespace fulcrum::balance::wlc
