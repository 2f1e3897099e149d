#include "balance/rr.h"

#include <gtest/gtest.h>

#include <vector>

#include "balance/balancer.h"

namespace fulcrum::balance {
namespace {

std::vector<uint32_t> picks(const Table& table, Cursor& cursor, size_t n, const HostMask* skip) {
  std::vector<uint32_t> out;
  PickRequest req;
  req.skip = skip;
  for (size_t i = 0; i < n; ++i) out.push_back(cursor.pick(table, req));
  return out;
}

TEST(Rr, GoldenRotationIgnoresWeightSize) {
  const std::vector<uint32_t> weights{1, 0, 9, 1};
  auto table = Table::build(Scheduler::kRr, weights);
  Cursor cursor(*table);
  EXPECT_EQ(picks(*table, cursor, 7, nullptr), (std::vector<uint32_t>{0, 2, 3, 0, 2, 3, 0}));
}

TEST(Rr, SkipKeepsRotation) {
  const std::vector<uint32_t> weights{1, 1, 1, 1};
  auto table = Table::build(Scheduler::kRr, weights);
  Cursor cursor(*table);
  HostMask skip;
  skip.reset(4);
  skip.set(1);
  EXPECT_EQ(picks(*table, cursor, 6, &skip), (std::vector<uint32_t>{0, 2, 3, 0, 2, 3}));
  EXPECT_EQ(picks(*table, cursor, 4, nullptr), (std::vector<uint32_t>{0, 1, 2, 3}));
}

TEST(Rr, StartOffsetSpreadsWorkers) {
  const std::vector<uint32_t> weights{1, 1, 1};
  auto table = Table::build(Scheduler::kRr, weights);
  Cursor cursor(*table, 4);  // 4 % 3 = 1
  EXPECT_EQ(picks(*table, cursor, 4, nullptr), (std::vector<uint32_t>{1, 2, 0, 1}));
}

TEST(Rr, EvenShares) {
  std::vector<uint32_t> weights(10, 1);
  auto table = Table::build(Scheduler::kRr, weights);
  Cursor cursor(*table);
  std::vector<size_t> counts(10, 0);
  for (int i = 0; i < 1000; ++i) ++counts[cursor.pick(*table, PickRequest{})];
  for (size_t c : counts) EXPECT_EQ(c, 100u);
}

TEST(Rr, DirectCall) {
  const std::vector<uint32_t> weights{1, 1};
  uint32_t next = 7;  // out of range: taken modulo the host count
  EXPECT_EQ(rr::pick(weights, next, nullptr), 1u);
  EXPECT_EQ(next, 0u);
  const std::vector<uint32_t> none{0, 0};
  EXPECT_EQ(rr::pick(none, next, nullptr), UINT32_MAX);
  EXPECT_EQ(next, 0u);
}

}  // namespace
}  // namespace fulcrum::balance
