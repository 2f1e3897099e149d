#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "unit/store/store_fixture.h"

namespace fulcrum::store {
namespace {

using SqliteStore = StoreFixture;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The contract both stores share is in conformance_test.cc; here what only SQLite does.

TEST_F(SqliteStore, CountsRevisionsFromZero) {
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->describe(), "sqlite:" + path());
  EXPECT_EQ(store->kind(), "sqlite");
  EXPECT_EQ(store->endpoints(), (std::vector<std::string>{path()}));
  auto empty = store->range("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->kvs.empty());
  EXPECT_EQ(empty->revision, 0);
  EXPECT_EQ(commit(*store, {}), 0);

  EXPECT_EQ(commit(*store, {Op::put("/a", "1")}), 1);
  EXPECT_EQ(commit(*store, {Op::put("/b", "1"), Op::put("/c", "1")}), 2);
  EXPECT_EQ(get(*store, "/a")->mod_revision, 1);
  EXPECT_EQ(get(*store, "/c")->mod_revision, 2);
  EXPECT_EQ(commit(*store, {Op::del("/a")}), 3);

  // Deleting a missing key commits a revision of its own here (etcd's revision stays).
  EXPECT_EQ(commit(*store, {Op::del("/missing")}), 4);
  EXPECT_EQ(store->range("")->revision, 4);
}

TEST_F(SqliteStore, LeasesAreRefused) {
  auto store = open();
  ASSERT_TRUE(store);
  Op leased = Op::put("/node", "up");
  leased.lease = 42;
  auto r = store->txn({Op::put("/a", "1"), leased});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("leases need etcd"), std::string::npos) << r.error().message;
  EXPECT_EQ(store->range("")->revision, 0);
  EXPECT_FALSE(get(*store, "/a"));
}

// The last guarded revision is stored with the data: a reopened store still refuses a stale write
// and still lets an unguarded write in between pass.
TEST_F(SqliteStore, GuardedRevisionSurvivesReopen) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    EXPECT_EQ(commit(*store, {Op::put("/config", "1")}, 0), 1);
    EXPECT_EQ(commit(*store, {Op::put("/config", "2")}, 1), 2);
    EXPECT_EQ(commit(*store, {Op::put("/node", "up")}), 3);
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto stale = store->txn({Op::put("/config", "lost")}, 1);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().message, kConflictMessage);
  EXPECT_EQ(commit(*store, {Op::put("/config", "3")}, 2), 4);
}

// A store written before guarded transactions existed has no guarded_revision: every commit it
// holds was guarded, so the first open takes the current revision.
TEST_F(SqliteStore, StoreWithoutGuardedRevisionTakesTheCurrentOne) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    commit(*store, {Op::put("/a", "1")});
    commit(*store, {Op::put("/a", "2")});
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DELETE FROM meta WHERE name = 'guarded_revision'", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  EXPECT_EQ(sqlite3_changes(db), 1);
  sqlite3_close(db);

  auto store = open();
  ASSERT_TRUE(store);
  auto stale = store->txn({Op::put("/a", "lost")}, 1);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().message, kConflictMessage);
  EXPECT_EQ(commit(*store, {Op::put("/a", "3")}, 2), 3);
}

TEST_F(SqliteStore, ReopenKeepsEverything) {
  std::vector<KeyValue> before;
  {
    auto store = open();
    ASSERT_TRUE(store);
    commit(*store, {Op::put("/a", "1"), Op::put("/b", "2")});
    commit(*store, {Op::put("/c", "3")});
    commit(*store, {Op::del("/b"), Op::put("/a", "4")});
    before = store->range("")->kvs;
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto after = store->range("");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->revision, 3);
  ASSERT_EQ(after->kvs.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after->kvs[i].key, before[i].key);
    EXPECT_EQ(after->kvs[i].value, before[i].value);
    EXPECT_EQ(after->kvs[i].mod_revision, before[i].mod_revision);
  }
  EXPECT_EQ(commit(*store, {Op::put("/d", "5")}), 4);
}

TEST_F(SqliteStore, NewFilesArePrivate) {
  auto store = open();
  ASSERT_TRUE(store);
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ / "state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  commit(*store, {Op::put("/a", "1")});
  ASSERT_EQ(::stat((path() + "-wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteStore, SecondOpenIsRefused) {
  auto first = open();
  ASSERT_TRUE(first);
  auto second = open_sqlite(path());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find(path()), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find("already open"), std::string::npos)
      << second.error().message;
  first.reset();
  EXPECT_TRUE(open());
}

TEST_F(SqliteStore, TextFileIsRefusedAndLeftAlone) {
  std::filesystem::create_directories(dir_ / "state");
  const std::string text = "listen: 80\nthis is a YAML file, not a store\n";
  std::ofstream(path()) << text;
  auto store = open_sqlite(path());
  ASSERT_FALSE(store.ok());
  const std::string& msg = store.error().message;
  EXPECT_NE(msg.find(path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a Fulcrum store"), std::string::npos) << msg;
  EXPECT_EQ(read_file(path()), text);
}

TEST_F(SqliteStore, OtherSqliteDatabaseIsRefused) {
  std::filesystem::create_directories(dir_ / "state");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE users(name TEXT)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = open_sqlite(path());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("not a Fulcrum store"), std::string::npos)
      << store.error().message;
}

TEST_F(SqliteStore, CorruptStoreIsRefused) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    std::vector<Op> ops;
    for (int i = 0; i < 200; ++i) ops.push_back(Op::put("/k/" + std::to_string(i), "value"));
    commit(*store, ops);
  }  // closing checkpoints the WAL into the file
  // Overwrite pages 2-4 (4 KiB pages): table roots and B-tree pages, not the header.
  {
    std::fstream f(path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    std::string junk(3 * 4096, '\x55');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto store = open_sqlite(path());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find(path()), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("corrupt"), std::string::npos) << store.error().message;
}

TEST_F(SqliteStore, LargeValue) {
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  {
    auto store = open();
    ASSERT_TRUE(store);
    commit(*store, {Op::put("/big", big)});
    EXPECT_EQ(get(*store, "/big")->value, big);
  }
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(get(*store, "/big")->value, big);
}

TEST_F(SqliteStore, TenThousandKeys) {
  auto store = open();
  ASSERT_TRUE(store);
  std::vector<Op> ops;
  for (int i = 0; i < 10000; ++i) {
    ops.push_back(Op::put("/lb/" + std::to_string(i % 100) + "/" + std::to_string(i), "v"));
  }
  EXPECT_EQ(commit(*store, ops), 1);
  auto all = store->range("");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->kvs.size(), 10000u);
  EXPECT_TRUE(std::is_sorted(all->kvs.begin(), all->kvs.end(),
                             [](const auto& a, const auto& b) { return a.key < b.key; }));
  // "/lb/7/" and not "/lb/70/".
  EXPECT_EQ(store->range("/lb/7/")->kvs.size(), 100u);

  // Deleting half in a second transaction pushes the history past 110% of 10,000 events:
  // revision 1 is compacted away as a whole.
  std::vector<Op> dels;
  for (int i = 0; i < 5000; ++i) {
    dels.push_back(Op::del("/lb/" + std::to_string(i % 100) + "/" + std::to_string(i)));
  }
  EXPECT_EQ(commit(*store, dels), 2);
  EXPECT_EQ(store->range("")->kvs.size(), 5000u);
  auto old = store->watch_checked("", 0, [](const std::vector<Event>&) {});
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().message, kCompactedMessage);
  size_t replayed = 0;
  auto recent = store->watch_checked(
      "", 1, [&](const std::vector<Event>& events) { replayed += events.size(); });
  ASSERT_TRUE(recent.ok()) << recent.error().message;
  EXPECT_EQ(replayed, 5000u);
}

}  // namespace
}  // namespace fulcrum::store
