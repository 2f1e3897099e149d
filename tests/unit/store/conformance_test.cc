// The Store contract (store.h), run against both stores: ctest's "store.Conformance.<Test><Sqlite>"
// and "store.Conformance.<Test><Etcd>" (a real etcd, etcd_process.h).
//
// etcd's revisions are its own and shared by every test of the process, so every test works under
// a key prefix of its own (h.k("a")), reads a base revision first and compares revisions with
// what its own commits returned, never with fixed numbers. It asserts only what both stores do:
// etcd delivers every watch event later from its loop, so tests wait for events (wait_for); what
// only SQLite does (counting from 0, synchronous replay, a revision for a no-op delete) is pinned
// in store_test.cc and watch_test.cc.
#include <algorithm>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "unit/store/etcd_process.h"
#include "unit/store/store_fixture.h"
#include "unit/store/store_harness.h"

// The backends, at global scope so that ctest names read "store.Conformance.PutGetDelete<Etcd>"
// (gtest_discover_tests names typed tests after the TypeParam gtest prints).
struct Sqlite {};
struct Etcd {};

namespace fulcrum::store {
namespace {

// Events the SQLite store keeps for replay: small, so that compact_history() is one transaction.
constexpr int64_t kSqliteHistory = 100;

template <class Backend>
class Conformance : public StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string name = std::string(info->test_suite_name()) + "/" + info->name();
    const std::string prefix = "/t/" + name + "/";
    if constexpr (std::is_same_v<Backend, Sqlite>) {
      SqliteOptions options;
      options.history_events = kSqliteHistory;
      h_ = StoreHarness::sqlite(path(), options, prefix);
    } else {
      EtcdProcess* etcd = shared_etcd();
      ASSERT_NE(etcd, nullptr);
      EtcdOptions options;
      options.endpoints = {etcd->endpoint()};
      options.guard_key = "/guard/" + name;  // guarded txns of other tests never conflict with ours
      h_ = StoreHarness::etcd(options, prefix);
    }
    ASSERT_TRUE(h_->ok());
  }
  void TearDown() override {
    h_.reset();
    StoreFixture::TearDown();
  }

  // Drops the history up to the current revision: a watch from an older one cannot be served.
  void compact_history() {
    StoreHarness& h = *h_;
    if constexpr (std::is_same_v<Backend, Sqlite>) {
      // One transaction with more events than the history keeps pushes every earlier revision out.
      std::vector<Op> filler;
      for (int64_t i = 0; i <= kSqliteHistory + kSqliteHistory / 10; ++i) {
        filler.push_back(Op::put(h.k("filler/" + std::to_string(i)), "x"));
      }
      h.commit(filler);
    } else {
      auto now = h.range(h.prefix());
      ASSERT_TRUE(now.ok()) << now.error().message;
      auto s = h.on_loop([&] { return h.etcd_store().compact_sync(now->revision); });
      ASSERT_TRUE(s.ok()) << s.error().message;
    }
  }

  std::unique_ptr<StoreHarness> h_;
};

using Backends = ::testing::Types<Sqlite, Etcd>;
TYPED_TEST_SUITE(Conformance, Backends);

int64_t revision_of(StoreHarness& h) {
  auto r = h.range(h.prefix());
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? r->revision : -1;
}

TYPED_TEST(Conformance, DescribesItself) {
  StoreHarness& h = *this->h_;
  const std::string kind = std::is_same_v<TypeParam, Sqlite> ? "sqlite" : "etcd";
  h.on_loop([&] {
    EXPECT_EQ(h.store().kind(), kind);
    EXPECT_TRUE(h.store().describe().starts_with(kind + ":")) << h.store().describe();
    EXPECT_EQ(h.store().endpoints().size(), 1u);
  });
  ASSERT_GE(revision_of(h), 0);
  EXPECT_TRUE(h.on_loop([&] { return h.store().reachable(); }));
}

TYPED_TEST(Conformance, PutGetDelete) {
  StoreHarness& h = *this->h_;
  auto base = h.range(h.prefix());
  ASSERT_TRUE(base.ok()) << base.error().message;
  EXPECT_TRUE(base->kvs.empty());

  const int64_t put = h.commit({Op::put(h.k("lb/web"), R"({"name":"web"})")});
  EXPECT_GT(put, base->revision);
  auto kv = h.get(h.k("lb/web"));
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, R"({"name":"web"})");
  EXPECT_EQ(kv->mod_revision, put);
  EXPECT_EQ(revision_of(h), put);

  const int64_t del = h.commit({Op::del(h.k("lb/web"))});
  EXPECT_GT(del, put);
  EXPECT_FALSE(h.get(h.k("lb/web")));
  EXPECT_EQ(revision_of(h), del);
}

TYPED_TEST(Conformance, RevisionsIncreaseAndModRevisions) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  const int64_t a1 = h.commit({Op::put(h.k("a"), "1")});
  const int64_t b1 = h.commit({Op::put(h.k("b"), "1")});
  const int64_t a2 = h.commit({Op::put(h.k("a"), "2")});
  EXPECT_LT(base, a1);
  EXPECT_LT(a1, b1);
  EXPECT_LT(b1, a2);
  EXPECT_EQ(h.get(h.k("a"))->mod_revision, a2);
  EXPECT_EQ(h.get(h.k("b"))->mod_revision, b1);
}

TYPED_TEST(Conformance, MultiOpTxnIsAtomicWithOneRevision) {
  StoreHarness& h = *this->h_;
  h.commit({Op::put(h.k("gone"), "1")});
  // One transaction, one revision, whatever the number of operations; ops apply in order, so the
  // last op on a key decides it (etcd itself refuses a txn naming a key twice).
  const int64_t rev =
      h.commit({Op::put(h.k("c"), "x"), Op::put(h.k("d"), "y"), Op::put(h.k("c"), "z"),
                Op::del(h.k("gone")), Op::put(h.k("e"), "1"), Op::del(h.k("e"))});
  EXPECT_EQ(h.get(h.k("c"))->value, "z");
  EXPECT_EQ(h.get(h.k("c"))->mod_revision, rev);
  EXPECT_EQ(h.get(h.k("d"))->mod_revision, rev);
  EXPECT_FALSE(h.get(h.k("gone")));
  EXPECT_FALSE(h.get(h.k("e")));
  EXPECT_EQ(revision_of(h), rev);
}

TYPED_TEST(Conformance, GuardedConflictChangesNothing) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  const int64_t g1 = h.commit({Op::put(h.k("a"), "1")}, base);
  const int64_t g2 = h.commit({Op::put(h.k("b"), "1")}, g1);
  ASSERT_GT(g2, g1);

  auto stale = h.txn({Op::put(h.k("a"), "lost"), Op::del(h.k("b")), Op::put(h.k("c"), "lost")}, g1);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().message, kConflictMessage);
  auto after = h.range(h.prefix());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->revision, g2);
  EXPECT_EQ(keys_of(*after, h.prefix()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(h.get(h.k("a"))->value, "1");

  // Re-read, retry: the caller's way out of a conflict.
  const int64_t won = h.commit({Op::put(h.k("a"), "won")}, after->revision);
  EXPECT_GT(won, g2);
  EXPECT_EQ(h.get(h.k("a"))->value, "won");
}

TYPED_TEST(Conformance, UnguardedTxnDoesNotMakeGuardedOneConflict) {
  StoreHarness& h = *this->h_;
  const int64_t guarded = h.commit({Op::put(h.k("config"), "1")}, revision_of(h));
  // A node record or a lease write in between, as cluster members do all the time.
  const int64_t node = h.commit({Op::put(h.k("node"), "up")});
  ASSERT_GT(node, guarded);

  const int64_t next = h.commit({Op::put(h.k("config"), "2")}, guarded);
  EXPECT_GT(next, node);
  EXPECT_EQ(h.get(h.k("config"))->value, "2");

  // A guarded write did commit after `guarded`: that one conflicts.
  auto stale = h.txn({Op::put(h.k("config"), "3")}, guarded);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().message, kConflictMessage);
  EXPECT_EQ(h.get(h.k("config"))->value, "2");
}

TYPED_TEST(Conformance, EmptyTransactionCommitsNothingButCompares) {
  StoreHarness& h = *this->h_;
  const int64_t g1 = h.commit({Op::put(h.k("a"), "1")}, revision_of(h));
  EXPECT_EQ(h.commit({}), g1);
  EXPECT_EQ(h.commit({}, g1), g1);
  const int64_t g2 = h.commit({Op::put(h.k("a"), "2")}, g1);
  auto stale = h.txn({}, g1);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().message, kConflictMessage);
  EXPECT_EQ(revision_of(h), g2);
}

TYPED_TEST(Conformance, EmptyKeyIsRefusedAndChangesNothing) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  for (int64_t expected : {int64_t{-1}, base}) {
    auto bad = h.txn({Op::put(h.k("a"), "1"), Op::put("", "no key")}, expected);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("empty key"), std::string::npos) << bad.error().message;
    bad = h.txn({Op::del("")}, expected);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("empty key"), std::string::npos) << bad.error().message;
  }
  EXPECT_EQ(revision_of(h), base);
  EXPECT_FALSE(h.get(h.k("a")));
}

TYPED_TEST(Conformance, PrefixRangeIsSortedAndTakesWildcardsLiterally) {
  StoreHarness& h = *this->h_;
  std::vector<std::string> keys = {"a",           "a_b",   "a_b/1", "a%b/1",
                                   "axb/1",       "aXb/1", "a\\b",  "a\xff",
                                   "a\xff\xff/x", "b",     "a_",    std::string("a\0z", 3)};
  std::vector<Op> ops;
  for (const auto& k : keys) ops.push_back(Op::put(h.k(k), "v:" + k));
  h.commit(ops);

  auto under = [&](const std::string& p) {
    auto r = h.range(h.k(p));
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? keys_of(*r, h.prefix()) : std::vector<std::string>{};
  };
  EXPECT_EQ(under("a_"), (std::vector<std::string>{"a_", "a_b", "a_b/1"}));
  EXPECT_EQ(under("a%"), (std::vector<std::string>{"a%b/1"}));
  EXPECT_EQ(under("a\\"), (std::vector<std::string>{"a\\b"}));
  EXPECT_EQ(under("a\xff"), (std::vector<std::string>{"a\xff", "a\xff\xff/x"}));
  EXPECT_EQ(under(std::string("a\0", 2)), (std::vector<std::string>{std::string("a\0z", 3)}));
  EXPECT_EQ(under("b"), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(under("c").empty());

  // Everything of the test, sorted as bytes ('\xff' after 'z').
  auto all = h.range(h.prefix());
  ASSERT_TRUE(all.ok());
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys_of(*all, h.prefix()), keys);
  for (const auto& kv : all->kvs) EXPECT_EQ("v:" + kv.key.substr(h.prefix().size()), kv.value);
}

TYPED_TEST(Conformance, ValuesAreBytes) {
  StoreHarness& h = *this->h_;
  const std::string binary("a\0b\xff\n\"", 6);
  std::string big(256 << 10, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  h.commit({Op::put(h.k("empty"), ""), Op::put(h.k("binary"), binary), Op::put(h.k("big"), big)});
  EXPECT_EQ(h.get(h.k("empty"))->value, "");
  EXPECT_EQ(h.get(h.k("binary"))->value, binary);
  EXPECT_EQ(h.get(h.k("big"))->value, big);
}

TYPED_TEST(Conformance, AsyncCallsDeliverResults) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  using TxnResult = base::Result<int64_t>;
  using RangeAnswer = base::Result<RangeResult>;

  auto put = h.await<TxnResult>([&](auto done) {
    h.store().txn_async({Op::put(h.k("a"), "1"), Op::put(h.k("b"), "2")}, base, done);
  });
  ASSERT_TRUE(put);
  ASSERT_TRUE(put->ok()) << put->error().message;
  EXPECT_GT(**put, base);

  auto read = h.await<RangeAnswer>([&](auto done) { h.store().range_async(h.prefix(), done); });
  ASSERT_TRUE(read);
  ASSERT_TRUE(read->ok()) << read->error().message;
  EXPECT_EQ((*read)->revision, **put);
  EXPECT_EQ(keys_of(**read, h.prefix()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((*read)->kvs[0].mod_revision, **put);

  auto stale = h.await<TxnResult>(
      [&](auto done) { h.store().txn_async({Op::put(h.k("a"), "lost")}, base, done); });
  ASSERT_TRUE(stale);
  ASSERT_FALSE(stale->ok());
  EXPECT_EQ(stale->error().message, kConflictMessage);

  auto refused =
      h.await<TxnResult>([&](auto done) { h.store().txn_async({Op::put("", "x")}, -1, done); });
  ASSERT_TRUE(refused);
  ASSERT_FALSE(refused->ok());
  EXPECT_NE(refused->error().message.find("empty key"), std::string::npos);
  EXPECT_EQ(h.get(h.k("a"))->value, "1");
}

TYPED_TEST(Conformance, WatchPrefixOneCallPerTransaction) {
  StoreHarness& h = *this->h_;
  h.commit({Op::put(h.k("lb/old"), "1")});
  Seen& seen = h.seen();
  ASSERT_TRUE(h.watch(h.k("lb/"), revision_of(h), seen).ok());

  const int64_t r1 =
      h.commit({Op::put(h.k("lb/a"), "1"), Op::put(h.k("other"), "x"), Op::del(h.k("lb/old"))});
  h.commit({Op::put(h.k("other"), "y")});        // nothing under the prefix: no call
  h.commit({Op::del(h.k("lb/never-existed"))});  // no event: no call
  const int64_t r2 = h.commit({Op::put(h.k("lb/b"), "2")});
  ASSERT_TRUE(h.wait_for([&] { return seen.size() >= 3; }))
      << ::testing::PrintToString(seen.lines());
  EXPECT_EQ(seen.lines(),
            (std::vector<std::string>{Seen::put(r1, "lb/a", "1"), Seen::del(r1, "lb/old"),
                                      Seen::put(r2, "lb/b", "2")}));
  EXPECT_EQ(seen.calls(), (std::vector<size_t>{2, 1}));
}

TYPED_TEST(Conformance, WatchFromNowReplaysNothing) {
  StoreHarness& h = *this->h_;
  h.commit({Op::put(h.k("before"), "1")});
  Seen& seen = h.seen();
  // Committed right after watch() returned, in the same turn of the loop: delivered although
  // etcd cannot have set the watch up yet.
  const int64_t after = h.on_loop([&] {
    EXPECT_TRUE(h.store().watch_checked(h.prefix(), -1, seen.fn(), seen.lost_fn()).ok());
    auto r = h.store().txn({Op::put(h.k("after"), "2")});
    return r.ok() ? *r : -1;
  });
  ASSERT_TRUE(h.wait_for([&] { return seen.size() >= 1; }));
  EXPECT_EQ(seen.lines(), (std::vector<std::string>{Seen::put(after, "after", "2")}));
}

TYPED_TEST(Conformance, WatchReplaysFromPastRevisionThenLive) {
  StoreHarness& h = *this->h_;
  std::vector<int64_t> revs;
  for (int i = 1; i <= 5; ++i)
    revs.push_back(h.commit({Op::put(h.k("k" + std::to_string(i)), "v")}));
  Seen& seen = h.seen();
  ASSERT_TRUE(h.watch(h.prefix(), revs[1], seen).ok());  // after k2
  ASSERT_TRUE(h.wait_for([&] { return seen.size() >= 3; }))
      << ::testing::PrintToString(seen.lines());
  const int64_t r6 = h.commit({Op::put(h.k("k6"), "v")});
  ASSERT_TRUE(h.wait_for([&] { return seen.size() >= 4; }))
      << ::testing::PrintToString(seen.lines());
  EXPECT_EQ(seen.lines(),
            (std::vector<std::string>{Seen::put(revs[2], "k3", "v"), Seen::put(revs[3], "k4", "v"),
                                      Seen::put(revs[4], "k5", "v"), Seen::put(r6, "k6", "v")}));
  EXPECT_EQ(seen.calls(), (std::vector<size_t>{1, 1, 1, 1}));
}

TYPED_TEST(Conformance, WatchFromFutureRevision) {
  StoreHarness& h = *this->h_;
  const int64_t from = revision_of(h) + 2;
  Seen& seen = h.seen();
  ASSERT_TRUE(h.watch(h.prefix(), from, seen).ok());
  std::vector<std::string> expected;
  for (int i = 1; i <= 3; ++i) {
    const int64_t r = h.commit({Op::put(h.k("a"), std::to_string(i))});
    if (r > from) expected.push_back(Seen::put(r, "a", std::to_string(i)));
  }
  ASSERT_FALSE(expected.empty());
  ASSERT_TRUE(h.wait_for([&] { return seen.size() >= expected.size(); }));
  EXPECT_EQ(seen.lines(), expected);
}

TYPED_TEST(Conformance, UnwatchStopsDelivery) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  Seen& stopped = h.seen();
  Seen& sentinel = h.seen();  // still watching: when it has an event, `stopped` would have it too
  auto id = h.watch(h.prefix(), base, stopped);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(h.watch(h.prefix(), base, sentinel).ok());
  const int64_t r1 = h.commit({Op::put(h.k("a"), "1")});
  ASSERT_TRUE(h.wait_for([&] { return stopped.size() == 1 && sentinel.size() == 1; }));

  h.unwatch(*id);
  h.unwatch(*id);  // twice is harmless
  h.commit({Op::put(h.k("a"), "2")});
  ASSERT_TRUE(h.wait_for([&] { return sentinel.size() == 2; }));
  EXPECT_EQ(stopped.lines(), (std::vector<std::string>{Seen::put(r1, "a", "1")}));
}

TYPED_TEST(Conformance, UnwatchFromInsideCallback) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  Seen& once = h.seen();
  Seen& sentinel = h.seen();
  auto id = std::make_shared<WatchId>(kNoWatch);
  h.on_loop([&] {
    *id = h.store().watch(h.prefix(), base, [&h, id, fn = once.fn()](const std::vector<Event>& e) {
      fn(e);
      h.store().unwatch(*id);
    });
  });
  ASSERT_NE(*id, kNoWatch);
  ASSERT_TRUE(h.watch(h.prefix(), base, sentinel).ok());
  const int64_t r1 = h.commit({Op::put(h.k("a"), "1")});
  h.commit({Op::put(h.k("a"), "2")});
  ASSERT_TRUE(h.wait_for([&] { return sentinel.size() == 2; }));
  EXPECT_EQ(once.lines(), (std::vector<std::string>{Seen::put(r1, "a", "1")}));
}

TYPED_TEST(Conformance, CallbackMayReadAndWriteTheStore) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  Seen& read = h.seen();
  Seen& all = h.seen();
  // Answers every "req" with a "resp" of the same value, reading the store first.
  h.on_loop([&] {
    h.store().watch(h.k("req"), base, [&h, &read](const std::vector<Event>& events) {
      auto r = h.store().range(h.k("req"));
      read.add(r.ok() && r->kvs.size() == 1 ? r->kvs[0].value : "range failed");
      auto w = h.store().txn({Op::put(h.k("resp"), events.front().value)});
      if (!w.ok()) read.add("txn failed: " + w.error().message);
    });
  });
  ASSERT_TRUE(h.watch(h.prefix(), base, all).ok());
  const int64_t req = h.commit({Op::put(h.k("req"), "x")});
  ASSERT_TRUE(h.wait_for([&] { return all.size() >= 2; })) << ::testing::PrintToString(all.lines());
  auto resp = h.get(h.k("resp"));
  ASSERT_TRUE(resp);
  EXPECT_GT(resp->mod_revision, req);
  EXPECT_EQ(all.lines(), (std::vector<std::string>{Seen::put(req, "req", "x"),
                                                   Seen::put(resp->mod_revision, "resp", "x")}));
  EXPECT_EQ(read.lines(), (std::vector<std::string>{"x"}));
}

TYPED_TEST(Conformance, WatchFromCompactedRevisionIsReported) {
  StoreHarness& h = *this->h_;
  const int64_t base = revision_of(h);
  h.commit({Op::put(h.k("w/a"), "1")});
  h.commit({Op::put(h.k("w/a"), "2")});
  this->compact_history();
  if (::testing::Test::HasFatalFailure()) return;

  // SQLite knows at once (watch_checked fails); etcd learns it from the stream (`lost` is called).
  // Either way with kCompactedMessage, and no event is delivered.
  Seen& old = h.seen();
  auto id = h.watch(h.k("w/"), base, old);
  std::vector<std::string> reported;
  if (id.ok()) {
    ASSERT_TRUE(h.wait_for([&] { return old.size() >= 1; }));
    reported = old.lines();
  } else {
    reported = {"lost: " + id.error().message};
    EXPECT_EQ(old.size(), 0u);
  }
  EXPECT_EQ(reported, (std::vector<std::string>{"lost: " + std::string(kCompactedMessage)}));

  // The current revision can always be watched, however much was compacted.
  Seen& now = h.seen();
  ASSERT_TRUE(h.watch(h.k("w/"), revision_of(h), now).ok());
  const int64_t r = h.commit({Op::put(h.k("w/a"), "3")});
  ASSERT_TRUE(h.wait_for([&] { return now.size() >= 1; }));
  EXPECT_EQ(now.lines(), (std::vector<std::string>{Seen::put(r, "w/a", "3")}));
  EXPECT_EQ(old.lines(), id.ok() ? reported : std::vector<std::string>{});  // nothing after
}

}  // namespace
}  // namespace fulcrum::store
