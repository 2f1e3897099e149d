// Stable 64-bit hashing for consistent hashing and table lookups. Pure. The output is part of the
// product's behaviour (which backend a client IP maps to), so tests pin it: never change it
// without a migration note.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fulcrum::base {

// Finaliser with full avalanche (every input bit affects every output bit).
constexpr uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Hash of `len` bytes at `data` under `seed`. Deterministic across platforms of equal endianness.
uint64_t hash_bytes(const void* data, size_t len, uint64_t seed = 0);
inline uint64_t hash_string(std::string_view s, uint64_t seed = 0) {
  return hash_bytes(s.data(), s.size(), seed);
}

}  // namespace fulcrum::base
