#include "store/sqlite_db.h"

#include <climits>

namespace fulcrum::store::sqlite {

base::Error error(sqlite3* db, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : "out of memory";
  int sys = db != nullptr ? sqlite3_system_errno(db) : 0;
  return base::Error::system(sys, std::move(msg));
}

namespace {

base::Error error_code(int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += sqlite3_errstr(rc);
  return base::Error::internal(std::move(msg));
}

// SQLite takes lengths as int; values above its own limit (1 GB by default) fail with TOOBIG
// anyway, so a length that does not fit an int is reported the same way.
bool fits_int(std::string_view s) {
  return s.size() <= static_cast<size_t>(INT_MAX);
}

// A zero-length blob bound with a null pointer would be stored as NULL; any non-null pointer
// stores an empty value.
const char* non_null(std::string_view s) {
  return s.data() != nullptr ? s.data() : "";
}

}  // namespace

Query::~Query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Query::note_bind(int rc) {
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Query& Query::text(int index, std::string_view s) {
  if (!fits_int(s)) {
    note_bind(SQLITE_TOOBIG);
    return *this;
  }
  note_bind(
      sqlite3_bind_text(stmt_, index, non_null(s), static_cast<int>(s.size()), SQLITE_TRANSIENT));
  return *this;
}

Query& Query::blob(int index, std::string_view s) {
  if (!fits_int(s)) {
    note_bind(SQLITE_TOOBIG);
    return *this;
  }
  // SQLITE_STATIC: the caller's bytes outlive the step (the Query is used within one call), so a
  // 1 MiB value is not copied once more.
  note_bind(
      sqlite3_bind_blob(stmt_, index, non_null(s), static_cast<int>(s.size()), SQLITE_STATIC));
  return *this;
}

Query& Query::int64(int index, int64_t v) {
  note_bind(sqlite3_bind_int64(stmt_, index, v));
  return *this;
}

Query& Query::null(int index) {
  note_bind(sqlite3_bind_null(stmt_, index));
  return *this;
}

base::Result<bool> Query::step() {
  if (bind_rc_ != SQLITE_OK) return error_code(bind_rc_, what_);
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return error(sqlite3_db_handle(stmt_), what_);
}

base::Status Query::run() {
  for (;;) {
    auto r = step();
    if (!r.ok()) return r.take_error();
    if (!*r) return {};
  }
}

int64_t Query::column_int64(int index) const {
  return sqlite3_column_int64(stmt_, index);
}

std::string_view Query::column_bytes(int index) const {
  // column_blob before column_bytes, as SQLite asks: the size is then that of the blob form.
  const void* p = sqlite3_column_blob(stmt_, index);
  int n = sqlite3_column_bytes(stmt_, index);
  if (p == nullptr || n <= 0) return {};
  return {static_cast<const char*>(p), static_cast<size_t>(n)};
}

bool Query::column_is_null(int index) const {
  return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

base::Result<Db> Db::open(const std::string& path) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db;
  db.db_.reset(raw);  // sqlite3_open_v2 hands back a handle to close even when it fails
  if (rc != SQLITE_OK) return error(raw, "open");
  return db;
}

base::Status Db::exec(std::string_view what, const char* sql) {
  if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return error(db_.get(), what);
  }
  return {};
}

base::Result<std::string> Db::query_text(std::string_view what, const char* sql) {
  auto stmt = prepare(what, sql);
  if (!stmt.ok()) return stmt.take_error();
  Query q = stmt->query();
  auto row = q.step();
  if (!row.ok()) return row.take_error();
  if (!*row) return std::string();
  return std::string(q.column_bytes(0));
}

base::Result<Stmt> Db::prepare(std::string_view what, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  Stmt stmt;
  stmt.stmt_.reset(raw);
  stmt.what_ = what;
  if (rc != SQLITE_OK) return error(db_.get(), what);
  return stmt;
}

void Db::rollback_if_open() {
  if (sqlite3_get_autocommit(db_.get()) == 0) {
    // A failed ROLLBACK leaves nothing better to do: the connection is closed with the store.
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

}  // namespace fulcrum::store::sqlite
