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

#define FLOG_DEBUG(...) ::fulcrum::base::log(::fulcrum::base::LogLevel::kDebug, __VA_ARGS__)
#define FLOG_INFO(...) ::fulcrum::base::log(::fulcrum::base::LogLevel::kInfo, __VA_ARGS__)
#define FLOG_WARN(...) ::fulcrum::base::log(::fulcrum::base::LogLevel::kWarn, __VA_ARGS__)
#define FLOG_ERROR(...) ::fulcrum::base::log(::fulcrum::base::LogLevel::kError, __VA_ARGS__)
