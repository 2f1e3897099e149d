#include "balance/wlc.h"

#include <gtest/gtest.h>

#include <vector>

#include "balance/balancer.h"

namespace fulcrum::balance {
namespace {

// Golden: each pick opens a connection on the chosen host. Weights 1:2:3 converge on 1:2:3 shares
// and ties rotate instead of always going to the lowest index.
TEST(Wlc, GoldenSequenceWithOpeningConnections) {
  const std::vector<uint32_t> weights{1, 2, 3};
  auto table = Table::build(Scheduler::kWlc, weights);
  Cursor cursor(*table);
  std::vector<uint32_t> active{0, 0, 0};
  std::vector<uint32_t> seq;
  for (int i = 0; i < 12; ++i) {
    PickRequest req;
    req.active = active;
    const uint32_t host = cursor.pick(*table, req);
    ASSERT_LT(host, 3u);
    seq.push_back(host);
    ++active[host];
  }
  EXPECT_EQ(seq, (std::vector<uint32_t>{2, 1, 2, 0, 1, 2, 2, 1, 2, 0, 1, 2}));
  EXPECT_EQ(active, (std::vector<uint32_t>{2, 4, 6}));
}

TEST(Wlc, GoldenFixedActiveCounts) {
  const std::vector<uint32_t> weights{1, 1, 1, 1};
  const std::vector<uint32_t> active{3, 1, 1, 5};
  auto table = Table::build(Scheduler::kWlc, weights);
  Cursor cursor(*table);
  PickRequest req;
  req.active = active;
  std::vector<uint32_t> seq;
  for (int i = 0; i < 4; ++i) seq.push_back(cursor.pick(*table, req));
  EXPECT_EQ(seq, (std::vector<uint32_t>{1, 2, 1, 2}));  // hosts 1 and 2 tie and share
}

TEST(Wlc, WeightScalesLoad) {
  // (9 + 1) / 10 = 1 beats (1 + 1) / 1 = 2.
  const std::vector<uint32_t> weights{1, 10};
  const std::vector<uint32_t> active{1, 9};
  auto table = Table::build(Scheduler::kWlc, weights);
  Cursor cursor(*table);
  PickRequest req;
  req.active = active;
  EXPECT_EQ(cursor.pick(*table, req), 1u);
}

TEST(Wlc, ShortActiveCountsAsZero) {
  const std::vector<uint32_t> weights{1, 1, 1};
  const std::vector<uint32_t> active{4, 4};  // host 2 missing: 0
  auto table = Table::build(Scheduler::kWlc, weights);
  Cursor cursor(*table);
  PickRequest req;
  req.active = active;
  EXPECT_EQ(cursor.pick(*table, req), 2u);
}

TEST(Wlc, SkipPrefersNextBest) {
  const std::vector<uint32_t> weights{1, 1, 1};
  const std::vector<uint32_t> active{5, 0, 2};
  auto table = Table::build(Scheduler::kWlc, weights);
  Cursor cursor(*table);
  HostMask skip;
  skip.reset(3);
  skip.set(1);
  PickRequest req;
  req.active = active;
  req.skip = &skip;
  EXPECT_EQ(cursor.pick(*table, req), 2u);
}

TEST(Wlc, ExtremeValuesCompareExactly) {
  // (2^32 - 1 + 1) / (2^32 - 1) is just above (0 + 1) / 1; products near 2^64 must not overflow.
  const std::vector<uint32_t> weights{UINT32_MAX, 1};
  const std::vector<uint32_t> active{UINT32_MAX, 0};
  uint32_t next = 0;
  EXPECT_EQ(wlc::pick(weights, active, next, nullptr), 1u);
  const std::vector<uint32_t> active2{UINT32_MAX - 1, 0};  // exactly 1: tie, first from start
  next = 0;
  EXPECT_EQ(wlc::pick(weights, active2, next, nullptr), 0u);
}

}  // namespace
}  // namespace fulcrum::balance
