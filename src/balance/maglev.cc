#include "balance/maglev.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "base/hash.h"

namespace fulcrum::balance::maglev {
namespace {

constexpr uint32_t kEmpty = UINT32_MAX;
// Seeds of the two hashes of a host identity (offset and skip in the paper). Arbitrary but pinned.
constexpr uint64_t kOffsetSeed = 0x6d61676c65762d6fULL;  // "maglev-o"
constexpr uint64_t kSkipSeed = 0x6d61676c65762d73ULL;    // "maglev-s"

// The lookup table being filled and where each host's permutation stands.
class Filler {
 public:
  Filler(std::span<const uint64_t> host_ids, size_t hosts, uint32_t table_size)
      : lookup_(table_size, kEmpty), walks_(hosts) {
    for (size_t i = 0; i < hosts; ++i) {
      const uint64_t id = i < host_ids.size() ? host_ids[i] : uint64_t{i};
      walks_[i].pos =
          static_cast<uint32_t>(base::hash_bytes(&id, sizeof id, kOffsetSeed) % table_size);
      walks_[i].skip =
          static_cast<uint32_t>(base::hash_bytes(&id, sizeof id, kSkipSeed) % (table_size - 1)) + 1;
    }
  }

  // Gives `host` the next free slot of its permutation. Returns true once every slot is taken.
  bool take_turn(uint32_t host) {
    const auto size = static_cast<uint32_t>(lookup_.size());
    Walk& w = walks_[host];
    uint32_t pos = w.pos;
    while (lookup_[pos] != kEmpty) {
      pos += w.skip;
      if (pos >= size) pos -= size;
    }
    lookup_[pos] = host;
    pos += w.skip;
    w.pos = pos >= size ? pos - size : pos;
    return ++filled_ == size;
  }

  std::vector<uint32_t> take() { return std::move(lookup_); }

 private:
  struct Walk {
    uint32_t pos = 0;   // next slot to try
    uint32_t skip = 1;  // stride of the permutation, in [1, table_size)
  };
  std::vector<uint32_t> lookup_;
  std::vector<Walk> walks_;
  uint32_t filled_ = 0;
};

// Fill order, shared by both fill functions below (they must produce the same table): host i of
// weight w takes its k-th turn in round ceil(k * max_weight / w), so the heaviest hosts take a turn
// every round and lighter ones proportionally fewer; within a round lower indexes go first. The
// heaviest host fills a slot every round, so no more rounds than slots are ever needed.

// Visits every host every round: cheapest when weights are close (cost ~ slots * max / mean).
void fill_by_rounds(Filler& filler, std::span<const uint32_t> weights, uint32_t max_weight) {
  std::vector<uint64_t> credit(weights.size(), 0);
  for (;;) {
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] == 0) continue;
      credit[i] += weights[i];
      if (credit[i] < max_weight) continue;
      credit[i] -= max_weight;
      if (filler.take_turn(static_cast<uint32_t>(i))) return;
    }
  }
}

// Visits turns in order through a min-heap of (round << 32 | host): cost ~ slots * log(hosts)
// whatever the weights.
void fill_by_heap(Filler& filler, std::span<const uint32_t> weights, uint32_t max_weight,
                  uint64_t table_size) {
  // Round of a host's turn-th turn; turn <= table_size + 1 < 2^24, so the product fits.
  const auto round_of = [max_weight](uint64_t turn, uint32_t weight) {
    return (turn * max_weight + weight - 1) / weight;
  };
  std::vector<uint64_t> turns(weights.size(), 0);
  std::vector<uint64_t> heap;
  heap.reserve(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] != 0) heap.push_back(round_of(1, weights[i]) << 32 | uint64_t{i});
  }
  const auto later = std::greater<uint64_t>();
  std::make_heap(heap.begin(), heap.end(), later);
  for (;;) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const auto host = static_cast<uint32_t>(heap.back() & UINT32_MAX);
    heap.pop_back();
    if (filler.take_turn(host)) return;
    const uint64_t round = round_of(++turns[host] + 1, weights[host]);
    if (round <= table_size) {  // later turns are never reached
      heap.push_back(round << 32 | uint64_t{host});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  }
}

}  // namespace

uint32_t table_size_for(size_t hosts) {
  if (hosts <= kSmallTableMaxHosts) return kSmallTableSize;
  if (hosts <= kLargeTableMaxHosts) return kLargeTableSize;
  return kHugeTableSize;
}

std::vector<uint32_t> build(std::span<const uint32_t> weights, std::span<const uint64_t> host_ids,
                            uint32_t table_size) {
  uint64_t max_weight = 0;
  uint64_t total_weight = 0;
  size_t eligible = 0;
  for (uint32_t w : weights) {
    max_weight = w > max_weight ? w : max_weight;
    total_weight += w;
    eligible += w != 0 ? 1 : 0;
  }
  if (max_weight == 0 || table_size < 2) return std::vector<uint32_t>(table_size, kEmpty);

  Filler filler(host_ids, weights.size(), table_size);
  // Both give the same table. A round visit is cheap and a heap turn dear: measured with 100 to
  // 1000 hosts they break even at max/mean weight between 30 and 60, hence 32.
  if (max_weight * eligible / 32 <= total_weight) {
    fill_by_rounds(filler, weights, static_cast<uint32_t>(max_weight));
  } else {
    fill_by_heap(filler, weights, static_cast<uint32_t>(max_weight), table_size);
  }
  return filler.take();
}

uint32_t pick(std::span<const uint32_t> lookup, std::span<const uint32_t> weights, uint64_t key,
              const HostMask* skip) {
  const size_t size = lookup.size();
  if (size == 0) return kEmpty;
  const uint32_t host = lookup[key % size];
  if (skip == nullptr || skip->count() == 0 || host == kEmpty || !skip->test(host)) return host;

  for (uint32_t attempt = 1; attempt <= kReprobes; ++attempt) {
    const uint32_t alt = lookup[base::mix64(key + attempt) % size];
    if (!skip->test(alt)) return alt;
  }
  const size_t n = weights.size();
  if (n == 0) return kEmpty;
  size_t i = key % n;
  for (size_t tried = 0; tried < n; ++tried, i = (i + 1 == n) ? 0 : i + 1) {
    const auto h = static_cast<uint32_t>(i);
    if (weights[i] != 0 && !skip->test(h)) return h;
  }
  return kEmpty;
}

}  // namespace fulcrum::balance::maglev
