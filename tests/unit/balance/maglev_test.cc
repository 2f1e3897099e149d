#include "balance/maglev.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "balance/balancer.h"
#include "base/hash.h"

namespace fulcrum::balance {
namespace {

uint32_t pick_key(const Table& table, uint64_t key, const HostMask* skip = nullptr) {
  Cursor cursor(table);
  PickRequest req;
  req.key = key;
  req.skip = skip;
  return cursor.pick(table, req);
}

std::vector<size_t> slot_counts(const Table& table) {
  std::vector<size_t> counts(table.size(), 0);
  for (uint32_t host : table.maglev_lookup()) {
    EXPECT_LT(host, table.size());
    if (host < table.size()) ++counts[host];
  }
  return counts;
}

std::vector<uint64_t> host_ids(size_t n) {
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(base::hash_string("10.0.1." + std::to_string(i) + ":80"));
  }
  return ids;
}

uint64_t checksum(std::span<const uint32_t> lookup) {
  return base::hash_bytes(lookup.data(), lookup.size_bytes());
}

// Golden values. They decide which backend every sticky client (sch) and every flow (tch) lands
// on: changing them moves clients between backends on upgrade. Change only on purpose, with a
// release note, and recompute them then.
TEST(Maglev, GoldenKeysThreeHosts) {
  const std::vector<uint32_t> weights{1, 1, 1};
  auto table = Table::build(Scheduler::kSch, weights);
  const uint32_t expected[] = {2, 2, 2, 1, 1, 1, 1, 2, 2, 0};
  for (int i = 0; i < 10; ++i) {
    const std::string ip = "10.0.0." + std::to_string(i + 1);
    EXPECT_EQ(pick_key(*table, base::hash_string(ip)), expected[i]) << ip;
  }
  EXPECT_EQ(checksum(table->maglev_lookup()), 0x6e8a87dcc9de81c9ULL);
}

TEST(Maglev, GoldenKeysThreeHostsWithIds) {
  const std::vector<uint32_t> weights{1, 1, 1};
  const std::vector<uint64_t> ids{base::hash_string("10.0.0.1:80"),
                                  base::hash_string("10.0.0.2:80"),
                                  base::hash_string("10.0.0.3:80")};
  auto table = Table::build(Scheduler::kTch, weights, ids);
  const uint32_t expected[] = {1, 1, 0, 0, 1, 2, 1, 2, 1, 0};
  for (int i = 0; i < 10; ++i) {
    const std::string ip = "192.168.1." + std::to_string(i + 1);
    EXPECT_EQ(pick_key(*table, base::hash_string(ip)), expected[i]) << ip;
  }
  EXPECT_EQ(checksum(table->maglev_lookup()), 0x983364fa8c4462bfULL);
}

TEST(Maglev, GoldenSmallTables) {
  const std::vector<uint32_t> weights{1, 2, 0};
  EXPECT_EQ(maglev::build(weights, {}, 13),
            (std::vector<uint32_t>{1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1, 0}));
  const std::vector<uint32_t> weights3{1, 2, 3};
  EXPECT_EQ(checksum(maglev::build(weights3, {}, 251)), 0x72c0c4561089b44aULL);
  // Very unequal weights take the other fill-order path; pinned as well.
  std::vector<uint32_t> skewed(41, 1);
  skewed[0] = 5000;
  const auto lookup = maglev::build(skewed, {}, maglev::kSmallTableSize);
  EXPECT_EQ(checksum(lookup), 0x827eaf1c272f8166ULL);
}

TEST(Maglev, TableSizes) {
  EXPECT_EQ(maglev::table_size_for(0), 65537u);
  EXPECT_EQ(maglev::table_size_for(650), 65537u);
  EXPECT_EQ(maglev::table_size_for(651), 655373u);
  EXPECT_EQ(maglev::table_size_for(6553), 655373u);
  EXPECT_EQ(maglev::table_size_for(6554), 6553733u);
  const std::vector<uint32_t> weights{1, 1};
  EXPECT_EQ(Table::build(Scheduler::kSch, weights)->maglev_lookup().size(), 65537u);
}

TEST(Maglev, SchAndTchShareTheTable) {
  const std::vector<uint32_t> weights{3, 1, 2};
  auto sch = Table::build(Scheduler::kSch, weights);
  auto tch = Table::build(Scheduler::kTch, weights);
  EXPECT_EQ(checksum(sch->maglev_lookup()), checksum(tch->maglev_lookup()));
}

TEST(Maglev, IndexIsTheDefaultIdentity) {
  const std::vector<uint32_t> weights{1, 2, 3, 4};
  const std::vector<uint64_t> ids{0, 1, 2, 3};
  const std::vector<uint64_t> partial{0, 1};
  auto plain = Table::build(Scheduler::kSch, weights);
  EXPECT_EQ(checksum(plain->maglev_lookup()),
            checksum(Table::build(Scheduler::kSch, weights, ids)->maglev_lookup()));
  EXPECT_EQ(checksum(plain->maglev_lookup()),
            checksum(Table::build(Scheduler::kSch, weights, partial)->maglev_lookup()));
}

TEST(Maglev, EqualWeightsGetEqualSlots) {
  const std::vector<uint32_t> weights{1, 1, 1};
  const auto counts = slot_counts(*Table::build(Scheduler::kSch, weights));
  // 65537 = 3 * 21845 + 2: the fill takes turns, so shares differ by at most one slot.
  EXPECT_EQ(counts, (std::vector<size_t>{21846, 21846, 21845}));
}

TEST(Maglev, SlotsProportionalToWeight) {
  const std::vector<uint32_t> weights{1, 3, 0, 4};
  const auto counts = slot_counts(*Table::build(Scheduler::kSch, weights));
  EXPECT_NEAR(static_cast<double>(counts[0]), 65537.0 / 8, 2);
  EXPECT_NEAR(static_cast<double>(counts[1]), 65537.0 * 3 / 8, 2);
  EXPECT_EQ(counts[2], 0u);
  EXPECT_NEAR(static_cast<double>(counts[3]), 65537.0 * 4 / 8, 2);
}

TEST(Maglev, EvenDistributionOfRandomKeys) {
  const std::vector<uint32_t> weights{1, 1, 1};
  auto table = Table::build(Scheduler::kSch, weights);
  Cursor cursor(*table);
  std::mt19937_64 rng(12345);
  std::vector<size_t> counts(3, 0);
  constexpr size_t kKeys = 300000;
  for (size_t i = 0; i < kKeys; ++i) {
    PickRequest req;
    req.key = rng();
    ++counts[cursor.pick(*table, req)];
  }
  for (size_t c : counts) EXPECT_NEAR(static_cast<double>(c), kKeys / 3.0, kKeys / 3.0 * 0.03);
}

TEST(Maglev, WeightedDistributionOfRandomKeys) {
  const std::vector<uint32_t> weights{1, 3};
  auto table = Table::build(Scheduler::kSch, weights);
  Cursor cursor(*table);
  std::mt19937_64 rng(54321);
  std::vector<size_t> counts(2, 0);
  constexpr size_t kKeys = 300000;
  for (size_t i = 0; i < kKeys; ++i) {
    PickRequest req;
    req.key = rng();
    ++counts[cursor.pick(*table, req)];
  }
  EXPECT_NEAR(static_cast<double>(counts[0]), kKeys * 0.25, kKeys * 0.25 * 0.05);
  EXPECT_NEAR(static_cast<double>(counts[1]), kKeys * 0.75, kKeys * 0.75 * 0.05);
}

TEST(Maglev, ThousandHostsEachGetEnoughSlots) {
  std::vector<uint32_t> weights(1000, 1);
  auto table = Table::build(Scheduler::kSch, weights, host_ids(1000));
  EXPECT_EQ(table->maglev_lookup().size(), maglev::kLargeTableSize);
  for (size_t c : slot_counts(*table)) {
    EXPECT_GE(c, 655u);
    EXPECT_LE(c, 656u);
  }
}

// Removing one of ten backends moves its own keys and, by the paper's design, few others.
TEST(Maglev, MinimalDisruptionOnRemoval) {
  const std::vector<uint64_t> ids = host_ids(10);
  const std::vector<uint32_t> weights10(10, 1);
  const std::vector<uint32_t> weights9(9, 1);
  auto before = Table::build(Scheduler::kSch, weights10, ids);
  for (size_t removed = 0; removed < 10; ++removed) {
    std::vector<uint64_t> ids9;
    for (size_t i = 0; i < 10; ++i) {
      if (i != removed) ids9.push_back(ids[i]);
    }
    auto after = Table::build(Scheduler::kSch, weights9, ids9);
    std::mt19937_64 rng(99);
    size_t stayed_eligible = 0;
    size_t moved = 0;
    for (int i = 0; i < 50000; ++i) {
      const uint64_t key = rng();
      const uint32_t old_host = pick_key(*before, key);
      if (old_host == removed) continue;
      ++stayed_eligible;
      if (ids9[pick_key(*after, key)] != ids[old_host]) ++moved;
    }
    EXPECT_LE(static_cast<double>(moved), 0.12 * static_cast<double>(stayed_eligible))
        << "removed host " << removed;
  }
}

TEST(Maglev, SkippedHostsKeysGoToAConsistentSpreadOfAlternatives) {
  const std::vector<uint32_t> weights{1, 1, 1, 1};
  auto table = Table::build(Scheduler::kSch, weights);
  HostMask skip;
  skip.reset(4);
  skip.set(0);
  std::mt19937_64 rng(7);
  std::vector<size_t> alternatives(4, 0);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t key = rng();
    const uint32_t primary = pick_key(*table, key);
    const uint32_t retry = pick_key(*table, key, &skip);
    ASSERT_NE(retry, 0u);
    ASSERT_NE(retry, kNoHost);
    EXPECT_EQ(retry, pick_key(*table, key, &skip));  // deterministic
    if (primary != 0) {
      EXPECT_EQ(retry, primary);  // keys of healthy hosts stay put
    } else {
      ++alternatives[retry];
    }
  }
  const size_t moved = alternatives[1] + alternatives[2] + alternatives[3];
  for (uint32_t h = 1; h < 4; ++h) {
    EXPECT_GT(static_cast<double>(alternatives[h]), 0.25 * static_cast<double>(moved)) << h;
  }
}

TEST(Maglev, FallbackScanFindsTheLastHost) {
  std::vector<uint32_t> weights(700, 1);
  weights[699] = 0;
  auto table = Table::build(Scheduler::kSch, weights);
  HostMask skip;
  skip.reset(700);
  for (uint32_t h = 0; h < 700; ++h) {
    if (h != 3) skip.set(h);
  }
  for (uint64_t key = 0; key < 100; ++key) EXPECT_EQ(pick_key(*table, key, &skip), 3u);
  skip.set(3);
  EXPECT_EQ(pick_key(*table, 42, &skip), kNoHost);
}

TEST(Maglev, ZeroWeightHostsHaveNoSlots) {
  const std::vector<uint32_t> weights{0, 5, 0};
  const auto counts = slot_counts(*Table::build(Scheduler::kSch, weights));
  EXPECT_EQ(counts, (std::vector<size_t>{0, 65537, 0}));
}

TEST(Maglev, NoEligibleHostLeavesEmptySlots) {
  const std::vector<uint32_t> weights{0, 0};
  const auto lookup = maglev::build(weights, {}, 13);
  EXPECT_EQ(lookup, std::vector<uint32_t>(13, UINT32_MAX));
}

}  // namespace
}  // namespace fulcrum::balance
