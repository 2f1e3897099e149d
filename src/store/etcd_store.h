// EtcdStore: the Store of cluster mode, on etcd's v3 JSON gateway (etcd_client.h).
//
// - range(): a linearizable range read; its revision is etcd's header revision.
// - txn(ops, expected): one etcd txn. A guarded txn (expected >= 0) compares the mod_revision of
//   the guard key (EtcdOptions::guard_key) with expected and puts the guard key with a value unique
//   to the attempt, so it conflicts only with other guarded transactions. When an attempt may have
//   reached etcd without an answer (a member killed mid-request) the txn is tried again on another
//   member; if that one reports a conflict, the guard's history says whether the first attempt
//   committed (its value is the attempt's own), so a write is never both applied and refused.
// - watch(): one /v3/watch stream per watch, reconnected from the next revision after a failure
//   (100 ms, doubling up to 2 s); `lost` is called when that revision was compacted meanwhile.
// - Leases and compare-and-put for node records and shared secrets (cluster/).
// [control: async calls on the loop given to open(); sync calls block up to the request timeout]
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/etcd_client.h"
#include "store/store.h"

namespace fulcrum::net {
class EventLoop;
}

namespace fulcrum::store {

// One etcd compare: the key's mod_revision or create_revision (0 when the key is missing) against
// a number, or its value against a string.
struct Compare {
  enum class Target : uint8_t { kModRevision, kCreateRevision, kValue };
  enum class Result : uint8_t { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kModRevision;
  Result result = Result::kEqual;
  int64_t revision = 0;
  std::string value;
};

class EtcdStore final : public Store {
 public:
  // Does not contact etcd (the first request does).
  static base::Result<std::unique_ptr<EtcdStore>> open(net::EventLoop& loop, EtcdOptions options);
  ~EtcdStore() override;

  base::Result<RangeResult> range(std::string_view prefix) override;
  base::Result<int64_t> txn(const std::vector<Op>& ops, int64_t expected_revision) override;
  void range_async(std::string prefix, RangeDone done) override;
  void txn_async(std::vector<Op> ops, int64_t expected_revision, TxnDone done) override;
  WatchId watch(std::string prefix, int64_t from_revision, WatchFn fn) override;
  base::Result<WatchId> watch_checked(std::string prefix, int64_t from_revision, WatchFn fn,
                                      WatchLostFn lost) override;
  void unwatch(WatchId id) override;
  std::string describe() const override;
  std::string kind() const override { return "etcd"; }
  std::vector<std::string> endpoints() const override;
  bool reachable() const override;

  // The ops when every compare holds: the new revision, or nullopt when a compare failed.
  using IfDone = std::function<void(base::Result<std::optional<int64_t>>)>;
  void txn_if(std::vector<Compare> compares, std::vector<Op> ops, IfDone done);
  base::Result<std::optional<int64_t>> txn_if_sync(const std::vector<Compare>& compares,
                                                   const std::vector<Op>& ops);
  // A lease of `ttl_s` seconds: its id.
  void grant_lease(int64_t ttl_s, std::function<void(base::Result<int64_t>)> done);
  // Renews a lease: the seconds it has left, 0 when it is gone (expired or revoked).
  void keep_alive(int64_t lease, std::function<void(base::Result<int64_t>)> done);
  void revoke(int64_t lease, std::function<void(base::Status)> done);
  // Compacts etcd's history up to `revision` (tests, operators' tools).
  base::Status compact_sync(int64_t revision);

  class Impl;

 private:
  explicit EtcdStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fulcrum::store
