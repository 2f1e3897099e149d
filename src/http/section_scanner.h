// SectionScanner: collects one header section — a start line and field lines (a head), or field
// lines alone (a trailer section) — up to its empty line, from bytes that arrive in any split.
// Internal to http/. Pure. [worker]
//
// It enforces what must hold before llhttp ever sees the bytes:
//  - every line ends in CRLF: a bare LF or a CR not followed by LF is a 400;
//  - a field line is `token ":" OWS value OWS`: no whitespace before the colon, no empty name,
//    no obs-fold (a line starting with SP/HTAB), value bytes only VCHAR/obs-text/SP/HTAB
//    (so no NUL, CR, LF or other control character);
//  - the section is at most `max_bytes` (431), has at most `max_fields` field lines (431), and its
//    start line is at most `max_start_line_bytes` (414 when the line has a method-sized first
//    word, else 400).
// Checks run in byte order, so the outcome for a byte stream does not depend on how it was split
// into calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace fulcrum::http::detail {

class SectionScanner {
 public:
  struct Config {
    bool start_line = true;                 // the section begins with a request or status line
    bool skip_leading_empty_lines = false;  // ignore CRLFs before the start line (RFC 9112 §2.2)
    size_t max_bytes = 0;
    size_t max_fields = 0;
    size_t max_start_line_bytes = 0;  // including its CRLF
  };

  enum class Event : uint8_t {
    kNeedMore,   // every byte given was taken
    kStartLine,  // the start line is complete (start_line() is valid); call scan() again
    kComplete,   // the empty line ending the section was taken; fields() and bytes() are valid
    kError,      // error() says why; the scanner is unusable until reset()
  };

  // Starts a new section. Keeps the capacity of the buffers (no allocation once warmed up).
  void reset(const Config& config);

  // Takes a prefix of `data`, copying it into the section buffer; `*used` is the number of bytes
  // taken (all of them for kNeedMore, none meaningful for kError).
  Event scan(std::string_view data, size_t* used);

  const ParseError& error() const { return error_; }
  // The start line without its CRLF. Its bytes begin at offset 0 of bytes(); the view itself is
  // valid only until the next scan() (the buffer may grow), offsets stay valid.
  std::string_view start_line() const;
  // The whole section as received, start line through the final CRLF (leading empty lines not
  // included). Stable once kComplete has been returned, until reset().
  std::string_view bytes() const { return buf_; }
  // The field lines, views into bytes(). Valid after kComplete until reset().
  std::span<const Header> fields() const { return fields_; }
  // Bytes taken since reset(), skipped empty lines included.
  size_t total_bytes() const { return total_; }

 private:
  struct FieldOffsets {
    uint32_t name_offset;
    uint32_t name_size;
    uint32_t value_offset;
    uint32_t value_size;
  };
  enum class Phase : uint8_t { kStartLine, kFields, kDone, kError };

  Event fail(uint16_t status, std::string_view reason);
  Event fail_limit();
  // A line (ending in CRLF) has just been appended at line_start_.
  Event end_line();
  Event end_field_line(std::string_view line);

  Config config_;
  Phase phase_ = Phase::kStartLine;
  std::string buf_;
  std::vector<FieldOffsets> offsets_;
  std::vector<Header> fields_;
  size_t line_start_ = 0;  // offset in buf_ of the line being received
  size_t total_ = 0;
  bool pending_cr_ = false;  // the last byte taken was a CR ending a line's content
  ParseError error_;
};

}  // namespace fulcrum::http::detail
