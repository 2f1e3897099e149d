#include "l4/udp_flow_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace fulcrum::l4 {
namespace {

FlowKey key(uint32_t n, uint16_t port = 1000) {
  FlowKey k;
  k.family = 2;  // AF_INET
  k.ip[0] = 127;
  k.ip[1] = static_cast<uint8_t>(n >> 16);
  k.ip[2] = static_cast<uint8_t>(n >> 8);
  k.ip[3] = static_cast<uint8_t>(n);
  k.port = port;
  return k;
}

// Expires what is idle for `idle_ms` at `now_ms`, the way the listener's sweep does.
std::vector<uint32_t> expire(FlowTable& t, int64_t now_ms, int64_t idle_ms) {
  std::vector<uint32_t> out;
  for (uint32_t s = t.oldest(); s != FlowTable::kNone && t.last_active_ms(s) + idle_ms <= now_ms;
       s = t.oldest()) {
    out.push_back(s);
    t.erase(s);
  }
  return out;
}

TEST(FlowTable, InsertFindErase) {
  FlowTable t(8);
  EXPECT_EQ(t.find(key(1)), FlowTable::kNone);
  uint32_t a = t.insert(key(1), 0);
  uint32_t b = t.insert(key(1, 1001), 0);  // same IP, other port: another flow
  ASSERT_NE(a, FlowTable::kNone);
  ASSERT_NE(b, FlowTable::kNone);
  EXPECT_NE(a, b);
  EXPECT_EQ(t.find(key(1)), a);
  EXPECT_EQ(t.find(key(1, 1001)), b);
  EXPECT_EQ(t.size(), 2u);
  t.erase(a);
  EXPECT_EQ(t.find(key(1)), FlowTable::kNone);
  EXPECT_EQ(t.find(key(1, 1001)), b);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.insert(key(3), 0), a);  // a freed slot is handed out again
}

TEST(FlowTable, BoundedRefusesPastTheMaximum) {
  FlowTable t(3);
  for (uint32_t i = 0; i < 3; ++i) ASSERT_NE(t.insert(key(i), 0), FlowTable::kNone);
  EXPECT_EQ(t.insert(key(9), 0), FlowTable::kNone);
  EXPECT_EQ(t.size(), 3u);
  t.erase(t.find(key(1)));
  EXPECT_NE(t.insert(key(9), 0), FlowTable::kNone);
  FlowTable none(0);
  EXPECT_EQ(none.insert(key(1), 0), FlowTable::kNone);
}

TEST(FlowTable, ExpiresIdleFlowsInActivityOrder) {
  FlowTable t(16);
  uint32_t a = t.insert(key(1), 0);
  uint32_t b = t.insert(key(2), 100);
  uint32_t c = t.insert(key(3), 200);
  t.touch(a, 300);  // a is now the most recent
  EXPECT_EQ(t.oldest(), b);
  EXPECT_TRUE(expire(t, 1099, 1000).empty());  // b idle for 999 ms only
  EXPECT_EQ(expire(t, 1100, 1000), std::vector<uint32_t>{b});
  EXPECT_EQ(expire(t, 1299, 1000), std::vector<uint32_t>{c});
  EXPECT_EQ(t.find(key(1)), a);
  EXPECT_EQ(expire(t, 1300, 1000), std::vector<uint32_t>{a});
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.oldest(), FlowTable::kNone);
}

TEST(FlowTable, TouchOfTheNewestAndRepeatedTouchesKeepOrder) {
  FlowTable t(4);
  uint32_t a = t.insert(key(1), 0);
  uint32_t b = t.insert(key(2), 0);
  t.touch(b, 0);
  t.touch(b, 5);
  t.touch(a, 5);
  t.touch(a, 5);
  EXPECT_EQ(t.oldest(), b);
  EXPECT_EQ(t.last_active_ms(a), 5);
  EXPECT_EQ(expire(t, 10, 5), (std::vector<uint32_t>{b, a}));
}

// Random inserts, touches and erases against a reference map: lookups, sizes and the expiry
// order stay exact through index growth and backward-shift deletion.
TEST(FlowTable, MatchesAReferenceUnderRandomOperations) {
  constexpr size_t kMax = 5000;
  FlowTable t(kMax);
  std::map<uint32_t, std::pair<uint32_t, int64_t>> ref;  // key n -> (slot, last activity)
  std::mt19937 rng(7);
  int64_t now = 0;
  for (int step = 0; step < 200000; ++step) {
    now += static_cast<int64_t>(rng() % 3);
    uint32_t n = static_cast<uint32_t>(rng() % 8000);
    auto it = ref.find(n);
    uint32_t found = t.find(key(n));
    ASSERT_EQ(found, it == ref.end() ? FlowTable::kNone : it->second.first) << step;
    switch (rng() % 4) {
      case 0:
      case 1:
        if (it == ref.end()) {
          uint32_t s = t.insert(key(n), now);
          if (ref.size() >= kMax) {
            ASSERT_EQ(s, FlowTable::kNone);
          } else {
            ASSERT_NE(s, FlowTable::kNone);
            ref[n] = {s, now};
          }
        } else {
          t.touch(found, now);
          it->second.second = now;
        }
        break;
      case 2:
        if (it != ref.end()) {
          t.erase(found);
          ref.erase(it);
        }
        break;
      default: {
        int64_t idle = 200;
        for (uint32_t s : expire(t, now, idle)) {
          auto r = std::find_if(ref.begin(), ref.end(),
                                [s](const auto& e) { return e.second.first == s; });
          ASSERT_NE(r, ref.end());
          ASSERT_LE(r->second.second + idle, now);
          ref.erase(r);
        }
        for (const auto& [k, v] : ref) ASSERT_GT(v.second + idle, now) << "not expired: " << k;
      }
    }
    ASSERT_EQ(t.size(), ref.size());
  }
  EXPECT_LE(t.slots(), kMax);
}

}  // namespace
}  // namespace fulcrum::l4
