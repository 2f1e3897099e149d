#include "server/access_log_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace fulcrum::server {

namespace {
// Above this much unwritten log, new batches are dropped (and counted in a warning) rather than
// letting a stuck disk grow the process without bound.
constexpr size_t kMaxQueuedBytes = 64u << 20;
}  // namespace

base::Result<std::unique_ptr<AccessLogWriter>> AccessLogWriter::open(const std::string& path) {
  if (path == "-") return std::unique_ptr<AccessLogWriter>(new AccessLogWriter(1, false));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    return base::Error::system(errno, "access log " + path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<AccessLogWriter>(new AccessLogWriter(fd, true));
}

AccessLogWriter::AccessLogWriter(int fd, bool owned) : fd_(fd), owned_(owned) {
  thread_ = std::thread([this] { run(); });
}

AccessLogWriter::~AccessLogWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
  if (owned_) ::close(fd_);
}

void AccessLogWriter::submit(std::string batch) {
  {
    std::lock_guard lock(mu_);
    if (queued_bytes_ + batch.size() > kMaxQueuedBytes) {
      FLOG_WARN("access log: {} bytes dropped, the writer is behind", batch.size());
      return;
    }
    queued_bytes_ += batch.size();
    queue_.push_back(std::move(batch));
  }
  cv_.notify_one();
}

void AccessLogWriter::run() {
  for (;;) {
    std::string batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      batch = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= batch.size();
    }
    size_t done = 0;
    while (done < batch.size()) {
      ssize_t n = ::write(fd_, batch.data() + done, batch.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        FLOG_WARN("access log: write failed: {}", std::strerror(errno));
        break;
      }
      done += static_cast<size_t>(n);
    }
  }
}

}  // namespace fulcrum::server
