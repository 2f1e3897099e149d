// The durable configuration store: a revisioned key/value space with atomic transactions and
// watches, shaped like etcd v3 so that the embedded SQLite store and the etcd store (etcd_store.h)
// are the same to the layers above. Keys are paths ("/fulcrum/lb/web"), values are JSON documents.
//
// Revisions: every transaction that changes something gets a revision greater than every earlier
// one; a key remembers the revision that last changed it. SQLite counts 1, 2, ... from an empty
// store at 0; etcd's revisions are its own (shared with every other writer of the cluster).
//
// Guarded transactions: a txn() with expected_revision >= 0 commits only if no other guarded
// transaction committed after expected_revision, and always gets a new revision. Writes that are
// not configuration (node records, leases) use expected_revision -1 and never make a guarded
// write conflict.
//
// [control] — the synchronous calls may block (disk, or the network up to the request timeout for
// etcd): use them at start-up and in tests. On a running node use the *_async forms, whose `done`
// runs on the store's thread (at once for SQLite, from its event loop for etcd). One thread uses
// a store; a watch callback may call any method of the store it watches.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace fulcrum::store {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;  // the revision of the transaction that last wrote this key
};

struct Op {
  enum class Kind : uint8_t { kPut, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;  // kPut only
  int64_t lease =
      0;  // kPut only: the key ends with this etcd lease (0: none; SQLite refuses leases)

  static Op put(std::string k, std::string v) { return {Kind::kPut, std::move(k), std::move(v)}; }
  static Op del(std::string k) { return {Kind::kDelete, std::move(k), {}}; }
};

struct Event {
  Op::Kind kind = Op::Kind::kPut;
  std::string key;
  std::string value;  // kPut only
  int64_t revision = 0;
};

// Range results and the revision they were read at (one consistent view).
struct RangeResult {
  std::vector<KeyValue> kvs;  // sorted by key
  int64_t revision = 0;
};

using WatchFn = std::function<void(const std::vector<Event>& events)>;
// Called once when a watch ends for good: its next events were compacted away while it was
// disconnected (kCompactedMessage). The caller re-reads with range() and watches again.
using WatchLostFn = std::function<void(const base::Error& why)>;
using WatchId = uint64_t;
using RangeDone = std::function<void(base::Result<RangeResult>)>;
using TxnDone = std::function<void(base::Result<int64_t>)>;

// Error::message of a failed compare in txn(); the caller can re-read and retry.
inline constexpr std::string_view kConflictMessage = "revision conflict";
// Error::message of watch_checked() when events after from_revision are no longer in the history
// (compacted away); the caller re-reads with range() and watches from that result's revision.
inline constexpr std::string_view kCompactedMessage = "revision compacted";
// What watch() returns when it could not start (watch_checked() says why). Real ids start at 1.
inline constexpr WatchId kNoWatch = 0;

class Store {
 public:
  virtual ~Store() = default;

  // Every key that starts with `prefix` ("" = all), sorted by key, with the current revision.
  virtual base::Result<RangeResult> range(std::string_view prefix) = 0;

  // Applies `ops` in order as one atomic transaction. When expected_revision >= 0 the transaction
  // commits only if the store is still at that revision (else an Error with kConflictMessage and
  // nothing changes). Deleting a missing key is not an error. Returns the new revision; the
  // transaction is durable (fsync'd) before this returns. An empty `ops` commits nothing and
  // returns the current revision (the compare still applies). An empty key is refused.
  virtual base::Result<int64_t> txn(const std::vector<Op>& ops, int64_t expected_revision = -1) = 0;

  // The same, answered through `done` on the store's thread (SQLite: before returning). An error
  // that is neither a conflict nor a refusal means the store could not be reached. For etcd, a
  // guarded txn whose first attempt went unanswered is sent once more (and resolved as EtcdStore
  // says), so it can take up to twice the request timeout; an unguarded one that went unanswered
  // may still have committed.
  virtual void range_async(std::string prefix, RangeDone done) { done(range(prefix)); }
  virtual void txn_async(std::vector<Op> ops, int64_t expected_revision, TxnDone done) {
    done(txn(ops, expected_revision));
  }

  // Calls fn with the events of each transaction committed after `from_revision` whose keys
  // start with `prefix`, in revision order, one call per transaction (events of one call share
  // a revision). Past revisions that are still in the history are replayed first, synchronously
  // from watch(); later ones are delivered on the thread that committed them, after the commit.
  // A negative from_revision means the current revision (no replay). Returns kNoWatch, never
  // calls fn and logs a warning when the watch cannot start; watch_checked() returns the reason.
  // etcd delivers every event (replayed ones too) later, from its event loop, and reconnects by
  // itself; `lost` is called if the events it would resume from were compacted meanwhile.
  virtual WatchId watch(std::string prefix, int64_t from_revision, WatchFn fn) = 0;
  // watch() that reports why it could not start: an Error with kCompactedMessage when from_revision
  // is older than the history kept, or a storage error while replaying.
  virtual base::Result<WatchId> watch_checked(std::string prefix, int64_t from_revision, WatchFn fn,
                                              WatchLostFn lost = {}) = 0;
  // After unwatch() returns, fn is not called again (also when called from inside fn).
  virtual void unwatch(WatchId id) = 0;

  // "sqlite:/path/to/fulcrum.db", "etcd:http://10.0.0.5:2379,..." — shown in logs.
  virtual std::string describe() const = 0;
  // "sqlite" or "etcd".
  virtual std::string kind() const = 0;
  // Where the store is: the SQLite path, or the etcd endpoints.
  virtual std::vector<std::string> endpoints() const = 0;
  // Whether the last exchange with the store succeeded (always true for SQLite).
  virtual bool reachable() const { return true; }
};

// Opens (creating when missing) the SQLite store at `path`: WAL journal, synchronous=FULL, one
// SQLite transaction per txn(). A store left by a killed process opens with every committed
// transaction present and none of the uncommitted ones.
//
// Missing parent directories are created (mode 0700) and a new store file is mode 0600. The file
// is integrity-checked (PRAGMA quick_check) on open; a file that is not a Fulcrum store, a corrupt
// one, or one already open (in this or another process: flock on "<path>.lock") is refused with
// an Error naming the path.
base::Result<std::unique_ptr<Store>> open_sqlite(const std::string& path);

struct SqliteOptions {
  // Events kept in the history for watch replay. The oldest whole revisions are compacted away
  // once the history holds 10% more than this, so compaction runs once per ~10% new events.
  int64_t history_events = 10000;
};
base::Result<std::unique_ptr<Store>> open_sqlite(const std::string& path,
                                                 const SqliteOptions& options);

}  // namespace fulcrum::store
