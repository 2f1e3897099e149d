// Durations as users write them: a number of seconds (fractions allowed: 0.5) or a number with a
// unit (500ms, 2s, 1m, 1h). Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace fulcrum::base {

// Milliseconds for `text`, or nullopt when it is not a valid, non-negative duration.
std::optional<int64_t> parse_duration_ms(std::string_view text);

}  // namespace fulcrum::base
