// What only the etcd store does: endpoints and base64 of the JSON gateway, failures of the
// network and of etcd itself (restart, nothing listening, a member that never answers), leases
// and compare-and-put. The Store contract itself is in conformance_test.cc.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "unit/store/etcd_process.h"
#include "unit/store/store_fixture.h"
#include "unit/store/store_harness.h"

namespace fulcrum::store {
namespace {

using TxnResult = base::Result<int64_t>;
using RangeAnswer = base::Result<RangeResult>;

// The test's own key prefix and guard key (store_harness.h), on `endpoint`.
std::unique_ptr<StoreHarness> etcd_harness(const std::string& endpoint, EtcdOptions options = {}) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(info->test_suite_name()) + "/" + info->name();
  options.endpoints = {endpoint};
  options.guard_key = "/guard/" + name;
  return StoreHarness::etcd(std::move(options), "/t/" + name + "/");
}

// A loopback TCP socket bound to a free port; listening (connections complete and are never
// answered) or not (connections are refused).
class Socket {
 public:
  explicit Socket(bool listening) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (listening) {
      EXPECT_EQ(::listen(fd_, 16), 0);
    }
  }
  ~Socket() { ::close(fd_); }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

int64_t elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

TEST(EtcdEndpoints, Accepted) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*parse_etcd_endpoints("etcd://a:1,b:2"), (V{"http://a:1", "http://b:2"}));
  EXPECT_EQ(*parse_etcd_endpoints("etcd://10.0.0.5:2379"), (V{"http://10.0.0.5:2379"}));
  EXPECT_EQ(*parse_etcd_endpoints("etcd://https://etcd-1.example:2379,http://[::1]:2379/"),
            (V{"https://etcd-1.example:2379", "http://[::1]:2379"}));
  EXPECT_EQ(*parse_etcd_endpoints("etcd://h:65535"), (V{"http://h:65535"}));
}

TEST(EtcdEndpoints, Refused) {
  for (const char* flag : {"",
                           "sqlite",
                           "etcd:",
                           "etcd://",
                           "http://a:1",
                           "https://a:1",
                           "etcd://a",
                           "etcd://a:",
                           "etcd://:1",
                           "etcd://a:0",
                           "etcd://a:65536",
                           "etcd://a:99999999999",
                           "etcd://a:1x",
                           "etcd://a:-1",
                           "etcd://a:1,",
                           "etcd://,a:1",
                           "etcd://a:1,,b:2",
                           "etcd://a b:1",
                           "etcd://a/b:1",
                           "etcd://user@a:1",
                           "etcd://ftp://a:1"}) {
    auto r = parse_etcd_endpoints(flag);
    EXPECT_FALSE(r.ok()) << "'" << flag << "' was accepted";
  }
  // The error names the endpoint that is wrong.
  auto r = parse_etcd_endpoints("etcd://good:1,bad:70000");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("bad:70000"), std::string::npos) << r.error().message;
  r = parse_etcd_endpoints("zookeeper://a:1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("etcd://"), std::string::npos) << r.error().message;
}

TEST(EtcdBase64, KnownVectors) {
  // RFC 4648 section 10.
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    auto back = base64_decode(encoded);
    ASSERT_TRUE(back.ok()) << encoded << ": " << back.error().message;
    EXPECT_EQ(*back, plain);
  }
  EXPECT_EQ(base64_encode(std::string("\xfb\xff\xbf", 3)), "+/+/");
}

TEST(EtcdBase64, RoundTripEveryByteAndLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len = 0; len <= all.size(); ++len) {
    // Every length (padding 0, 1 and 2) and every byte value at every position modulo 3.
    std::string bytes = all.substr(all.size() - len) + all.substr(0, len % 7);
    auto back = base64_decode(base64_encode(bytes));
    ASSERT_TRUE(back.ok()) << back.error().message;
    ASSERT_EQ(*back, bytes) << "length " << bytes.size();
  }
}

TEST(EtcdBase64, StrictDecodeRefuses) {
  for (const char* text : {"Z", "Zg", "Zg=", "Zm9vY", "Zm9v\n", " Zm9v", "Zg==Zg==", "Zm=v", "=Zm9",
                           "Z===", "====", "Zg=a", "Zm9*", "Zm9-", "Zm9_", "Zm9\xff"}) {
    auto r = base64_decode(text);
    EXPECT_FALSE(r.ok()) << "'" << text << "' decoded to '" << (r.ok() ? *r : "") << "'";
  }
  EXPECT_FALSE(base64_decode(std::string("Zm\0v", 4)).ok());
}

using EtcdStoreTest = StoreFixture;

TEST_F(EtcdStoreTest, WatchReconnectsAfterEtcdRestart) {
  // An etcd of its own: the shared one must stay up for the other tests of the process.
  EtcdProcess etcd(dir_ / "etcd");
  ASSERT_TRUE(etcd.start()) << etcd.error();
  EtcdOptions options;
  options.request_timeout_ms = 1000;
  auto hp = etcd_harness(etcd.endpoint(), options);
  StoreHarness& h = *hp;
  ASSERT_TRUE(h.ok());
  auto base = h.range(h.prefix());
  ASSERT_TRUE(base.ok()) << base.error().message;
  Seen& seen = h.seen();
  ASSERT_TRUE(h.watch(h.prefix(), base->revision, seen).ok());
  const int64_t before = h.commit({Op::put(h.k("a"), "before")});
  ASSERT_TRUE(h.wait_for([&] { return seen.size() == 1; }));

  etcd.stop();
  // Down: an answer (an error) within the request timeout, and the store says it is unreachable.
  auto down = h.await<TxnResult>(
      [&](auto done) { h.store().txn_async({Op::put(h.k("a"), "down")}, -1, done); });
  ASSERT_TRUE(down);
  EXPECT_FALSE(down->ok());
  EXPECT_FALSE(h.on_loop([&] { return h.store().reachable(); }));

  ASSERT_TRUE(etcd.start()) << etcd.error();  // same ports, same data
  const int64_t after = h.commit({Op::put(h.k("a"), "after")});
  EXPECT_GT(after, before);
  // The watch reconnects (backoff at most 2 s) and resumes after what it delivered: no repeat.
  ASSERT_TRUE(h.wait_for([&] { return seen.size() >= 2; }, std::chrono::seconds(10)))
      << ::testing::PrintToString(seen.lines());
  EXPECT_EQ(seen.lines(), (std::vector<std::string>{Seen::put(before, "a", "before"),
                                                    Seen::put(after, "a", "after")}));
  EXPECT_TRUE(h.on_loop([&] { return h.store().reachable(); }));
}

TEST_F(EtcdStoreTest, NothingListeningFailsWithinRequestTimeout) {
  Socket closed(/*listening=*/false);  // bound, not listening: connections are refused
  EtcdOptions options;
  options.request_timeout_ms = 300;
  options.connect_timeout_ms = 200;
  auto hp = etcd_harness(closed.endpoint(), options);
  StoreHarness& h = *hp;
  ASSERT_TRUE(h.ok());
  for (int64_t expected : {int64_t{-1}, int64_t{5}}) {
    auto start = std::chrono::steady_clock::now();
    auto r = h.await<TxnResult>(
        [&](auto done) { h.store().txn_async({Op::put(h.k("a"), "1")}, expected, done); });
    ASSERT_TRUE(r) << "no answer";
    ASSERT_FALSE(r->ok());
    EXPECT_NE(r->error().message, kConflictMessage);
    EXPECT_NE(r->error().message.find(closed.endpoint()), std::string::npos) << r->error().message;
    EXPECT_LE(elapsed_ms(start), options.request_timeout_ms + 200);
  }
  auto start = std::chrono::steady_clock::now();
  auto read = h.await<RangeAnswer>([&](auto done) { h.store().range_async(h.prefix(), done); });
  ASSERT_TRUE(read);
  EXPECT_FALSE(read->ok());
  EXPECT_FALSE(h.range(h.prefix()).ok());
  EXPECT_FALSE(h.txn({Op::put(h.k("a"), "1")}).ok());
  EXPECT_LE(elapsed_ms(start), 3 * options.request_timeout_ms + 200);
  EXPECT_FALSE(h.on_loop([&] { return h.store().reachable(); }));
}

TEST_F(EtcdStoreTest, SilentEndpointFailsWithinRequestTimeout) {
  Socket silent(/*listening=*/true);  // the kernel completes connections; nobody answers
  EtcdOptions options;
  options.request_timeout_ms = 300;
  auto hp = etcd_harness(silent.endpoint(), options);
  StoreHarness& h = *hp;
  ASSERT_TRUE(h.ok());
  auto start = std::chrono::steady_clock::now();
  auto r = h.await<TxnResult>(
      [&](auto done) { h.store().txn_async({Op::put(h.k("a"), "1")}, -1, done); });
  ASSERT_TRUE(r) << "no answer";
  ASSERT_FALSE(r->ok());
  EXPECT_NE(r->error().message, kConflictMessage);
  EXPECT_LE(elapsed_ms(start), options.request_timeout_ms + 300);

  start = std::chrono::steady_clock::now();
  auto read = h.await<RangeAnswer>([&](auto done) { h.store().range_async(h.prefix(), done); });
  ASSERT_TRUE(read);
  EXPECT_FALSE(read->ok());
  EXPECT_FALSE(h.range(h.prefix()).ok());
  EXPECT_LE(elapsed_ms(start), 2 * options.request_timeout_ms + 300);
}

TEST_F(EtcdStoreTest, LeasedKeyGoesWithItsLease) {
  EtcdProcess* etcd = shared_etcd();
  ASSERT_NE(etcd, nullptr);
  auto hp = etcd_harness(etcd->endpoint());
  StoreHarness& h = *hp;
  ASSERT_TRUE(h.ok());

  auto lease = h.await<TxnResult>([&](auto done) { h.etcd_store().grant_lease(60, done); });
  ASSERT_TRUE(lease);
  ASSERT_TRUE(lease->ok()) << lease->error().message;
  const int64_t id = **lease;
  EXPECT_NE(id, 0);

  Op leased = Op::put(h.k("node"), "up");
  leased.lease = id;
  h.commit({leased, Op::put(h.k("plain"), "stays")});
  ASSERT_TRUE(h.get(h.k("node")));

  auto ttl = h.await<TxnResult>([&](auto done) { h.etcd_store().keep_alive(id, done); });
  ASSERT_TRUE(ttl);
  ASSERT_TRUE(ttl->ok()) << ttl->error().message;
  EXPECT_GT(**ttl, 0);
  EXPECT_LE(**ttl, 60);

  auto revoked = h.await<base::Status>([&](auto done) { h.etcd_store().revoke(id, done); });
  ASSERT_TRUE(revoked);
  ASSERT_TRUE(revoked->ok()) << revoked->error().message;
  auto left = h.range(h.prefix());
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(keys_of(*left, h.prefix()), (std::vector<std::string>{"plain"}));

  // A revoked lease is gone: keep_alive says 0 seconds left, not an error.
  ttl = h.await<TxnResult>([&](auto done) { h.etcd_store().keep_alive(id, done); });
  ASSERT_TRUE(ttl);
  ASSERT_TRUE(ttl->ok()) << ttl->error().message;
  EXPECT_EQ(**ttl, 0);
}

TEST_F(EtcdStoreTest, CompareAndPut) {
  EtcdProcess* etcd = shared_etcd();
  ASSERT_NE(etcd, nullptr);
  auto hp = etcd_harness(etcd->endpoint());
  StoreHarness& h = *hp;
  ASSERT_TRUE(h.ok());
  // Create-if-missing, as node records and shared secrets are written: the first one wins.
  const Compare missing{
      h.k("secret"), Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}};
  auto first = h.on_loop(
      [&] { return h.etcd_store().txn_if_sync({missing}, {Op::put(h.k("secret"), "first")}); });
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE(first->has_value());
  auto second = h.on_loop(
      [&] { return h.etcd_store().txn_if_sync({missing}, {Op::put(h.k("secret"), "second")}); });
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_FALSE(second->has_value());
  EXPECT_EQ(h.get(h.k("secret"))->value, "first");
  EXPECT_EQ(h.get(h.k("secret"))->mod_revision, **first);

  // By value, asynchronously.
  const Compare is_first{h.k("secret"), Compare::Target::kValue, Compare::Result::kEqual, 0,
                         "first"};
  auto swapped = h.await<base::Result<std::optional<int64_t>>>([&](auto done) {
    h.etcd_store().txn_if({is_first}, {Op::put(h.k("secret"), "swapped")}, done);
  });
  ASSERT_TRUE(swapped);
  ASSERT_TRUE(swapped->ok()) << swapped->error().message;
  EXPECT_TRUE((*swapped)->has_value());
  EXPECT_EQ(h.get(h.k("secret"))->value, "swapped");
}

}  // namespace
}  // namespace fulcrum::store
