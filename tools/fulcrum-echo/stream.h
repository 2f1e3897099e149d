// The deterministic byte stream served by `SOURCE <n> [seed]` and `/bytes/<n>`.
//
// Definition (documented in README.md so tests can reproduce it):
//   x = seed (a seed of 0 is replaced by 1)
//   for each 8-byte word: x ^= x << 13; x ^= x >> 7; x ^= x << 17  (all mod 2^64)
//                         emit x as 8 bytes, little-endian
// The stream for n bytes is the first n bytes of that sequence.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace echo {

class ByteStream {
 public:
  explicit ByteStream(uint64_t seed = 1) : x_(seed == 0 ? 1 : seed) {}

  // Writes `words` 8-byte words (8 * words bytes) to `out`.
  void Fill(char* out, size_t words) {
    uint64_t x = x_;
    for (size_t i = 0; i < words; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(out + 8 * i, &x, 8);
      } else {
        for (size_t b = 0; b < 8; ++b) out[8 * i + b] = static_cast<char>((x >> (8 * b)) & 0xff);
      }
    }
    x_ = x;
  }

 private:
  uint64_t x_;
};

}  // namespace echo
