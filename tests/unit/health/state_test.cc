#include "health/state.h"

#include <gtest/gtest.h>

namespace fulcrum::health {
namespace {

using snapshot::Health;

TEST(BackendHealth, StartsUncheckedAndOneSuccessMakesItHealthy) {
  BackendHealth h;
  EXPECT_EQ(h.status(), Health::kUnchecked);
  EXPECT_TRUE(h.on_check(true, 100, {3, 3}));
  EXPECT_EQ(h.status(), Health::kHealthy);
  EXPECT_EQ(h.changed_ms(), 100);
  EXPECT_FALSE(h.on_check(true, 200, {3, 3}));
}

TEST(BackendHealth, UnhealthyAfterThresholdFailuresInARow) {
  BackendHealth h;
  h.on_check(true, 0, {2, 3});
  EXPECT_FALSE(h.on_check(false, 1, {2, 3}, "refused"));
  EXPECT_FALSE(h.on_check(false, 2, {2, 3}, "refused"));
  EXPECT_TRUE(h.on_check(false, 3, {2, 3}, "refused"));
  EXPECT_EQ(h.status(), Health::kUnhealthy);
  EXPECT_EQ(h.last_error(), "refused");
  EXPECT_EQ(h.changed_ms(), 3);
}

TEST(BackendHealth, ASuccessBreaksTheFailureStreak) {
  BackendHealth h;
  h.on_check(true, 0, {2, 2});
  h.on_check(false, 1, {2, 2});
  h.on_check(true, 2, {2, 2});
  EXPECT_FALSE(h.on_check(false, 3, {2, 2}));
  EXPECT_EQ(h.status(), Health::kHealthy);
}

TEST(BackendHealth, UncheckedBackendThatNeverAnswersBecomesUnhealthy) {
  BackendHealth h;
  EXPECT_FALSE(h.on_check(false, 1, {3, 2}, "timeout"));
  EXPECT_TRUE(h.on_check(false, 2, {3, 2}, "timeout"));
  EXPECT_EQ(h.status(), Health::kUnhealthy);
}

TEST(BackendHealth, ReturnsAfterHealthyThresholdSuccessesInARow) {
  BackendHealth h;
  h.on_passive_failure(0, "connect: refused");
  EXPECT_FALSE(h.on_check(true, 1, {3, 3}));
  EXPECT_FALSE(h.on_check(true, 2, {3, 3}));
  EXPECT_TRUE(h.on_check(true, 3, {3, 3}));
  EXPECT_EQ(h.status(), Health::kHealthy);
}

TEST(BackendHealth, FlappingFollowsTheThresholds) {
  BackendHealth h;
  h.on_passive_failure(0, "x");
  // ok, ok, fail, ok, ok, ok: only the last run of three brings it back.
  EXPECT_FALSE(h.on_check(true, 1, {3, 3}));
  EXPECT_FALSE(h.on_check(true, 2, {3, 3}));
  EXPECT_FALSE(h.on_check(false, 3, {3, 3}));
  EXPECT_FALSE(h.on_check(true, 4, {3, 3}));
  EXPECT_FALSE(h.on_check(true, 5, {3, 3}));
  EXPECT_TRUE(h.on_check(true, 6, {3, 3}));
}

TEST(BackendHealth, PassiveFailureEjectsAtOnceAndResetsTheWayBack) {
  BackendHealth h;
  h.on_check(true, 0, {2, 3});
  EXPECT_TRUE(h.on_passive_failure(5, "connect: refused"));
  EXPECT_EQ(h.status(), Health::kUnhealthy);
  EXPECT_EQ(h.last_error(), "connect: refused");
  EXPECT_FALSE(h.on_check(true, 6, {2, 3}));
  EXPECT_FALSE(h.on_passive_failure(7, "again"));  // already out: no change, streak reset
  EXPECT_FALSE(h.on_check(true, 8, {2, 3}));
  EXPECT_TRUE(h.on_check(true, 9, {2, 3}));
}

}  // namespace
}  // namespace fulcrum::health
