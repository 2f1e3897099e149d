#include "base/duration.h"

#include <gtest/gtest.h>

namespace fulcrum::base {
namespace {

TEST(Duration, AcceptsSecondsAndUnits) {
  EXPECT_EQ(parse_duration_ms("5"), 5000);
  EXPECT_EQ(parse_duration_ms("0.5"), 500);
  EXPECT_EQ(parse_duration_ms("500ms"), 500);
  EXPECT_EQ(parse_duration_ms("2s"), 2000);
  EXPECT_EQ(parse_duration_ms("1m"), 60000);
  EXPECT_EQ(parse_duration_ms("1h"), 3600000);
  EXPECT_EQ(parse_duration_ms("1.5m"), 90000);
}

TEST(Duration, RefusesGarbage) {
  for (const char* bad : {"", "s", "-1", "1x", "1 s", "..1", "1..2", "1e3", "abc", "5sec", "ms"}) {
    EXPECT_FALSE(parse_duration_ms(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace fulcrum::base
