#include "unit/store/store_fixture.h"

namespace fulcrum::store {
namespace {

using SqliteStoreWatch = StoreFixture;

// What a watcher saw, one line per event: "revision kind key=value".
struct Seen {
  std::vector<std::string> lines;
  std::vector<size_t> calls;  // events per call

  WatchFn fn() {
    return [this](const std::vector<Event>& events) {
      calls.push_back(events.size());
      for (const auto& e : events) {
        EXPECT_EQ(e.revision, events.front().revision) << "one call, one revision";
        lines.push_back(std::to_string(e.revision) + (e.kind == Op::Kind::kPut
                                                          ? " put " + e.key + "=" + e.value
                                                          : " del " + e.key));
      }
    };
  }
};

// The watch contract both stores share is in conformance_test.cc; here what only SQLite does:
// replay before watch() returns, live events before txn() returns, compaction by history size.

TEST_F(SqliteStoreWatch, DeliversSynchronously) {
  auto store = open();
  ASSERT_TRUE(store);
  for (int i = 1; i <= 3; ++i) commit(*store, {Op::put("/k" + std::to_string(i), "v")});
  Seen seen;
  ASSERT_NE(store->watch("", 1, seen.fn()), kNoWatch);
  EXPECT_EQ(seen.lines, (std::vector<std::string>{"2 put /k2=v", "3 put /k3=v"}));
  commit(*store, {Op::put("/k4", "v")});
  EXPECT_EQ(seen.lines.back(), "4 put /k4=v");
  // A no-op delete commits a revision but delivers nothing.
  commit(*store, {Op::del("/never-existed")});
  commit(*store, {Op::put("/k6", "v")});
  EXPECT_EQ(seen.lines.back(), "6 put /k6=v");
  EXPECT_EQ(seen.calls, (std::vector<size_t>{1, 1, 1, 1}));
}

TEST_F(SqliteStoreWatch, ReplayAfterReopen) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    commit(*store, {Op::put("/a", "1"), Op::put("/b", "2")});
    commit(*store, {Op::del("/a")});
  }
  auto store = open();
  ASSERT_TRUE(store);
  Seen seen;
  ASSERT_NE(store->watch("", 0, seen.fn()), kNoWatch);
  EXPECT_EQ(seen.lines, (std::vector<std::string>{"1 put /a=1", "1 put /b=2", "2 del /a"}));
  EXPECT_EQ(seen.calls, (std::vector<size_t>{2, 1}));
}

TEST_F(SqliteStoreWatch, CompactedRevisionIsRefused) {
  SqliteOptions options;
  options.history_events = 10;
  auto store = open(options);
  ASSERT_TRUE(store);
  for (int i = 1; i <= 30; ++i) commit(*store, {Op::put("/k", std::to_string(i))});

  Seen seen;
  auto refused = store->watch_checked("", 0, seen.fn());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message, kCompactedMessage);
  EXPECT_EQ(store->watch("", 0, seen.fn()), kNoWatch);
  EXPECT_TRUE(seen.lines.empty());

  // The last 10 revisions are always there (at most 11 are kept).
  auto ok = store->watch_checked("", 20, seen.fn());
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(seen.lines.size(), 10u);
  EXPECT_EQ(seen.lines.front(), "21 put /k=21");

  // The current revision can always be watched, however much was compacted.
  Seen now;
  ASSERT_TRUE(store->watch_checked("", 30, now.fn()).ok());
  commit(*store, {Op::put("/k", "31")});
  EXPECT_EQ(now.lines, (std::vector<std::string>{"31 put /k=31"}));
}

TEST_F(SqliteStoreWatch, CommitDuringReplayIsDeliveredAfterIt) {
  auto store = open();
  ASSERT_TRUE(store);
  commit(*store, {Op::put("/a", "1")});
  commit(*store, {Op::put("/a", "2")});
  Seen seen;
  bool wrote = false;
  WatchFn inner = seen.fn();
  store->watch("", 0, [&](const std::vector<Event>& events) {
    inner(events);
    if (!wrote) {
      wrote = true;
      EXPECT_EQ(commit(*store, {Op::put("/b", "3")}), 3);
    }
  });
  EXPECT_EQ(seen.lines, (std::vector<std::string>{"1 put /a=1", "2 put /a=2", "3 put /b=3"}));
}

}  // namespace
}  // namespace fulcrum::store
