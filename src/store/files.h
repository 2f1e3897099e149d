// The files around a SQLite store: its directory, the store file created with a private mode, and
// the lock that keeps a second process (or a second open in this one) away. [control]
#pragma once

#include <string>

#include "base/result.h"

namespace fulcrum::store {

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& other) noexcept;
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Creates the missing directories above `path`, each mode 0700 (a store holds configuration that
// may include secrets; only the daemon's user reads it).
[[nodiscard]] base::Status make_parent_dirs(const std::string& path);

// Takes an exclusive flock on "<path>.lock" (created mode 0600 when missing) without waiting. The
// lock lasts as long as the returned Fd; the lock file itself stays (removing it would race with
// a process that just opened it).
[[nodiscard]] base::Result<Fd> lock_store(const std::string& path);

// Creates `path` mode 0600 when missing, durably (file and directory entry synced), so that SQLite
// never creates it with its default mode. Refuses a path that exists but is not a regular file.
[[nodiscard]] base::Status create_private_file(const std::string& path);

}  // namespace fulcrum::store
