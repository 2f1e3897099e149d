// Monotonic time in milliseconds and nanoseconds, and wall-clock milliseconds. [any]
#pragma once

#include <cstdint>
#include <ctime>

namespace fulcrum::base {

inline int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
inline int64_t monotonic_ms() {
  return monotonic_ns() / 1000000;
}
// Wall-clock time (Unix epoch) in milliseconds: for timestamps shown to people, never for
// deadlines.
inline int64_t wall_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace fulcrum::base
