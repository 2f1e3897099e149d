#include "l7/access_log.h"

#include <cstdio>
#include <ctime>

namespace fulcrum::l7 {

namespace {
constexpr int64_t kFlushIntervalMs = 200;
constexpr size_t kFlushBytes = 256 * 1024;  // a busy worker hands over sooner
}  // namespace

AccessLog::AccessLog(net::EventLoop& loop, Submit submit)
    : submit_(std::move(submit)), flush_timer_(loop, &AccessLog::on_flush, this) {}

AccessLog::~AccessLog() {
  flush();
}

void AccessLog::begin() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm parts{};
  gmtime_r(&ts.tv_sec, &parts);
  char stamp[40];
  size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &parts);
  buffer_ += "{\"time\":\"";
  buffer_.append(stamp, n);
  char ms[24];
  std::snprintf(ms, sizeof ms, ".%03ldZ", ts.tv_nsec / 1000000);
  buffer_ += ms;
  buffer_ += '"';
  first_field_ = false;
}

void AccessLog::field(std::string_view name, std::string_view value) {
  buffer_ += first_field_ ? "\"" : ",\"";
  first_field_ = false;
  buffer_.append(name);
  buffer_ += "\":\"";
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      buffer_ += '\\';
      buffer_ += c;
    } else if (u < 0x20 || u == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", u);
      buffer_ += esc;
    } else {
      buffer_ += c;
    }
  }
  buffer_ += '"';
}

void AccessLog::field(std::string_view name, uint64_t value) {
  buffer_ += ",\"";
  buffer_.append(name);
  buffer_ += "\":";
  buffer_ += std::to_string(value);
}

void AccessLog::end() {
  buffer_ += "}\n";
  if (buffer_.size() >= kFlushBytes) {
    flush();
  } else if (!flush_timer_.armed()) {
    flush_timer_.arm_in(kFlushIntervalMs);
  }
}

void AccessLog::on_flush(void* self) {
  static_cast<AccessLog*>(self)->flush();
}

void AccessLog::flush() {
  flush_timer_.cancel();
  if (buffer_.empty() || !submit_) return;
  std::string batch;
  batch.swap(buffer_);
  submit_(std::move(batch));
}

}  // namespace fulcrum::l7
