#include "base/hash.h"

#include <cstring>

namespace fulcrum::base {

uint64_t hash_bytes(const void* data, size_t len, uint64_t seed) {
  // Word-at-a-time multiply-xorshift; the length enters the state so "a" and "a\0" differ.
  constexpr uint64_t kStep = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = mix64(seed + kStep * (len + 1));
  while (len >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    h = mix64(h ^ mix64(word + kStep));
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    uint64_t word = 0;
    std::memcpy(&word, p, len);
    h = mix64(h ^ mix64(word + kStep + len));
  }
  return h;
}

}  // namespace fulcrum::base
