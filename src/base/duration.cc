#include "base/duration.h"

#include <cmath>
#include <cstdlib>
#include <string>

namespace fulcrum::base {

std::optional<int64_t> parse_duration_ms(std::string_view text) {
  if (text.empty() || text.size() > 32) return std::nullopt;
  size_t i = 0;
  bool digits = false, dot = false;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || (text[i] == '.' && !dot))) {
    if (text[i] == '.')
      dot = true;
    else
      digits = true;
    ++i;
  }
  if (!digits) return std::nullopt;
  std::string number(text.substr(0, i));
  std::string_view unit = text.substr(i);
  double scale_ms = 0;
  if (unit.empty() || unit == "s")
    scale_ms = 1000;
  else if (unit == "ms")
    scale_ms = 1;
  else if (unit == "m")
    scale_ms = 60000;
  else if (unit == "h")
    scale_ms = 3600000;
  else
    return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(value) || value < 0) {
    return std::nullopt;
  }
  double ms = value * scale_ms;
  if (ms > 1e15) return std::nullopt;
  return static_cast<int64_t>(std::llround(ms));
}

}  // namespace fulcrum::base
