// Logging: one line per event to stderr, "time level message". [any] thread-safe.
// The data plane logs only rare events (a backend failing, a listener error), never per byte.
#pragma once

#include <fmt/core.h>

#include <string_view>

namespace fulcrum::base {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
bool parse_log_level(std::string_view name, LogLevel* out);
void log_write(LogLevel level, std::string_view message);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log_level()) return;
  log_write(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace fulcrum::base

// Arguments are evaluated only when the level is enabled (a debug line on a hot path costs one
// relaxed load when debug logging is off).
#define FLOG_AT_(level, ...)                       \
  do {                                             \
    if ((level) >= ::fulcrum::base::log_level()) { \
      ::fulcrum::base::log((level), __VA_ARGS__);  \
    }                                              \
  } while (0)
#define FLOG_DEBUG(...) FLOG_AT_(::fulcrum::base::LogLevel::kDebug, __VA_ARGS__)
#define FLOG_INFO(...) FLOG_AT_(::fulcrum::base::LogLevel::kInfo, __VA_ARGS__)
#define FLOG_WARN(...) FLOG_AT_(::fulcrum::base::LogLevel::kWarn, __VA_ARGS__)
#define FLOG_ERROR(...) FLOG_AT_(::fulcrum::base::LogLevel::kError, __VA_ARGS__)
