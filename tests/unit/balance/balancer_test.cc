// Facade behaviour shared by every scheduler: parsing, table accessors, and the pick contract
// (weight 0 and skipped hosts are never returned; kNoHost when nothing is eligible).
#include "balance/balancer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace fulcrum::balance {
namespace {

constexpr Scheduler kAll[] = {Scheduler::kWrr, Scheduler::kRr, Scheduler::kWlc, Scheduler::kSch,
                              Scheduler::kTch};

std::string test_name(const testing::TestParamInfo<Scheduler>& info) {
  return std::string(scheduler_name(info.param));
}

TEST(Scheduler, ParseAndName) {
  for (Scheduler s : kAll) {
    EXPECT_EQ(parse_scheduler(scheduler_name(s)), s);
  }
  EXPECT_EQ(parse_scheduler("wrr"), Scheduler::kWrr);
  EXPECT_EQ(parse_scheduler("rr"), Scheduler::kRr);
  EXPECT_EQ(parse_scheduler("wlc"), Scheduler::kWlc);
  EXPECT_EQ(parse_scheduler("sch"), Scheduler::kSch);
  EXPECT_EQ(parse_scheduler("tch"), Scheduler::kTch);
  EXPECT_EQ(parse_scheduler(""), std::nullopt);
  EXPECT_EQ(parse_scheduler("WRR"), std::nullopt);
  EXPECT_EQ(parse_scheduler("maglev"), std::nullopt);
  EXPECT_EQ(parse_scheduler("wrr "), std::nullopt);
}

TEST(Table, Accessors) {
  const std::vector<uint32_t> weights{3, 0, 5};
  auto table = Table::build(Scheduler::kWrr, weights);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->scheduler(), Scheduler::kWrr);
  EXPECT_EQ(table->size(), 3u);
  EXPECT_EQ(table->weight(0), 3u);
  EXPECT_EQ(table->weight(1), 0u);
  EXPECT_EQ(table->weight(2), 5u);
  EXPECT_EQ(table->weight(3), 0u);
  EXPECT_EQ(table->total_weight(), 8u);
  EXPECT_EQ(table->eligible(), 2u);
  EXPECT_TRUE(table->maglev_lookup().empty());
}

class PickContract : public testing::TestWithParam<Scheduler> {
 protected:
  // Picks `n` times with varying keys and active counts; returns how often each host came up.
  static std::vector<size_t> histogram(const Table& table, Cursor& cursor, const HostMask* skip,
                                       size_t n) {
    std::vector<size_t> counts(table.size() + 1, 0);  // last bucket: kNoHost
    std::vector<uint32_t> active(table.size(), 0);
    std::mt19937_64 rng(1);
    for (size_t i = 0; i < n; ++i) {
      PickRequest req;
      req.key = rng();
      req.active = active;
      req.skip = skip;
      const uint32_t host = cursor.pick(table, req);
      if (host == kNoHost) {
        ++counts.back();
      } else {
        EXPECT_LT(host, table.size());
        if (host >= table.size()) return counts;
        ++counts[host];
        ++active[host];
      }
    }
    return counts;
  }
};

TEST_P(PickContract, EmptyTable) {
  auto table = Table::build(GetParam(), {});
  Cursor cursor(*table);
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(cursor.pick(*table, PickRequest{}), kNoHost);
}

TEST_P(PickContract, AllZeroWeights) {
  const std::vector<uint32_t> weights{0, 0, 0};
  auto table = Table::build(GetParam(), weights);
  Cursor cursor(*table);
  const auto counts = histogram(*table, cursor, nullptr, 100);
  EXPECT_EQ(counts.back(), 100u);
}

TEST_P(PickContract, SingleHost) {
  const std::vector<uint32_t> weights{7};
  auto table = Table::build(GetParam(), weights);
  Cursor cursor(*table);
  const auto counts = histogram(*table, cursor, nullptr, 100);
  EXPECT_EQ(counts[0], 100u);
}

TEST_P(PickContract, ZeroWeightNeverPicked) {
  const std::vector<uint32_t> weights{2, 0, 1, 0, 3};
  auto table = Table::build(GetParam(), weights);
  Cursor cursor(*table);
  const auto counts = histogram(*table, cursor, nullptr, 3000);
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts[3], 0u);
  EXPECT_EQ(counts.back(), 0u);
  EXPECT_GT(counts[0], 0u);
  EXPECT_GT(counts[2], 0u);
  EXPECT_GT(counts[4], 0u);
}

TEST_P(PickContract, SkippedNeverPicked) {
  const std::vector<uint32_t> weights{1, 1, 1, 1, 1};
  auto table = Table::build(GetParam(), weights);
  Cursor cursor(*table);
  HostMask skip;
  skip.reset(weights.size());
  skip.set(0);
  skip.set(3);
  const auto counts = histogram(*table, cursor, &skip, 3000);
  EXPECT_EQ(counts[0], 0u);
  EXPECT_EQ(counts[3], 0u);
  EXPECT_EQ(counts.back(), 0u);
  EXPECT_GT(counts[1], 0u);
  EXPECT_GT(counts[2], 0u);
  EXPECT_GT(counts[4], 0u);
}

TEST_P(PickContract, AllSkippedOrZero) {
  const std::vector<uint32_t> weights{1, 0, 4};
  auto table = Table::build(GetParam(), weights);
  Cursor cursor(*table);
  HostMask skip;
  skip.reset(weights.size());
  skip.set(0);
  skip.set(2);
  const auto counts = histogram(*table, cursor, &skip, 200);
  EXPECT_EQ(counts.back(), 200u);
}

TEST_P(PickContract, OnlyEligibleHostAmongMany) {
  std::vector<uint32_t> weights(1000, 1);
  auto table = Table::build(GetParam(), weights);
  Cursor cursor(*table);
  HostMask skip;
  skip.reset(weights.size());
  for (uint32_t h = 0; h < 1000; ++h) {
    if (h != 617) skip.set(h);
  }
  const auto counts = histogram(*table, cursor, &skip, 200);
  EXPECT_EQ(counts[617], 200u);
}

TEST_P(PickContract, CursorFollowsTableOfAnotherSize) {
  const std::vector<uint32_t> small{1, 1};
  const std::vector<uint32_t> large{0, 0, 0, 0, 5};
  auto table_small = Table::build(GetParam(), small);
  auto table_large = Table::build(GetParam(), large);
  Cursor cursor(*table_small);
  EXPECT_LT(cursor.pick(*table_small, PickRequest{}), 2u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(cursor.pick(*table_large, PickRequest{}), 4u);
  EXPECT_LT(cursor.pick(*table_small, PickRequest{}), 2u);
}

TEST_P(PickContract, ThousandHosts) {
  std::vector<uint32_t> weights(1000);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<uint32_t>(1 + i % 4);
  auto table = Table::build(GetParam(), weights);
  ASSERT_EQ(table->size(), 1000u);
  Cursor cursor(*table);
  const auto counts = histogram(*table, cursor, nullptr, 20000);
  EXPECT_EQ(counts.back(), 0u);
}

INSTANTIATE_TEST_SUITE_P(All, PickContract, testing::ValuesIn(kAll), test_name);

}  // namespace
}  // namespace fulcrum::balance
