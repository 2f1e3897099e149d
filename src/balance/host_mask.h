// HostMask: a reusable bit set of host indexes that a pick must not return (already tried,
// ejected by health checks or outlier detection). Part of the balancer facade (balancer.h).
// Not synchronised: one owner at a time, normally a worker thread. [worker]
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fulcrum::balance {

class HostMask {
 public:
  // Clears every bit and sizes the mask for `hosts` hosts. Allocates only when `hosts` exceeds
  // every size used before, so a mask reused across picks does not allocate.
  void reset(size_t hosts);
  // Marks `host`. Idempotent. A host at or beyond size() grows the mask to host + 1 (allocating if
  // needed) so a skip is never lost.
  void set(uint32_t host);
  // True when `host` is marked. Hosts at or beyond size() are never marked.
  bool test(uint32_t host) const {
    const size_t word = host / kBitsPerWord;
    return word < words_.size() && ((words_[word] >> (host % kBitsPerWord)) & 1U) != 0;
  }
  // Number of marked hosts.
  size_t count() const { return count_; }
  // Number of hosts the mask covers.
  size_t size() const { return size_; }

 private:
  static constexpr size_t kBitsPerWord = 64;
  std::vector<uint64_t> words_;
  size_t size_ = 0;
  size_t count_ = 0;
};

}  // namespace fulcrum::balance
