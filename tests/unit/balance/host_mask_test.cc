#include "balance/host_mask.h"

#include <gtest/gtest.h>

namespace fulcrum::balance {
namespace {

TEST(HostMask, StartsEmpty) {
  HostMask mask;
  EXPECT_EQ(mask.size(), 0u);
  EXPECT_EQ(mask.count(), 0u);
  EXPECT_FALSE(mask.test(0));
  EXPECT_FALSE(mask.test(UINT32_MAX));
}

TEST(HostMask, SetTestCount) {
  HostMask mask;
  mask.reset(130);
  EXPECT_EQ(mask.size(), 130u);
  mask.set(0);
  mask.set(63);
  mask.set(64);
  mask.set(129);
  mask.set(64);  // idempotent
  EXPECT_EQ(mask.count(), 4u);
  for (uint32_t h = 0; h < 130; ++h) {
    EXPECT_EQ(mask.test(h), h == 0 || h == 63 || h == 64 || h == 129) << h;
  }
  EXPECT_FALSE(mask.test(130));
  EXPECT_FALSE(mask.test(100000));
}

TEST(HostMask, ResetClearsAndResizes) {
  HostMask mask;
  mask.reset(10);
  mask.set(3);
  mask.reset(5);
  EXPECT_EQ(mask.size(), 5u);
  EXPECT_EQ(mask.count(), 0u);
  EXPECT_FALSE(mask.test(3));
  mask.reset(200);
  EXPECT_EQ(mask.size(), 200u);
  EXPECT_EQ(mask.count(), 0u);
  for (uint32_t h = 0; h < 200; ++h) EXPECT_FALSE(mask.test(h));
}

TEST(HostMask, SetBeyondSizeGrows) {
  HostMask mask;
  mask.reset(4);
  mask.set(70);
  EXPECT_EQ(mask.size(), 71u);
  EXPECT_TRUE(mask.test(70));
  EXPECT_FALSE(mask.test(69));
  EXPECT_EQ(mask.count(), 1u);
}

}  // namespace
}  // namespace fulcrum::balance
