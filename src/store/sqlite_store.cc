// SqliteStore: the embedded Store on one SQLite file.
//
// Schema (version 1):
//   meta(name, value)         schema_version, revision (of the last commit), compacted_revision
//                             (history holds every event after it), guarded_revision (of the last
//                             guarded commit; added on first open by this build, = revision then)
//   kv(key, value, create_revision, mod_revision)
//   history(seq, revision, kind, key, value)   one row per event, seq = commit order
//
// One SQLite transaction per txn(): the kv rows, their history rows, the new revision and any
// compaction commit together, so a reopened store's revision always matches its data. The
// revision, compacted revision and history size are also kept in memory; the file lock makes this
// process the only writer, so memory and disk only differ inside txn().
#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <utility>

#include "base/log.h"
#include "store/files.h"
#include "store/sqlite_db.h"
#include "store/store.h"

namespace fulcrum::store {

namespace {

constexpr int64_t kSchemaVersion = 1;
// "FLCR": the SQLite header's application_id field marks a file as a Fulcrum store.
constexpr int64_t kApplicationId = 0x464C4352;
// Only this process writes, but an operator's sqlite3 shell may hold a read lock for a moment.
constexpr int kBusyTimeoutMs = 5000;
// history.kind as stored on disk: never renumber.
constexpr int64_t kStoredPut = 0;
constexpr int64_t kStoredDelete = 1;

constexpr const char* kCreateSchema = R"sql(
BEGIN IMMEDIATE;
CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB NOT NULL, create_revision INTEGER NOT NULL,
                mod_revision INTEGER NOT NULL);
CREATE TABLE history(seq INTEGER PRIMARY KEY, revision INTEGER NOT NULL, kind INTEGER NOT NULL,
                     key TEXT NOT NULL, value BLOB);
CREATE INDEX history_by_revision ON history(revision);
INSERT INTO meta(name, value) VALUES ('schema_version', 1), ('revision', 0),
                                     ('compacted_revision', 0);
PRAGMA application_id = 1179403090;
COMMIT;
)sql";
static_assert(kApplicationId == 1179403090, "kCreateSchema spells the application_id out");

// The smallest string greater than every string that starts with `prefix`, or none when every
// key greater than or equal to it starts with it ("" or only 0xff bytes). Keys compare as bytes.
std::optional<std::string> prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::nullopt;
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

base::Error conflict() {
  return base::Error::internal(std::string(kConflictMessage));
}

// Prefixes an error's message with "store sqlite:<path>: ".
base::Error in_store(const std::string& path, base::Error e) {
  e.message = "store sqlite:" + path + ": " + e.message;
  return e;
}

// What one commit changes, applied to the store's memory only once COMMIT succeeded.
struct Commit {
  int64_t revision = 0;
  int64_t history_events = 0;
  int64_t compacted_revision = 0;
  bool collect_events = false;  // someone is watching
  bool guarded = false;
  std::vector<Event> events;
};

struct Batch {
  int64_t revision = 0;
  std::vector<Event> events;
};

struct Watcher {
  std::string prefix;
  // Shared so that unwatch() from inside the callback does not destroy the running function.
  std::shared_ptr<WatchFn> fn;
  int64_t delivered = 0;  // the last revision this watcher has seen (or chose to skip)
};

// Sets a flag for a scope, also when a callback throws.
class FlagScope {
 public:
  explicit FlagScope(bool& flag) : flag_(flag) { flag_ = true; }
  ~FlagScope() { flag_ = false; }
  FlagScope(const FlagScope&) = delete;
  FlagScope& operator=(const FlagScope&) = delete;

 private:
  bool& flag_;
};

struct Statements {
  sqlite::Stmt begin, commit, put, del, history_add, set_meta;
  sqlite::Stmt range_bounded, range_open, history_since, history_cut, history_drop;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, const SqliteOptions& options, Fd lock, sqlite::Db db)
      : path_(std::move(path)), options_(options), lock_(std::move(lock)), db_(std::move(db)) {}

  [[nodiscard]] base::Status load();

  base::Result<RangeResult> range(std::string_view prefix) override;
  base::Result<int64_t> txn(const std::vector<Op>& ops, int64_t expected_revision) override;
  WatchId watch(std::string prefix, int64_t from_revision, WatchFn fn) override;
  base::Result<WatchId> watch_checked(std::string prefix, int64_t from_revision, WatchFn fn,
                                      WatchLostFn lost) override;
  void unwatch(WatchId id) override { watchers_.erase(id); }
  std::string describe() const override { return "sqlite:" + path_; }
  std::string kind() const override { return "sqlite"; }
  std::vector<std::string> endpoints() const override { return {path_}; }
  int64_t revision() const { return revision_; }

 private:
  base::Status prepare_all();
  base::Result<int64_t> read_meta(const char* name);
  base::Status write(const std::vector<Op>& ops, Commit& c);
  base::Status apply(const Op& op, Commit& c);
  base::Status record(Op::Kind kind, const std::string& key, std::string_view value, Commit& c);
  base::Status set_meta(const char* name, int64_t value);
  base::Status maybe_compact(Commit& c);
  base::Result<std::vector<Batch>> read_history(const std::string& prefix, int64_t after,
                                                int64_t through);
  void replay(WatchId id, const std::vector<Batch>& batches);
  void publish(Batch batch);
  void drain();
  void deliver(const Batch& batch);

  std::string path_;
  SqliteOptions options_;
  Fd lock_;        // released after the connection is closed (members go in reverse order)
  sqlite::Db db_;  // closed after the statements below are finalised
  Statements st_;
  int64_t revision_ = 0;
  int64_t guarded_revision_ = 0;
  int64_t compacted_revision_ = 0;
  int64_t history_events_ = 0;

  std::map<WatchId, Watcher> watchers_;
  WatchId next_watch_id_ = 1;
  // Commits not yet delivered. A commit made by a callback (or during a replay) waits here until
  // the delivery in progress is done, so every watcher sees revisions in order.
  std::deque<Batch> pending_;
  bool delivering_ = false;
};

base::Status SqliteStore::prepare_all() {
  struct Def {
    sqlite::Stmt* stmt;
    const char* what;
    const char* sql;
  };
  const Def defs[] = {
      {&st_.begin, "begin", "BEGIN IMMEDIATE"},
      {&st_.commit, "commit", "COMMIT"},
      {&st_.put, "put",
       "INSERT INTO kv(key, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?3) "
       "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = ?3"},
      {&st_.del, "delete", "DELETE FROM kv WHERE key = ?1"},
      {&st_.history_add, "record history",
       "INSERT INTO history(revision, kind, key, value) VALUES (?1, ?2, ?3, ?4)"},
      {&st_.set_meta, "update meta", "UPDATE meta SET value = ?2 WHERE name = ?1"},
      {&st_.range_bounded, "range",
       "SELECT key, value, mod_revision FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key"},
      {&st_.range_open, "range",
       "SELECT key, value, mod_revision FROM kv WHERE key >= ?1 ORDER BY key"},
      {&st_.history_since, "read history",
       "SELECT revision, kind, key, value FROM history WHERE revision > ?1 AND revision <= ?2 "
       "AND key >= ?3 AND (?4 IS NULL OR key < ?4) ORDER BY seq"},
      {&st_.history_cut, "compact history",
       "SELECT revision FROM history ORDER BY seq LIMIT 1 OFFSET ?1"},
      {&st_.history_drop, "compact history", "DELETE FROM history WHERE revision <= ?1"},
  };
  for (const Def& d : defs) {
    auto stmt = db_.prepare(d.what, d.sql);
    if (!stmt.ok()) return stmt.take_error();
    *d.stmt = std::move(*stmt);
  }
  return {};
}

base::Result<int64_t> SqliteStore::read_meta(const char* name) {
  auto stmt = db_.prepare("read meta", "SELECT value FROM meta WHERE name = ?1");
  if (!stmt.ok()) return stmt.take_error();
  sqlite::Query q = stmt->query();
  q.text(1, name);
  auto row = q.step();
  if (!row.ok()) return row.take_error();
  if (!*row) return base::Error::internal(std::string("meta row '") + name + "' is missing");
  return q.column_int64(0);
}

base::Status SqliteStore::load() {
  auto version = read_meta("schema_version");
  if (!version.ok()) return version.take_error();
  if (*version != kSchemaVersion) {
    return base::Error::internal("schema version " + std::to_string(*version) +
                                 ", this build reads version " + std::to_string(kSchemaVersion));
  }
  auto revision = read_meta("revision");
  if (!revision.ok()) return revision.take_error();
  auto compacted = read_meta("compacted_revision");
  if (!compacted.ok()) return compacted.take_error();
  // Stores written before guarded transactions existed: every commit was guarded.
  if (auto s = db_.exec("add guarded_revision",
                        "INSERT OR IGNORE INTO meta(name, value) SELECT 'guarded_revision', value "
                        "FROM meta WHERE name = 'revision'");
      !s.ok()) {
    return s;
  }
  auto guarded = read_meta("guarded_revision");
  if (!guarded.ok()) return guarded.take_error();
  guarded_revision_ = *guarded;
  auto events = db_.query_text("count history", "SELECT count(*) FROM history");
  if (!events.ok()) return events.take_error();
  revision_ = *revision;
  compacted_revision_ = *compacted;
  history_events_ = std::stoll(*events);  // count(*) is always a decimal integer
  return prepare_all();
}

base::Result<RangeResult> SqliteStore::range(std::string_view prefix) {
  RangeResult out;
  out.revision = revision_;
  std::optional<std::string> end = prefix_end(prefix);
  sqlite::Stmt& stmt = end ? st_.range_bounded : st_.range_open;
  sqlite::Query q = stmt.query();
  q.text(1, prefix);
  if (end) q.text(2, *end);
  for (;;) {
    auto row = q.step();
    if (!row.ok()) return in_store(path_, row.take_error());
    if (!*row) break;
    out.kvs.push_back(KeyValue{std::string(q.column_bytes(0)), std::string(q.column_bytes(1)),
                               q.column_int64(2)});
  }
  return out;
}

base::Result<int64_t> SqliteStore::txn(const std::vector<Op>& ops, int64_t expected_revision) {
  if (expected_revision >= 0 && expected_revision < guarded_revision_) return conflict();
  if (ops.empty()) return revision_;
  for (const Op& op : ops) {
    if (op.key.empty()) return in_store(path_, base::Error::internal("txn: empty key"));
    if (op.lease != 0) return in_store(path_, base::Error::internal("txn: leases need etcd"));
  }
  Commit c;
  c.revision = revision_ + 1;
  c.guarded = expected_revision >= 0;
  c.history_events = history_events_;
  c.compacted_revision = compacted_revision_;
  c.collect_events = !watchers_.empty();
  if (auto s = write(ops, c); !s.ok()) {
    db_.rollback_if_open();
    base::Error e = s.take_error();
    e.message = "txn: " + e.message;
    return in_store(path_, std::move(e));
  }
  revision_ = c.revision;
  if (c.guarded) guarded_revision_ = c.revision;
  history_events_ = c.history_events;
  compacted_revision_ = c.compacted_revision;
  if (c.collect_events && !c.events.empty()) publish(Batch{c.revision, std::move(c.events)});
  return c.revision;  // not revision_: a watch callback may have committed since
}

// Everything between BEGIN IMMEDIATE and COMMIT. With synchronous=FULL in WAL mode, COMMIT returns
// after the WAL is fsync'd: the transaction is durable when this succeeds.
base::Status SqliteStore::write(const std::vector<Op>& ops, Commit& c) {
  if (auto s = st_.begin.query().run(); !s.ok()) return s;
  for (const Op& op : ops) {
    if (auto s = apply(op, c); !s.ok()) return s;
  }
  if (auto s = set_meta("revision", c.revision); !s.ok()) return s;
  if (c.guarded) {
    if (auto s = set_meta("guarded_revision", c.revision); !s.ok()) return s;
  }
  if (auto s = maybe_compact(c); !s.ok()) return s;
  return st_.commit.query().run();
}

base::Status SqliteStore::apply(const Op& op, Commit& c) {
  if (op.kind == Op::Kind::kPut) {
    sqlite::Query q = st_.put.query();
    q.text(1, op.key).blob(2, op.value).int64(3, c.revision);
    if (auto s = q.run(); !s.ok()) return s;
    return record(Op::Kind::kPut, op.key, op.value, c);
  }
  sqlite::Query q = st_.del.query();
  q.text(1, op.key);
  if (auto s = q.run(); !s.ok()) return s;
  // Like etcd, deleting a missing key is no event.
  if (sqlite3_changes(db_.get()) == 0) return {};
  return record(Op::Kind::kDelete, op.key, {}, c);
}

base::Status SqliteStore::record(Op::Kind kind, const std::string& key, std::string_view value,
                                 Commit& c) {
  sqlite::Query q = st_.history_add.query();
  q.int64(1, c.revision).int64(2, kind == Op::Kind::kPut ? kStoredPut : kStoredDelete).text(3, key);
  if (kind == Op::Kind::kPut) {
    q.blob(4, value);
  } else {
    q.null(4);
  }
  if (auto s = q.run(); !s.ok()) return s;
  ++c.history_events;
  if (c.collect_events) c.events.push_back(Event{kind, key, std::string(value), c.revision});
  return {};
}

base::Status SqliteStore::set_meta(const char* name, int64_t value) {
  sqlite::Query q = st_.set_meta.query();
  q.text(1, name).int64(2, value);
  return q.run();
}

// Keeps between history_events and 110% of it: compaction (an index scan over the history) then
// runs once per 10% of new events rather than on every commit. Whole revisions go, so a replay
// never sees part of a transaction.
base::Status SqliteStore::maybe_compact(Commit& c) {
  int64_t keep = options_.history_events;
  if (c.history_events <= keep + keep / 10) return {};
  int64_t cut = 0;
  {
    sqlite::Query q = st_.history_cut.query();
    q.int64(1, c.history_events - keep - 1);  // the newest event that must go
    auto row = q.step();
    if (!row.ok()) return row.take_error();
    if (!*row) return base::Error::internal("compact history: fewer events than counted");
    cut = q.column_int64(0);
  }
  sqlite::Query drop = st_.history_drop.query();
  drop.int64(1, cut);
  if (auto s = drop.run(); !s.ok()) return s;
  c.history_events -= sqlite3_changes64(db_.get());
  c.compacted_revision = cut;
  return set_meta("compacted_revision", cut);
}

WatchId SqliteStore::watch(std::string prefix, int64_t from_revision, WatchFn fn) {
  std::string shown = prefix;
  auto id = watch_checked(std::move(prefix), from_revision, std::move(fn), {});
  if (id.ok()) return *id;
  FLOG_WARN("{}: watch of '{}' from revision {} refused: {}", describe(), shown, from_revision,
            id.error().message);
  return kNoWatch;
}

base::Result<WatchId> SqliteStore::watch_checked(std::string prefix, int64_t from_revision,
                                                 WatchFn fn, WatchLostFn /*lost*/) {
  // One process, one file: history the watch needs is never compacted under a running watch.
  if (from_revision < 0) from_revision = revision_;
  if (from_revision < compacted_revision_) {
    return base::Error::internal(std::string(kCompactedMessage));
  }
  std::vector<Batch> past;
  if (from_revision < revision_) {
    auto read = read_history(prefix, from_revision, revision_);
    if (!read.ok()) return in_store(path_, read.take_error());
    past = std::move(*read);
  }
  WatchId id = next_watch_id_++;
  int64_t delivered = std::max(from_revision, revision_);
  watchers_.emplace(
      id, Watcher{std::move(prefix), std::make_shared<WatchFn>(std::move(fn)), delivered});
  replay(id, past);
  return id;
}

// Events in (after, through] whose key starts with prefix, one Batch per revision. Read in full
// before any callback runs: no statement is open while a callback may use the store.
base::Result<std::vector<Batch>> SqliteStore::read_history(const std::string& prefix, int64_t after,
                                                           int64_t through) {
  std::vector<Batch> out;
  std::optional<std::string> end = prefix_end(prefix);
  sqlite::Query q = st_.history_since.query();
  q.int64(1, after).int64(2, through).text(3, prefix);
  if (end) {
    q.text(4, *end);
  } else {
    q.null(4);
  }
  for (;;) {
    auto row = q.step();
    if (!row.ok()) return row.take_error();
    if (!*row) break;
    int64_t revision = q.column_int64(0);
    if (out.empty() || out.back().revision != revision) out.push_back(Batch{revision, {}});
    bool put = q.column_int64(1) == kStoredPut;
    out.back().events.push_back(
        Event{put ? Op::Kind::kPut : Op::Kind::kDelete, std::string(q.column_bytes(2)),
              put ? std::string(q.column_bytes(3)) : std::string(), revision});
  }
  return out;
}

// Replays to one new watcher. Commits its callback makes are held in pending_ and delivered after
// the replay (unless a delivery further up the stack will do it).
void SqliteStore::replay(WatchId id, const std::vector<Batch>& batches) {
  bool outermost = !delivering_;
  {
    std::optional<FlagScope> scope;
    if (outermost) scope.emplace(delivering_);
    for (const Batch& batch : batches) {
      auto it = watchers_.find(id);
      if (it == watchers_.end()) break;  // unwatched from inside its callback
      std::shared_ptr<WatchFn> fn = it->second.fn;
      (*fn)(batch.events);
    }
  }
  if (outermost) drain();
}

void SqliteStore::publish(Batch batch) {
  pending_.push_back(std::move(batch));
  if (!delivering_) drain();
}

void SqliteStore::drain() {
  FlagScope scope(delivering_);
  while (!pending_.empty()) {
    Batch batch = std::move(pending_.front());
    pending_.pop_front();
    deliver(batch);
  }
}

void SqliteStore::deliver(const Batch& batch) {
  std::vector<WatchId> ids;
  ids.reserve(watchers_.size());
  for (const auto& [id, w] : watchers_) ids.push_back(id);
  std::vector<Event> matching;
  for (WatchId id : ids) {
    auto it = watchers_.find(id);  // a callback may have removed it
    if (it == watchers_.end() || it->second.delivered >= batch.revision) continue;
    Watcher& w = it->second;
    w.delivered = batch.revision;
    const std::vector<Event>* events = &batch.events;
    if (!w.prefix.empty()) {
      matching.clear();
      for (const Event& e : batch.events) {
        if (e.key.starts_with(w.prefix)) matching.push_back(e);
      }
      events = &matching;
    }
    if (events->empty()) continue;
    std::shared_ptr<WatchFn> fn = w.fn;  // `w` may not survive the call
    (*fn)(*events);
  }
}

// Reads the header and the schema table: a new (empty) file, a Fulcrum store, or neither.
base::Result<bool> is_new_store(sqlite::Db& db) {
  auto app = db.query_text("read header", "PRAGMA application_id");
  if (!app.ok()) return app.take_error();
  auto tables = db.query_text("read schema", "SELECT count(*) FROM sqlite_schema");
  if (!tables.ok()) return tables.take_error();
  if (*app == std::to_string(kApplicationId)) return false;
  if (*app == "0" && *tables == "0") return true;
  return base::Error::internal("is not a Fulcrum store (application_id " + *app + ", " + *tables +
                               " schema objects)");
}

// An SQLite failure while opening: a file that is not a database, or a damaged one, is named as
// such; anything else keeps SQLite's words.
base::Error open_failure(sqlite::Db& db, base::Error e) {
  int rc = sqlite3_errcode(db.get()) & 0xff;
  if (rc == SQLITE_NOTADB) e.message = "is not a Fulcrum store (" + e.message + ")";
  if (rc == SQLITE_CORRUPT) e.message = "is corrupt (" + e.message + ")";
  return e;
}

// Opens the file, refuses what is not a sound Fulcrum store, switches to WAL and creates the
// schema in a new file. Nothing is written to a file that turns out not to be a store.
base::Result<sqlite::Db> open_db(const std::string& path) {
  auto db = sqlite::Db::open(path);
  if (!db.ok()) return db.take_error();
  sqlite3_busy_timeout(db->get(), kBusyTimeoutMs);
  auto fresh = is_new_store(*db);
  if (!fresh.ok()) return open_failure(*db, fresh.take_error());
  auto check = db->query_text("quick_check", "PRAGMA quick_check(1)");
  if (!check.ok()) return open_failure(*db, check.take_error());
  if (*check != "ok") return base::Error::internal("is corrupt (quick_check: " + *check + ")");
  auto mode = db->query_text("set journal mode", "PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.take_error();
  if (*mode != "wal") return base::Error::internal("cannot use WAL (journal mode " + *mode + ")");
  if (auto s = db->exec("set synchronous", "PRAGMA synchronous=FULL"); !s.ok())
    return s.take_error();
  if (*fresh) {
    if (auto s = db->exec("create schema", kCreateSchema); !s.ok()) {
      db->rollback_if_open();
      return s.take_error();
    }
  }
  return db;
}

}  // namespace

base::Result<std::unique_ptr<Store>> open_sqlite(const std::string& path) {
  return open_sqlite(path, SqliteOptions{});
}

base::Result<std::unique_ptr<Store>> open_sqlite(const std::string& path,
                                                 const SqliteOptions& options) {
  if (path.empty()) return base::Error::internal("store: empty path");
  if (options.history_events < 0) return base::Error::internal("store: history_events < 0");
  if (auto s = make_parent_dirs(path); !s.ok()) return in_store(path, s.take_error());
  auto lock = lock_store(path);
  if (!lock.ok()) return lock.take_error();  // already names the path
  if (auto s = create_private_file(path); !s.ok()) return in_store(path, s.take_error());
  auto db = open_db(path);
  if (!db.ok()) return in_store(path, db.take_error());
  auto store = std::make_unique<SqliteStore>(path, options, std::move(*lock), std::move(*db));
  if (auto s = store->load(); !s.ok()) return in_store(path, s.take_error());
  FLOG_INFO("{} opened at revision {}", store->describe(), store->revision());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace fulcrum::store
