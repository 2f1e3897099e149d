#include "api/tokens.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace fulcrum::api {
namespace {

constexpr size_t kTokenBytes = 32;      // 256 random bits
constexpr size_t kMinTokenLength = 16;  // a token file someone wrote by hand
constexpr size_t kMaxTokenLength = 512;

std::string random_token() {
  unsigned char raw[kTokenBytes];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {};
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

base::Result<std::string> read_token(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return base::Error::system(errno, "cannot read token file " + path);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    FLOG_WARN("token file {} is readable by group or others (mode {:o}); chmod 600 it", path,
              st.st_mode & 0777);
  }
  char buf[kMaxTokenLength + 2];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n < 0) return base::Error::system(errno, "cannot read token file " + path);
  std::string token(buf, static_cast<size_t>(n));
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength) {
    return base::Error::internal("token file " + path + ": the token must be 16–512 characters");
  }
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7f) {
      return base::Error::internal("token file " + path + ": the token must be printable ASCII");
    }
  }
  return token;
}

// Creates `path` (mode 0600, O_EXCL) with a fresh token and makes it durable.
base::Result<std::string> create_token(const std::string& path) {
  std::string token = random_token();
  if (token.empty()) return base::Error::system(errno, "getrandom failed");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return base::Error::system(errno, "cannot create token file " + path);
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return base::Error::system(err, "cannot write token file " + path);
  }
  return token;
}

base::Result<std::string> read_or_create(const std::string& path, bool* created) {
  if (::access(path.c_str(), F_OK) == 0) return read_token(path);
  *created = true;
  return create_token(path);
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(
        diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

base::Result<Tokens> load_or_create_tokens(const std::string& data_dir,
                                           const std::string& token_file,
                                           const std::string& reader_token_file) {
  Tokens tokens;
  bool created = false;
  if (!token_file.empty()) {
    auto admin = read_token(token_file);
    if (!admin.ok()) return admin.take_error();
    tokens.admin = std::move(*admin);
    tokens.admin_path = token_file;
  } else {
    tokens.admin_path = data_dir + "/admin.token";
    auto admin = read_or_create(tokens.admin_path, &created);
    if (!admin.ok()) return admin.take_error();
    tokens.admin = std::move(*admin);
  }
  auto reader = reader_token_file.empty() ? read_or_create(data_dir + "/reader.token", &created)
                                          : read_token(reader_token_file);
  if (!reader.ok()) return reader.take_error();
  tokens.reader = std::move(*reader);
  if (constant_time_equal(tokens.admin, tokens.reader)) {
    return base::Error::internal("the admin and reader tokens must differ");
  }
  if (created) FLOG_INFO("API tokens created under {}", data_dir);
  return tokens;
}

Role authorize(const Tokens& tokens, std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size()) return Role::kNone;
  // The scheme is case-insensitive (RFC 9110 §11.1).
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char k = kScheme[i];
    if (k >= 'A' && k <= 'Z') k = static_cast<char>(k - 'A' + 'a');
    if (c != k) return Role::kNone;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  // Both comparisons always run, so the time does not tell which token matched.
  bool admin = constant_time_equal(token, tokens.admin);
  bool reader = constant_time_equal(token, tokens.reader);
  if (admin) return Role::kAdmin;
  if (reader) return Role::kReader;
  return Role::kNone;
}

}  // namespace fulcrum::api
