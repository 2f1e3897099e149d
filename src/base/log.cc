#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace fulcrum::base {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_write_mutex;  // serialises whole lines; logging is never on a per-request path
constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void set_log_level(LogLevel level) {
  g_level.store(static_cast<int>(level));
}
LogLevel log_level() {
  return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed));
}

bool parse_log_level(std::string_view name, LogLevel* out) {
  for (int i = 0; i < 4; ++i) {
    if (name == kNames[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void log_write(LogLevel level, std::string_view message) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm parts{};
  gmtime_r(&ts.tv_sec, &parts);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &parts);
  std::lock_guard lock(g_write_mutex);
  std::fprintf(stderr, "%s.%03ldZ %-5s %.*s\n", stamp, ts.tv_nsec / 1000000,
               kNames[static_cast<int>(level)], static_cast<int>(message.size()), message.data());
}

}  // namespace fulcrum::base
