#include "http/section_scanner.h"

#include <algorithm>
#include <cstring>

#include "http/syntax.h"

namespace fulcrum::http::detail {
namespace {

// A buffer that grew past this for one unusually large head is released at the next reset(), so
// an idle keep-alive connection holds at most this much head storage.
constexpr size_t kKeepCapacityBytes = 8 * 1024;

// When a request line outgrows its bound, a space within this many bytes means a plausible method
// followed by an over-long target (414); no space means the line is not HTTP at all (400). The
// longest method llhttp knows is 12 bytes.
constexpr size_t kMethodWindowBytes = 32;

// Offsets are stored in 32 bits; sections are bounded far below this.
constexpr size_t kMaxSectionBytes = UINT32_MAX;

}  // namespace

void SectionScanner::reset(const Config& config) {
  config_ = config;
  config_.max_bytes = std::min(config_.max_bytes, kMaxSectionBytes);
  if (config_.max_start_line_bytes == 0) config_.max_start_line_bytes = SIZE_MAX;
  phase_ = config.start_line ? Phase::kStartLine : Phase::kFields;
  if (buf_.capacity() > kKeepCapacityBytes) {
    std::string().swap(buf_);
  } else {
    buf_.clear();
  }
  offsets_.clear();
  fields_.clear();
  line_start_ = 0;
  total_ = 0;
  pending_cr_ = false;
  error_ = {};
}

std::string_view SectionScanner::start_line() const {
  if (!config_.start_line || phase_ == Phase::kStartLine) return {};
  // The start line is the first line of buf_; offsets_ begin after it.
  const size_t end = buf_.find('\r');
  return std::string_view(buf_).substr(0, end);
}

SectionScanner::Event SectionScanner::fail(uint16_t status, std::string_view reason) {
  phase_ = Phase::kError;
  error_ = ParseError{status, reason};
  return Event::kError;
}

SectionScanner::Event SectionScanner::fail_limit() {
  return fail(431, "header section too large");
}

SectionScanner::Event SectionScanner::scan(std::string_view data, size_t* used) {
  *used = 0;
  if (phase_ == Phase::kError) return Event::kError;
  if (phase_ == Phase::kDone) return Event::kComplete;
  const char* const p = data.data();
  const size_t n = data.size();
  size_t i = 0;
  while (i < n) {
    // How many more bytes this section (and, while in it, the start line) may take.
    size_t budget = config_.max_bytes - total_;
    bool line_bound = false;
    if (phase_ == Phase::kStartLine) {
      const size_t line_budget = config_.max_start_line_bytes - (buf_.size() - line_start_);
      if (line_budget <= budget) {
        budget = line_budget;
        line_bound = true;
      }
    }
    if (budget == 0) {
      if (!line_bound) return fail_limit();
      const size_t window = std::min(buf_.size(), kMethodWindowBytes);
      if (std::string_view(buf_).substr(0, window).find(' ') == std::string_view::npos) {
        return fail(400, "malformed request line");
      }
      return fail(414, "request-target too long");
    }

    const size_t window = std::min(n - i, budget);
    const auto* lf = static_cast<const char*>(std::memchr(p + i, '\n', window));
    const size_t seg_size = lf != nullptr ? static_cast<size_t>(lf - (p + i)) + 1 : window;
    const std::string_view seg(p + i, seg_size);

    // Line endings: the only CR allowed is the one right before a line's LF (or the last byte
    // taken so far, whose LF may come in the next call). Violations are reported in the order
    // their bytes arrive: a stray CR shows at the byte after it, a bare LF at itself.
    if (pending_cr_ && seg.front() != '\n') return fail(400, "CR not followed by LF");
    const std::string_view before_lf = lf != nullptr ? seg.substr(0, seg_size - 1) : seg;
    const size_t cr = before_lf.find('\r');
    if (cr != std::string_view::npos && cr + 1 != before_lf.size()) {
      return fail(400, "CR not followed by LF");
    }
    if (lf != nullptr) {
      const bool cr_before = before_lf.empty() ? pending_cr_ : before_lf.back() == '\r';
      if (!cr_before) return fail(400, "LF without CR");
      pending_cr_ = false;
    } else {
      pending_cr_ = before_lf.back() == '\r';
    }

    buf_.append(seg);
    total_ += seg_size;
    i += seg_size;
    if (lf != nullptr) {
      const Event event = end_line();
      if (event != Event::kNeedMore) {
        *used = i;
        return event;
      }
    }
  }
  *used = n;
  return Event::kNeedMore;
}

SectionScanner::Event SectionScanner::end_line() {
  const std::string_view line =
      std::string_view(buf_).substr(line_start_, buf_.size() - line_start_ - 2);
  if (phase_ == Phase::kStartLine) {
    if (line.empty()) {
      if (!config_.skip_leading_empty_lines) return fail(400, "empty line before the start line");
      buf_.resize(line_start_);
      return Event::kNeedMore;
    }
    phase_ = Phase::kFields;
    line_start_ = buf_.size();
    return Event::kStartLine;
  }
  if (line.empty()) {
    phase_ = Phase::kDone;
    fields_.clear();
    fields_.reserve(offsets_.size());
    const std::string_view all(buf_);
    for (const FieldOffsets& f : offsets_) {
      fields_.push_back(
          Header{all.substr(f.name_offset, f.name_size), all.substr(f.value_offset, f.value_size)});
    }
    return Event::kComplete;
  }
  const Event event = end_field_line(line);
  line_start_ = buf_.size();
  return event;
}

SectionScanner::Event SectionScanner::end_field_line(std::string_view line) {
  if (is_ows(line.front())) return fail(400, "obsolete line folding");
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return fail(400, "field line without a colon");
  const std::string_view name = line.substr(0, colon);
  if (!is_token(name)) return fail(400, "invalid field name");
  const std::string_view value = trim_ows(line.substr(colon + 1));
  for (char c : value) {
    if (!is_field_value_char(static_cast<unsigned char>(c))) {
      return fail(400, "invalid character in field value");
    }
  }
  if (offsets_.size() >= config_.max_fields) return fail(431, "too many header fields");
  const auto value_offset = static_cast<size_t>(value.data() - buf_.data());
  offsets_.push_back(
      FieldOffsets{static_cast<uint32_t>(line_start_), static_cast<uint32_t>(name.size()),
                   static_cast<uint32_t>(value_offset), static_cast<uint32_t>(value.size())});
  return Event::kNeedMore;
}

}  // namespace fulcrum::http::detail
