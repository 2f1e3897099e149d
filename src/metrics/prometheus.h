// Renders a metrics Report as Prometheus text exposition format 0.0.4: one "# HELP" and one
// "# TYPE" line per family (families without series are left out), series ordered by label
// values, label values escaped. Pure. [any]
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "metrics/sample.h"

namespace fulcrum::metrics {

// The version fulcrum_build_info reports (the project version CMake knows).
std::string_view build_version();

std::string render_prometheus(const Report& report);

// A label value as the text format wants it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);
// Nanoseconds as seconds in decimal, exact and without trailing zeros ("0.0005", "2.5", "10").
std::string format_seconds(uint64_t ns);

}  // namespace fulcrum::metrics
