#include "base/result.h"

#include <gtest/gtest.h>

namespace fulcrum::base {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Error::config("x.y", "must be positive");
  return v;
}

TEST(Result, CarriesValueOrError) {
  auto ok = parse_positive(3);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  auto bad = parse_positive(0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().source, ErrorSource::kConfig);
  EXPECT_EQ(bad.error().to_string(), "x.y: must be positive");
}

TEST(Result, VoidStatus) {
  Status s;
  EXPECT_TRUE(s.ok());
  Status e = Error::internal("boom");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.error().to_string(), "boom");
}

}  // namespace
}  // namespace fulcrum::base
