#include "unit/store/store_harness.h"

namespace fulcrum::store {

WatchFn Seen::fn() {
  return [this](const std::vector<Event>& events) {
    std::lock_guard lock(mu_);
    calls_.push_back(events.size());
    for (const auto& e : events) {
      EXPECT_EQ(e.revision, events.front().revision) << "one call, one revision";
      lines_.push_back(e.kind == Op::Kind::kPut ? put(e.revision, short_key(e.key), e.value)
                                                : del(e.revision, short_key(e.key)));
    }
  };
}

WatchLostFn Seen::lost_fn() {
  return [this](const base::Error& why) { add("lost: " + why.message); };
}

void Seen::add(std::string line) {
  std::lock_guard lock(mu_);
  lines_.push_back(std::move(line));
}

std::vector<std::string> Seen::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

std::vector<size_t> Seen::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

size_t Seen::size() const {
  std::lock_guard lock(mu_);
  return lines_.size();
}

std::string Seen::short_key(const std::string& key) const {
  return key.starts_with(prefix_) ? key.substr(prefix_.size()) : key;
}

StoreHarness::StoreHarness(std::string prefix) : prefix_(std::move(prefix)) {}

void StoreHarness::start_loop() {
  auto loop = net::EventLoop::create();
  EXPECT_TRUE(loop.ok()) << loop.error().message;
  if (!loop.ok()) return;
  loop_ = std::move(*loop);
  thread_ = std::thread([this] { loop_->run(); });
}

std::unique_ptr<StoreHarness> StoreHarness::sqlite(const std::string& path, SqliteOptions options,
                                                   std::string prefix) {
  std::unique_ptr<StoreHarness> h(new StoreHarness(std::move(prefix)));
  h->start_loop();
  if (!h->loop_) return h;
  h->on_loop([&] {
    auto store = open_sqlite(path, options);
    EXPECT_TRUE(store.ok()) << store.error().message;
    if (store.ok()) h->store_ = std::move(*store);
  });
  return h;
}

std::unique_ptr<StoreHarness> StoreHarness::etcd(EtcdOptions options, std::string prefix) {
  std::unique_ptr<StoreHarness> h(new StoreHarness(std::move(prefix)));
  h->start_loop();
  if (!h->loop_) return h;
  h->on_loop([&] {
    auto store = EtcdStore::open(*h->loop_, std::move(options));
    EXPECT_TRUE(store.ok()) << store.error().message;
    if (!store.ok()) return;
    h->etcd_ = store->get();
    h->store_ = std::move(*store);
  });
  return h;
}

StoreHarness::~StoreHarness() {
  if (!loop_) return;
  on_loop([&] {
    store_.reset();
    etcd_ = nullptr;
  });
  loop_->stop();
  thread_.join();
}

bool StoreHarness::wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (on_loop(pred)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

base::Result<RangeResult> StoreHarness::range(const std::string& prefix) {
  return on_loop([&] { return store_->range(prefix); });
}

std::optional<KeyValue> StoreHarness::get(const std::string& key) {
  auto r = range(key);
  EXPECT_TRUE(r.ok()) << r.error().message;
  if (!r.ok()) return std::nullopt;
  for (auto& kv : r->kvs) {
    if (kv.key == key) return kv;
  }
  return std::nullopt;
}

base::Result<int64_t> StoreHarness::txn(std::vector<Op> ops, int64_t expected) {
  return on_loop([&] { return store_->txn(ops, expected); });
}

int64_t StoreHarness::commit(std::vector<Op> ops, int64_t expected) {
  auto r = txn(std::move(ops), expected);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : -1;
}

base::Result<WatchId> StoreHarness::watch(const std::string& prefix, int64_t from, Seen& seen) {
  return on_loop([&] { return store_->watch_checked(prefix, from, seen.fn(), seen.lost_fn()); });
}

void StoreHarness::unwatch(WatchId id) {
  on_loop([&] { store_->unwatch(id); });
}

Seen& StoreHarness::seen() {
  seen_.push_back(std::make_unique<Seen>(prefix_));
  return *seen_.back();
}

std::vector<std::string> keys_of(const RangeResult& r, const std::string& prefix) {
  std::vector<std::string> keys;
  for (const auto& kv : r.kvs) {
    keys.push_back(kv.key.starts_with(prefix) ? kv.key.substr(prefix.size()) : kv.key);
  }
  return keys;
}

}  // namespace fulcrum::store
