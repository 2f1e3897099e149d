#include "balance/persistence.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

namespace fulcrum::balance {
namespace {

TEST(Persistence, PutLookup) {
  PersistenceTable table(8);
  EXPECT_EQ(table.capacity(), 8u);
  EXPECT_EQ(table.lookup(1, 0), std::nullopt);
  table.put(1, 100, 1000);
  table.put(2, 200, 1000);
  EXPECT_EQ(table.lookup(1, 0), 100u);
  EXPECT_EQ(table.lookup(2, 999), 200u);
  EXPECT_EQ(table.lookup(3, 0), std::nullopt);
  EXPECT_EQ(table.size(), 2u);
}

TEST(Persistence, ExpiredReadsAsAbsentAndIsRemoved) {
  PersistenceTable table(8);
  table.put(1, 100, 1000);
  EXPECT_EQ(table.lookup(1, 999), 100u);
  EXPECT_EQ(table.lookup(1, 1000), std::nullopt);  // live only while now < expires
  EXPECT_EQ(table.size(), 0u);
}

TEST(Persistence, PutReplaces) {
  PersistenceTable table(8);
  table.put(1, 100, 1000);
  table.put(1, 101, 2000);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.lookup(1, 1500), 101u);
}

TEST(Persistence, Erase) {
  PersistenceTable table(8);
  table.put(1, 100, 1000);
  table.put(2, 200, 1000);
  table.erase(1);
  table.erase(7);  // absent: no effect
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.lookup(1, 0), std::nullopt);
  EXPECT_EQ(table.lookup(2, 0), 200u);
}

TEST(Persistence, FullTableEvictsLeastRecentlyPut) {
  PersistenceTable table(3);
  table.put(1, 100, 1000);
  table.put(2, 200, 1001);
  table.put(3, 300, 1002);
  table.put(1, 101, 1003);  // refresh: 2 is now the oldest
  table.put(4, 400, 1004);
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.lookup(2, 0), std::nullopt);
  EXPECT_EQ(table.lookup(1, 0), 101u);
  EXPECT_EQ(table.lookup(3, 0), 300u);
  EXPECT_EQ(table.lookup(4, 0), 400u);
  for (uint64_t k = 10; k < 100; ++k) table.put(k, k, 5000);
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.lookup(97, 0), 97u);
  EXPECT_EQ(table.lookup(98, 0), 98u);
  EXPECT_EQ(table.lookup(99, 0), 99u);
}

TEST(Persistence, ZeroCapacityStoresNothing) {
  PersistenceTable table(0);
  table.put(1, 100, 1000);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.lookup(1, 0), std::nullopt);
  EXPECT_EQ(table.expire(5000, 10), 0u);
}

TEST(Persistence, ExpireIsIncrementalAndBounded) {
  PersistenceTable table(100);
  for (uint64_t k = 0; k < 100; ++k) table.put(k, k, k % 2 == 0 ? 1000 : 3000);
  size_t removed = 0;
  for (int call = 0; call < 10; ++call) {
    const size_t n = table.expire(2000, 10);
    EXPECT_LE(n, 10u);
    removed += n;
  }
  EXPECT_EQ(removed, 50u);
  EXPECT_EQ(table.size(), 50u);
  EXPECT_EQ(table.expire(2000, 1000), 0u);  // work is capped at one pass
  for (uint64_t k = 0; k < 100; ++k) {
    EXPECT_EQ(table.lookup(k, 2000).has_value(), k % 2 == 1) << k;
  }
}

// Random operations against a reference model, with many keys sharing probe runs, to exercise
// deletion inside the open-addressing index.
TEST(Persistence, MatchesReferenceModel) {
  constexpr size_t kCapacity = 64;
  PersistenceTable table(kCapacity);
  std::unordered_map<uint64_t, std::pair<uint64_t, int64_t>> model;
  std::mt19937_64 rng(2024);
  int64_t now = 0;
  for (int step = 0; step < 200000; ++step) {
    const uint64_t key = rng() % 100;
    switch (rng() % 4) {
      case 0:
      case 1: {
        // The table holds a subset of the model's keys; skip puts that would evict.
        if (table.size() == kCapacity && model.count(key) == 0) break;
        const uint64_t backend = rng();
        const int64_t expires = now + static_cast<int64_t>(rng() % 50);
        table.put(key, backend, expires);
        model[key] = {backend, expires};
        break;
      }
      case 2: {
        table.erase(key);
        model.erase(key);
        break;
      }
      default: {
        const auto got = table.lookup(key, now);
        const auto it = model.find(key);
        if (it != model.end() && now < it->second.second) {
          ASSERT_EQ(got, it->second.first) << step;
        } else {
          ASSERT_EQ(got, std::nullopt) << step;
          model.erase(key);
        }
        break;
      }
    }
    if (step % 7 == 0) table.expire(now, 5);  // removes only entries the model sees as expired
    if (step % 3 == 0) ++now;
    ASSERT_LE(table.size(), kCapacity);
  }
  // Every live model entry is still present.
  for (const auto& [key, entry] : model) {
    if (now < entry.second) {
      EXPECT_EQ(table.lookup(key, now), entry.first);
    }
  }
}

}  // namespace
}  // namespace fulcrum::balance
