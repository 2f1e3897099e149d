#include "base/counters.h"

#include <gtest/gtest.h>

namespace fulcrum::base {
namespace {

TEST(LatencyBucket, BoundsAreInclusiveAndLogSpaced) {
  EXPECT_EQ(latency_bucket(0), 0u);
  EXPECT_EQ(latency_bucket(-5), 0u);
  EXPECT_EQ(latency_bucket(499'999), 0u);
  EXPECT_EQ(latency_bucket(500'000), 0u);  // le="0.0005"
  EXPECT_EQ(latency_bucket(500'001), 1u);
  EXPECT_EQ(latency_bucket(1'000'000), 1u);
  EXPECT_EQ(latency_bucket(1'000'001), 2u);
  EXPECT_EQ(latency_bucket(3'000'000), 3u);        // 2.5 ms < x <= 5 ms
  EXPECT_EQ(latency_bucket(1'000'000'000), 10u);   // 1 s
  EXPECT_EQ(latency_bucket(10'000'000'000), 13u);  // 10 s, the last finite bound
  EXPECT_EQ(latency_bucket(10'000'000'001), 14u);  // +Inf
  EXPECT_EQ(latency_bucket(INT64_MAX), kLatencyBounds);
}

TEST(LatencyBucket, EveryValueLandsInTheFirstBucketThatHoldsIt) {
  for (size_t i = 0; i < kLatencyBounds; ++i) {
    int64_t bound = kLatencyBoundsNs[i];
    EXPECT_EQ(latency_bucket(bound), i) << bound;
    EXPECT_EQ(latency_bucket(bound + 1), i + 1) << bound;
    if (i > 0) {
      EXPECT_LT(kLatencyBoundsNs[i - 1], bound);
    }
  }
}

TEST(LatencyHistogram, ObserveCountsSumsAndAdds) {
  LatencyHistogram h;
  h.observe(200'000);         // 0.2 ms
  h.observe(700'000);         // 0.7 ms
  h.observe(20'000'000'000);  // 20 s: +Inf
  h.observe(-3);              // out of order clock: 0
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.buckets[0], 2u);
  EXPECT_EQ(h.buckets[1], 1u);
  EXPECT_EQ(h.buckets[kLatencyBounds], 1u);
  EXPECT_EQ(h.sum_ns, 20'000'900'000u);
  LatencyHistogram other;
  other.observe(700'000);
  h.add(other);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(h.buckets[1], 2u);
  EXPECT_EQ(h.sum_ns, 20'001'600'000u);
}

TEST(BackendCounterTable, EntriesSurviveGenerationsWhileUsed) {
  BackendCounterTable table;
  auto a = table.use("web", 1, "127.0.0.1:9001");
  auto b = table.use("web", 2, "127.0.0.1:9002");
  table.sweep();
  ++a->connections;
  ++b->connections;
  // Next generation: backend 2 left the group, backend 1 stays, backend 3 is new.
  auto a2 = table.use("web", 1, "127.0.0.1:9001");
  auto c = table.use("web", 3, "127.0.0.1:9003");
  table.sweep();
  EXPECT_EQ(a2.get(), a.get());  // same counters across generations
  EXPECT_EQ(a2->connections, 1u);
  EXPECT_EQ(table.size(), 2u);
  // A holder of a swept entry keeps counting into it, unreported.
  ++b->active;
  std::vector<std::string> seen;
  table.for_each([&](const BackendCounters& e) { seen.push_back(e.group + "/" + e.backend); });
  EXPECT_EQ(seen, (std::vector<std::string>{"web/127.0.0.1:9001", "web/127.0.0.1:9003"}));
  // The same backend in another group is another entry.
  auto other = table.use("api", 1, "127.0.0.1:9001");
  EXPECT_NE(other.get(), a.get());
}

TEST(ListenerCounters, AddSumsEveryField) {
  ListenerCounters a{1, 2, 3, 4, 5, 6, 7, 8};
  ListenerCounters b{10, 20, 30, 40, 50, 60, 70, 80};
  a.add(b);
  EXPECT_EQ(a.connections, 11u);
  EXPECT_EQ(a.active, 22u);
  EXPECT_EQ(a.dropped, 33u);
  EXPECT_EQ(a.bytes_in, 44u);
  EXPECT_EQ(a.bytes_out, 55u);
  EXPECT_EQ(a.packets_in, 66u);
  EXPECT_EQ(a.packets_out, 77u);
  EXPECT_EQ(a.acl_denied, 88u);
}

}  // namespace
}  // namespace fulcrum::base
