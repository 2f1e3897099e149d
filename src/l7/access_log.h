// Access log lines (JSON, one per request) collected per worker and handed to a writer thread
// in batches, at most every 200 ms: no disk and no lock on the request path. [worker]
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "net/event_loop.h"

namespace fulcrum::l7 {

class AccessLog {
 public:
  using Submit = std::function<void(std::string batch)>;  // [worker] calls, any thread writes
  AccessLog(net::EventLoop& loop, Submit submit);
  ~AccessLog();  // submits what is left
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Append one line's fields with the helpers below, then end() it.
  void begin();
  void field(std::string_view name, std::string_view value);  // JSON-escaped string
  void field(std::string_view name, uint64_t value);
  void end();

 private:
  static void on_flush(void* self);
  void flush();

  Submit submit_;
  std::string buffer_;
  bool first_field_ = true;
  net::Timer flush_timer_;
};

}  // namespace fulcrum::l7
