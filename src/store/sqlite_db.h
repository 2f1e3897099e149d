// Thin RAII wrappers over the SQLite C API for SqliteStore: one connection, statements prepared
// once and reset after every use, and SQLite failures as base::Error naming the operation. This is
// the only header that includes sqlite3.h, and only src/store includes it.
// [control] — a Db and its statements belong to one thread.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace fulcrum::store::sqlite {

// "what: sqlite3_errmsg" with the OS errno when SQLite saw one. Never holds a bound value.
base::Error error(sqlite3* db, std::string_view what);

// One use of a prepared statement: bind, then step. The statement is reset and its bindings
// cleared when the Query goes away, so a cached statement never holds a read open or a value.
class Query {
 public:
  Query(sqlite3_stmt* stmt, std::string_view what) : stmt_(stmt), what_(what) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  // Parameters are 1-based, as in SQL. A failed bind is reported by the next step().
  Query& text(int index, std::string_view s);
  Query& blob(int index, std::string_view s);
  Query& int64(int index, int64_t v);
  Query& null(int index);

  // true: a row is ready; false: done.
  [[nodiscard]] base::Result<bool> step();
  // Runs a statement that returns no rows (or whose rows do not matter).
  [[nodiscard]] base::Status run();

  int64_t column_int64(int index) const;
  // Text or blob bytes of the current row; valid until the next step().
  std::string_view column_bytes(int index) const;
  bool column_is_null(int index) const;

 private:
  void note_bind(int rc);

  sqlite3_stmt* stmt_;
  std::string_view what_;
  int bind_rc_ = SQLITE_OK;
};

// A statement prepared once for the life of the connection.
class Stmt {
 public:
  Stmt() = default;
  Query query() { return Query(stmt_.get(), what_); }

 private:
  friend class Db;
  struct Finalize {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
  std::string_view what_;  // names the operation in errors; points at a literal
};

class Db {
 public:
  // Opens an existing file read-write (never creates it: the caller creates it with its mode).
  [[nodiscard]] static base::Result<Db> open(const std::string& path);

  // Runs one or more statements that return nothing.
  [[nodiscard]] base::Status exec(std::string_view what, const char* sql);
  // The first column of the first row of `sql` as text (PRAGMA answers).
  [[nodiscard]] base::Result<std::string> query_text(std::string_view what, const char* sql);
  // `what` must outlive the statement (a string literal).
  [[nodiscard]] base::Result<Stmt> prepare(std::string_view what, std::string_view sql);

  sqlite3* get() const { return db_.get(); }
  // Rolls back the open transaction, if any (SQLite may already have rolled it back itself).
  void rollback_if_open();

 private:
  struct Close {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::unique_ptr<sqlite3, Close> db_;
};

}  // namespace fulcrum::store::sqlite
