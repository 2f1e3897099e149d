// Writes access-log lines to a file (or stdout) on its own thread, so that no worker ever waits
// on the disk. Workers hand over whole batches (their buffer of lines, every 200 ms at most);
// the only lock is taken once per batch, never per request. [any] submit; the writer thread
// owns the fd.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"

namespace fulcrum::server {

class AccessLogWriter {
 public:
  // `path` "-" is standard output; anything else is opened for appending (created 0640).
  static base::Result<std::unique_ptr<AccessLogWriter>> open(const std::string& path);
  ~AccessLogWriter();  // writes what is queued, then stops
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  void submit(std::string batch);

 private:
  explicit AccessLogWriter(int fd, bool owned);
  void run();

  int fd_;
  bool owned_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace fulcrum::server
