// A Store on an event loop thread of its own, used synchronously by a test; and Seen, what a
// watcher saw.
//
// EtcdStore answers its async calls and delivers watch events on the event loop given to open(),
// and a net::EventLoop runs once (after stop(), run() returns at once), so the loop runs on a
// thread for the whole test and every call to the store is posted to it (on_loop) while the test
// thread waits. The test thread never touches the store itself: one thread uses a store (store.h).
// The SQLite store runs the same way so that the conformance tests read the same for both.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "net/event_loop.h"
#include "store/etcd_store.h"
#include "store/store.h"

namespace fulcrum::store {

// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
inline constexpr std::chrono::milliseconds kWait{5000};

// What a watcher (or an async callback) saw, one line per event: "<revision> put <key>=<value>" or
// "<revision> del <key>", keys without the test's prefix. Written on the loop thread, read on the
// test thread.
class Seen {
 public:
  explicit Seen(std::string prefix) : prefix_(std::move(prefix)) {}

  // A WatchFn recording every call (and checking that the events of one call share a revision).
  WatchFn fn();
  // A WatchLostFn recording "lost: <message>".
  WatchLostFn lost_fn();
  void add(std::string line);

  std::vector<std::string> lines() const;
  std::vector<size_t> calls() const;  // events per call
  size_t size() const;

  // "<revision> put <key>=<value>" for expectations, the key without the prefix.
  static std::string put(int64_t revision, const std::string& key, const std::string& value) {
    return std::to_string(revision) + " put " + key + "=" + value;
  }
  static std::string del(int64_t revision, const std::string& key) {
    return std::to_string(revision) + " del " + key;
  }

 private:
  std::string short_key(const std::string& key) const;

  std::string prefix_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  std::vector<size_t> calls_;
};

class StoreHarness {
 public:
  // The SQLite store at `path`.
  static std::unique_ptr<StoreHarness> sqlite(const std::string& path, SqliteOptions options,
                                              std::string prefix);
  // An etcd store (does not contact etcd yet).
  static std::unique_ptr<StoreHarness> etcd(EtcdOptions options, std::string prefix);
  // Closes the store on its loop (no callback runs after), then stops the loop.
  ~StoreHarness();
  StoreHarness(const StoreHarness&) = delete;
  StoreHarness& operator=(const StoreHarness&) = delete;

  bool ok() const { return store_ != nullptr; }
  // Every key of the test starts with this; k("a") is a key of the test.
  const std::string& prefix() const { return prefix_; }
  std::string k(const std::string& name) const { return prefix_ + name; }

  // The store, only on the loop thread: inside on_loop(), watch and done callbacks.
  Store& store() { return *store_; }
  EtcdStore& etcd_store() { return *etcd_; }
  bool is_etcd() const { return etcd_ != nullptr; }

  // Runs f on the loop thread and returns what it returned.
  template <class F>
  std::invoke_result_t<F&> on_loop(F&& f) {
    std::packaged_task<std::invoke_result_t<F&>()> task(std::ref(f));
    auto result = task.get_future();
    loop_->post([&task] { task(); });
    return result.get();
  }
  // Polls pred on the loop thread until it holds: false when it did not within `timeout`.
  bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait);
  // Starts an async call on the loop and waits for its answer; nullopt after `timeout`.
  //   auto id = h.await<base::Result<int64_t>>([&](auto done) { h.etcd_store().grant_lease(5,
  //   done); });
  template <class T>
  std::optional<T> await(const std::function<void(std::function<void(T)>)>& start,
                         std::chrono::milliseconds timeout = kWait) {
    auto slot = std::make_shared<std::optional<T>>();
    on_loop([&] { start([slot](T v) { slot->emplace(std::move(v)); }); });
    if (!wait_for([&] { return slot->has_value(); }, timeout)) return std::nullopt;
    return on_loop([&] { return std::move(*slot); });
  }

  // The Store calls, each run on the loop thread.
  base::Result<RangeResult> range(const std::string& prefix);
  std::optional<KeyValue> get(const std::string& key);  // the key exactly
  base::Result<int64_t> txn(std::vector<Op> ops, int64_t expected = -1);
  int64_t commit(std::vector<Op> ops, int64_t expected = -1);  // fails the test on an error: -1
  base::Result<WatchId> watch(const std::string& prefix, int64_t from, Seen& seen);
  void unwatch(WatchId id);

  // A Seen that lives as long as the store, so callbacks may use it until the end.
  Seen& seen();

 private:
  StoreHarness(std::string prefix);
  void start_loop();

  std::string prefix_;
  std::deque<std::unique_ptr<Seen>> seen_;  // destroyed after the store: declared before it
  std::unique_ptr<net::EventLoop> loop_;
  std::thread thread_;
  std::unique_ptr<Store> store_;
  EtcdStore* etcd_ = nullptr;
};

// The keys of a range, in its order, without `prefix`.
std::vector<std::string> keys_of(const RangeResult& r, const std::string& prefix = "");

}  // namespace fulcrum::store
