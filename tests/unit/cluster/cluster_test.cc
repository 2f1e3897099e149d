// The pure parts of cluster mode: the copy's revision from a range read, the shared secrets'
// format, and the last-known-good file. (Everything that talks to etcd is tested with real etcd
// members: tests/unit/store and tests/integration/test_cluster.py.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cluster/changes.h"
#include "cluster/cluster.h"
#include "cluster/follower.h"
#include "store/etcd_client.h"

namespace fulcrum::cluster {
namespace {

std::string tickets_json(const std::string& cur, const std::string& prev, int64_t ms) {
  return R"({"current":")" + store::base64_encode(cur) + R"(","previous":")" +
         store::base64_encode(prev) + R"(","rotated_ms":)" + std::to_string(ms) + "}";
}

TEST(Follower, SplitTakesTheGuardsRevisionAndLeavesItOut) {
  store::RangeResult read;
  read.revision = 900;  // etcd's header: moved by writes elsewhere
  read.kvs = {
      {"/fulcrum/acl/a", "{}", 40}, {"/fulcrum/lb/web", "{}", 12}, {"/fulcrum/txn", "x", 55}};
  auto [kvs, revision] = Follower::split(read, "/fulcrum/txn");
  EXPECT_EQ(revision, 55) << "the last configuration transaction, not the header";
  EXPECT_EQ(kvs.size(), 2u);
  EXPECT_FALSE(kvs.count("/fulcrum/txn"));
}

TEST(Follower, SplitWithoutGuardTakesTheNewestKey) {
  store::RangeResult read;
  read.revision = 900;
  read.kvs = {{"/fulcrum/acl/a", "{}", 40}, {"/fulcrum/lb/web", "{}", 12}};
  EXPECT_EQ(Follower::split(read, "/fulcrum/txn").second, 40);
  EXPECT_EQ(Follower::split(store::RangeResult{}, "/fulcrum/txn").second, 0);
}

TEST(Secrets, ParsedOnlyWhenWhole) {
  const std::string a(80, 'a'), b(80, 'b');
  KeyMap kvs{{kStickyKey, "00000000000000ff"}, {kTicketsKey, tickets_json(a, b, 1234)}};
  auto s = secrets_of(kvs);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sticky, 255u);
  EXPECT_EQ(s->ticket_current, a);
  EXPECT_EQ(s->ticket_previous, b);
  EXPECT_EQ(s->rotated_ms, 1234);

  EXPECT_FALSE(secrets_of({{kStickyKey, "ff"}})) << "tickets missing";
  EXPECT_FALSE(secrets_of({{kTicketsKey, tickets_json(a, b, 1)}})) << "sticky missing";
  EXPECT_FALSE(secrets_of({{kStickyKey, "zz"}, {kTicketsKey, tickets_json(a, b, 1)}}));
  EXPECT_FALSE(secrets_of({{kStickyKey, "ff"}, {kTicketsKey, tickets_json("short", b, 1)}}))
      << "a ticket key is 80 bytes";
  EXPECT_FALSE(secrets_of({{kStickyKey, "ff"}, {kTicketsKey, "not json"}}));
}

TEST(Changes, DiffPutsThenDeletes) {
  KeyMap before{{"/a", "1"}, {"/b", "1"}, {"/c", "1"}};
  KeyMap after{{"/a", "1"}, {"/b", "2"}, {"/d", "1"}};
  auto ops = diff(before, after);
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].kind, store::Op::Kind::kPut);
  EXPECT_EQ(ops[0].key, "/b");
  EXPECT_EQ(ops[0].value, "2");
  EXPECT_EQ(ops[1].key, "/d");
  EXPECT_EQ(ops[2].kind, store::Op::Kind::kDelete);
  EXPECT_EQ(ops[2].key, "/c");
  EXPECT_TRUE(diff(after, after).empty());
}

TEST(Changes, ReplayCarriesADocumentOntoOtherKeysChanges) {
  KeyMap base{{"/lb/a", "1"}, {"/lb/b", "1"}, {"/lb/gone", "1"}};
  KeyMap mine{
      {"/lb/a", "2"}, {"/lb/b", "1"}, {"/lb/new", "1"}};  // changes a, adds new, deletes gone
  KeyMap fresh{{"/lb/a", "1"}, {"/lb/b", "9"}, {"/lb/gone", "1"}, {"/lb/theirs", "1"}};
  auto merged = replay(base, mine, fresh);
  ASSERT_TRUE(merged.ok()) << merged.error().message;
  EXPECT_EQ(*merged,
            (KeyMap{{"/lb/a", "2"}, {"/lb/b", "9"}, {"/lb/new", "1"}, {"/lb/theirs", "1"}}))
      << "theirs and mine, both kept";
}

TEST(Changes, ReplayRefusesAKeyBothChanged) {
  KeyMap base{{"/lb/a", "1"}};
  KeyMap mine{{"/lb/a", "2"}};
  auto changed = replay(base, mine, KeyMap{{"/lb/a", "3"}});
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.error().message.find("/lb/a"), std::string::npos);
  EXPECT_FALSE(replay(base, mine, KeyMap{}).ok()) << "deleted by the other writer";
  EXPECT_FALSE(replay(KeyMap{}, mine, KeyMap{{"/lb/a", "5"}}).ok()) << "created by both";
  EXPECT_TRUE(replay(base, base, KeyMap{{"/lb/a", "3"}}).ok()) << "nothing of mine changes";
}

class CacheFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("fulcrum_cluster_cache_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path() const { return (dir_ / "cluster-cache.json").string(); }
  std::filesystem::path dir_;
};

TEST_F(CacheFile, RoundTripsPrivately) {
  Cache c;
  c.config = {{"/fulcrum/lb/web", R"({"name":"web"})"}, {"/fulcrum/acl/x", "{\"q\":\"\\\"\"}"}};
  c.revision = 77;
  Secrets s;
  s.sticky = 0x0123456789abcdefULL;
  s.ticket_current = std::string(80, '\x01');
  s.ticket_previous = std::string(80, '\xfe');
  s.rotated_ms = 99;
  c.secrets = s;
  ASSERT_TRUE(save_cache(path(), c).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "it holds certificate keys and the shared secrets";
  EXPECT_FALSE(std::filesystem::exists(path() + ".tmp"));

  auto loaded = load_cache(path());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(*loaded);
  EXPECT_EQ((*loaded)->config, c.config);
  EXPECT_EQ((*loaded)->revision, 77);
  ASSERT_TRUE((*loaded)->secrets);
  EXPECT_EQ((*loaded)->secrets->sticky, s.sticky);
  EXPECT_EQ((*loaded)->secrets->ticket_current, s.ticket_current);
  EXPECT_EQ((*loaded)->secrets->ticket_previous, s.ticket_previous);
}

TEST_F(CacheFile, MissingIsNothingAndGarbageIsAnError) {
  auto missing = load_cache(path());
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(*missing);
  std::ofstream(path()) << R"({"format":"something else","config":{}})";
  auto other = load_cache(path());
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message.find(path()), std::string::npos) << other.error().message;
  std::ofstream(path()) << R"({"format":"fulcrum-last-known-good/1","config":{"/k":5}})";
  EXPECT_FALSE(load_cache(path()).ok()) << "values are strings";
}

}  // namespace
}  // namespace fulcrum::cluster
