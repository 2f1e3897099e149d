#include "balance/host_mask.h"

namespace fulcrum::balance {

void HostMask::reset(size_t hosts) {
  words_.assign((hosts + kBitsPerWord - 1) / kBitsPerWord, 0);
  size_ = hosts;
  count_ = 0;
}

void HostMask::set(uint32_t host) {
  const size_t word = host / kBitsPerWord;
  if (host >= size_) {
    size_ = static_cast<size_t>(host) + 1;
    if (word >= words_.size()) words_.resize(word + 1, 0);
  }
  const uint64_t bit = uint64_t{1} << (host % kBitsPerWord);
  if ((words_[word] & bit) == 0) {
    words_[word] |= bit;
    ++count_;
  }
}

}  // namespace fulcrum::balance
