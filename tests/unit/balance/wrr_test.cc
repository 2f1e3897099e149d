#include "balance/wrr.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "balance/balancer.h"

namespace fulcrum::balance {
namespace {

// Host names a, b, c, ... for readable sequences.
std::string sequence(const Table& table, Cursor& cursor, size_t picks, const HostMask* skip) {
  std::string out;
  PickRequest req;
  req.skip = skip;
  for (size_t i = 0; i < picks; ++i) {
    const uint32_t host = cursor.pick(table, req);
    out += host == kNoHost ? '-' : static_cast<char>('a' + host);
  }
  return out;
}

// Golden: smooth weighted round robin interleaves instead of bursting (never "aaaaabc").
TEST(Wrr, GoldenSmoothSequence) {
  const std::vector<uint32_t> weights{5, 1, 1};
  auto table = Table::build(Scheduler::kWrr, weights);
  Cursor cursor(*table);
  EXPECT_EQ(sequence(*table, cursor, 14, nullptr), "aabacaaaabacaa");
}

TEST(Wrr, GoldenMixedWeights) {
  const std::vector<uint32_t> weights{4, 3, 2, 1};
  auto table = Table::build(Scheduler::kWrr, weights);
  Cursor cursor(*table);
  EXPECT_EQ(sequence(*table, cursor, 10, nullptr), "abcabdacba");
}

TEST(Wrr, ExactProportions) {
  const std::vector<uint32_t> weights{1, 3};
  auto table = Table::build(Scheduler::kWrr, weights);
  Cursor cursor(*table);
  size_t counts[2] = {0, 0};
  for (int i = 0; i < 400; ++i) ++counts[cursor.pick(*table, PickRequest{})];
  EXPECT_EQ(counts[0], 100u);
  EXPECT_EQ(counts[1], 300u);
}

TEST(Wrr, SkippedHostSitsOut) {
  const std::vector<uint32_t> weights{5, 1, 1};
  auto table = Table::build(Scheduler::kWrr, weights);
  Cursor cursor(*table);
  HostMask skip;
  skip.reset(3);
  skip.set(0);
  EXPECT_EQ(sequence(*table, cursor, 6, &skip), "bcbcbc");
  // Once the skip is lifted the smooth sequence carries on from the kept running totals.
  EXPECT_EQ(sequence(*table, cursor, 7, nullptr), "aabacaa");
}

TEST(Wrr, ZeroWeightSitsOut) {
  const std::vector<uint32_t> weights{0, 2, 0, 1};
  auto table = Table::build(Scheduler::kWrr, weights);
  Cursor cursor(*table);
  EXPECT_EQ(sequence(*table, cursor, 6, nullptr), "bdbbdb");
}

TEST(Wrr, HugeWeightsDoNotOverflow) {
  const std::vector<uint32_t> weights{UINT32_MAX, UINT32_MAX, 1};
  auto table = Table::build(Scheduler::kWrr, weights);
  Cursor cursor(*table);
  size_t counts[3] = {0, 0, 0};
  for (int i = 0; i < 10000; ++i) ++counts[cursor.pick(*table, PickRequest{})];
  EXPECT_EQ(counts[0], 5000u);
  EXPECT_EQ(counts[1], 5000u);
  EXPECT_EQ(counts[2], 0u);
}

TEST(Wrr, DirectCall) {
  const std::vector<uint32_t> weights{2, 1};
  std::vector<int64_t> current(2, 0);
  EXPECT_EQ(wrr::pick(weights, current, nullptr), 0u);
  EXPECT_EQ(wrr::pick(weights, current, nullptr), 1u);
  EXPECT_EQ(wrr::pick(weights, current, nullptr), 0u);
  EXPECT_EQ(current[0], 0);
  EXPECT_EQ(current[1], 0);
}

}  // namespace
}  // namespace fulcrum::balance
