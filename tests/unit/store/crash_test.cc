// Durability across a killed process: a child commits numbered transactions in a loop and
// acknowledges each revision on a pipe once txn() returned; the parent SIGKILLs it at a random
// moment and checks the store it left. SIGKILL tests the process dying, not the machine: the page
// cache survives, so this pins SQLite's commit protocol and ours (one transaction per txn, revision
// and data together), not the fsync itself.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "unit/store/store_fixture.h"

namespace fulcrum::store {
namespace {

using SqliteStoreCrash = StoreFixture;

constexpr int kMinAcks = 200;    // the brief: kill only after this many acknowledgements
constexpr int kIterations = 20;  // crashes per run, each on the store the last one left
constexpr auto kBudget = std::chrono::seconds(4);  // stop early on a slow or busy disk (< 10 s)
constexpr int kReadTimeoutMs = 10000;  // a child that stops acknowledging fails the test

// "/crash/n/00000042": fixed width so that key order is revision order.
std::string key_for(int64_t revision) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/crash/n/%08lld", static_cast<long long>(revision));
  return buf;
}

// 3 KB per transaction so that WAL checkpoints (every 1000 pages) happen during the run and a
// kill can land in one.
std::string value_for(int64_t revision) {
  return std::string(3000, 'p') + std::to_string(revision);
}

// Commits revision n = current + 1 with key_for(n) and "/crash/last" = n, forever. Never returns.
[[noreturn]] void run_child(const std::string& path, int ack_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a parent that died mid-test
  auto store = open_sqlite(path);
  if (!store.ok()) ::_exit(2);
  auto start = (*store)->range("/crash/last");
  if (!start.ok()) ::_exit(3);
  for (int64_t n = start->revision + 1;; ++n) {
    auto r = (*store)->txn(
        {Op::put(key_for(n), value_for(n)), Op::put("/crash/last", std::to_string(n))}, n - 1);
    if (!r.ok() || *r != n) ::_exit(4);
    if (::write(ack_fd, &n, sizeof n) != static_cast<ssize_t>(sizeof n)) ::_exit(5);
  }
}

// Reads one acknowledgement; false at EOF (the child is dead and everything it wrote was read).
bool read_ack(int fd, int64_t* revision) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, kReadTimeoutMs) != 1) {
    ADD_FAILURE() << "no acknowledgement for " << kReadTimeoutMs << " ms";
    return false;
  }
  // 8-byte writes to a pipe are atomic (< PIPE_BUF), so a read never gets part of one.
  ssize_t n = ::read(fd, revision, sizeof *revision);
  if (n == 0) return false;
  EXPECT_EQ(n, static_cast<ssize_t>(sizeof *revision));
  return n == static_cast<ssize_t>(sizeof *revision);
}

// Runs one child, kills it after at least kMinAcks acknowledgements, and returns every revision
// it acknowledged (also those still in the pipe when it died).
std::vector<int64_t> crash_once(const std::string& path, std::mt19937& rng) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return {};
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    run_child(path, fds[1]);
  }
  ::close(fds[1]);
  std::vector<int64_t> acks;
  int kill_after = kMinAcks + static_cast<int>(rng() % 100);
  int64_t rev = 0;
  while (static_cast<int>(acks.size()) < kill_after && read_ack(fds[0], &rev)) acks.push_back(rev);
  // Somewhere inside the next transaction or two (one takes a few hundred microseconds).
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child ended on its own, status " << status;
  while (read_ack(fds[0], &rev)) acks.push_back(rev);
  ::close(fds[0]);
  EXPECT_GE(static_cast<int>(acks.size()), kMinAcks);
  return acks;
}

// Every acknowledged revision is there; the store is at the last acknowledged revision or the one
// after (committed, killed before the acknowledgement); and holds exactly revisions 1..current.
void check_store(const std::string& path, const std::vector<int64_t>& acked) {
  auto store = open_sqlite(path);  // runs quick_check
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto all = (*store)->range("/crash/n/");
  ASSERT_TRUE(all.ok()) << all.error().message;
  int64_t revision = all->revision;
  ASSERT_FALSE(acked.empty());
  EXPECT_TRUE(revision == acked.back() || revision == acked.back() + 1)
      << "store at revision " << revision << ", last acknowledged " << acked.back();
  ASSERT_EQ(static_cast<int64_t>(all->kvs.size()), revision);
  for (int64_t i = 0; i < revision; ++i) {
    const KeyValue& kv = all->kvs[static_cast<size_t>(i)];
    ASSERT_EQ(kv.key, key_for(i + 1));
    ASSERT_EQ(kv.mod_revision, i + 1);
    ASSERT_EQ(kv.value, value_for(i + 1));
  }
  // Both puts of a transaction or neither.
  auto last = get(**store, "/crash/last");
  ASSERT_TRUE(last);
  EXPECT_EQ(last->value, std::to_string(revision));
}

TEST_F(SqliteStoreCrash, AcknowledgedCommitsSurviveSigkill) {
  const unsigned seed = 20261129;  // fixed: a failure replays with the same kill points
  std::mt19937 rng(seed);
  auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> acked;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i) + ", seed " + std::to_string(seed));
    std::vector<int64_t> acks = crash_once(path(), rng);
    ASSERT_FALSE(acks.empty());
    for (size_t j = 1; j < acks.size(); ++j) ASSERT_EQ(acks[j], acks[j - 1] + 1);
    if (!acked.empty()) {
      // The new child starts after the last acknowledged revision or the one in flight.
      ASSERT_GE(acks.front(), acked.back() + 1);
      ASSERT_LE(acks.front(), acked.back() + 2);
    }
    acked.insert(acked.end(), acks.begin(), acks.end());
    check_store(path(), acked);
    if (HasFatalFailure()) return;
    if (std::chrono::steady_clock::now() - start > kBudget) break;
  }
}

}  // namespace
}  // namespace fulcrum::store
