#include "store/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

namespace fulcrum::store {

namespace {

base::Error sys_error(int err, const std::string& what) {
  return base::Error::system(err, what + ": " + std::system_category().message(err));
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// fsync of a directory makes a new entry in it survive a power cut, not only a process crash.
base::Status sync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return sys_error(errno, "open directory " + dir);
  if (::fsync(fd.get()) != 0) return sys_error(errno, "sync directory " + dir);
  return {};
}

std::string parent_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd::Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

base::Status make_parent_dirs(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::filesystem::path cur;
  for (const auto& part : dir) {
    cur /= part;
    // An existing directory may answer EACCES rather than EEXIST when its parent is not
    // writable, so any failure is judged by what is there.
    if (::mkdir(cur.c_str(), 0700) != 0 && !is_dir(cur.string())) {
      return sys_error(errno, "create directory " + cur.string());
    }
  }
  return {};
}

base::Result<Fd> lock_store(const std::string& path) {
  std::string lock_path = path + ".lock";
  Fd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (fd.get() < 0) return sys_error(errno, "open lock file " + lock_path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK) {
      return base::Error::system(err, "store " + path + " is already open (" + lock_path +
                                          " is locked by another process or handle)");
    }
    return sys_error(err, "lock " + lock_path);
  }
  return fd;
}

base::Status create_private_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    int err = errno;
    if (err != EEXIST) return sys_error(err, "create " + path);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return sys_error(errno, "stat " + path);
    if (!S_ISREG(st.st_mode)) return base::Error::internal("not a regular file");
    return {};
  }
  if (::fsync(fd.get()) != 0) return sys_error(errno, "sync " + path);
  return sync_dir(parent_of(path));
}

}  // namespace fulcrum::store
