#include "http/message_parser.h"

#include <cassert>
#include <new>

#include "llhttp.h"

namespace fulcrum::http::detail {
namespace {

static_assert(sizeof(llhttp_t) <= 128, "raise MessageParser::kLlhttpStorageBytes");
static_assert(alignof(llhttp_t) <= 8, "raise the alignment of MessageParser::llhttp_");

// Method, two spaces, "HTTP/1.1" and CRLF around a request-target: a request line may be this much
// longer than Limits::max_uri_bytes before the scanner stops it with 414 (an over-long target on a
// complete line is caught by RequestParser with the exact limit).
constexpr size_t kRequestLineOverheadBytes = 64;

llhttp_t* ll(unsigned char* storage) {
  return std::launder(reinterpret_cast<llhttp_t*>(storage));
}

}  // namespace

struct MessageParser::Callbacks {
  static MessageParser* self(llhttp_t* parser) { return static_cast<MessageParser*>(parser->data); }

  // 1 tells llhttp the message has no body whatever its headers say (HEAD, 1xx, 204, 304).
  static int on_headers_complete(llhttp_t* parser) { return self(parser)->skip_body_ ? 1 : 0; }

  // Pausing makes llhttp_execute() return right after this piece, so each piece becomes one kBody
  // step. llhttp may report empty pieces at the end of a buffer; those are not worth a step.
  static int on_body(llhttp_t* parser, const char* at, size_t length) {
    if (length == 0) return HPE_OK;
    MessageParser* p = self(parser);
    p->event_ = Event::kBody;
    p->event_body_ = std::string_view(at, length);
    return HPE_PAUSED;
  }

  // Called after each chunk-size line (extensions included) with the size in content_length.
  static int on_chunk_header(llhttp_t* parser) {
    MessageParser* p = self(parser);
    p->event_ = Event::kChunkHeader;
    p->event_chunk_size_ = parser->content_length;
    return HPE_PAUSED;
  }

  static int on_message_complete(llhttp_t* parser) {
    self(parser)->event_ = Event::kMessageComplete;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t kSettings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_headers_complete = &Callbacks::on_headers_complete;
      s.on_body = &Callbacks::on_body;
      s.on_chunk_header = &Callbacks::on_chunk_header;
      s.on_message_complete = &Callbacks::on_message_complete;
      return s;
    }();
    return kSettings;
  }
};

MessageParser::MessageParser(bool is_request, const Limits& limits)
    : is_request_(is_request), limits_(limits) {
  new (llhttp_) llhttp_t{};
}

MessageParser::~MessageParser() = default;

bool MessageParser::idle() const {
  return state_ == State::kDone || (state_ == State::kHead && head_.total_bytes() == 0);
}

void MessageParser::reset() {
  state_ = State::kDone;
  body_mode_ = BodyMode::kNone;
  body_bytes_ = 0;
  body_ = {};
  error_ = ParseError{};
  event_ = Event::kNone;
  event_body_ = {};
  event_chunk_size_ = 0;
  skip_body_ = false;
}

void MessageParser::start_message() {
  llhttp_t* parser = ll(llhttp_);
  llhttp_init(parser, is_request_ ? HTTP_REQUEST : HTTP_RESPONSE, &Callbacks::settings());
  // llhttp_init clears the lenient flags; stated here because the strict rules depend on it.
  parser->lenient_flags = 0;

  SectionScanner::Config head;
  head.start_line = true;
  head.skip_leading_empty_lines = is_request_;
  head.max_bytes = limits_.max_header_bytes;
  head.max_fields = limits_.max_headers;
  if (is_request_) {
    head.max_start_line_bytes = limits_.max_uri_bytes < SIZE_MAX - kRequestLineOverheadBytes
                                    ? limits_.max_uri_bytes + kRequestLineOverheadBytes
                                    : SIZE_MAX;
  }
  head_.reset(head);

  SectionScanner::Config trailer;
  trailer.start_line = false;
  trailer.max_bytes = limits_.max_header_bytes;
  trailer.max_fields = limits_.max_headers;
  trailers_.reset(trailer);

  state_ = State::kHead;
  body_mode_ = BodyMode::kNone;
  body_bytes_ = 0;
}

MessageParser::Exec MessageParser::execute(const char* data, size_t size) {
  static const char kNothing[1] = {0};
  if (size == 0) data = kNothing;
  llhttp_t* parser = ll(llhttp_);
  parser->data = this;
  event_ = Event::kNone;
  const llhttp_errno_t code = llhttp_execute(parser, data, size);
  size_t taken = size;
  if (code != HPE_OK) {
    const char* pos = llhttp_get_error_pos(parser);
    taken =
        pos != nullptr && pos >= data && pos <= data + size ? static_cast<size_t>(pos - data) : 0;
  }
  if (code == HPE_PAUSED) llhttp_resume(parser);
  return Exec{code, taken};
}

Step MessageParser::fail(const ParseError& error) {
  error_ = error;
  if (!is_request_) error_.status = 502;
  state_ = State::kError;
  body_ = {};
  return Step::kError;
}

Step MessageParser::fail_llhttp(int code) {
  const char* reason = llhttp_get_error_reason(ll(llhttp_));
  const std::string_view text = reason != nullptr ? reason : "malformed message";
  // RequestParser has already checked the method's syntax, so llhttp not knowing it means an
  // unknown method (RFC 9110 §9.1: 501).
  if (code == HPE_INVALID_METHOD) return fail(ParseError{501, "method not implemented"});
  return fail(ParseError{400, text});
}

Step MessageParser::complete(size_t consumed_bytes, size_t* consumed) {
  *consumed = consumed_bytes;
  state_ = ends_connection_as_http() ? State::kClosed : State::kDone;
  return Step::kDone;
}

Step MessageParser::feed(std::string_view data, size_t* consumed) {
  *consumed = 0;
  body_ = {};
  switch (state_) {
    case State::kError:
      return Step::kError;
    case State::kClosed:
      return fail(ParseError{400, "bytes after the connection switched protocols"});
    case State::kDone:
      start_message();
      [[fallthrough]];
    case State::kHead:
      return feed_head(data, consumed);
    case State::kHeadReady:
      if (body_mode_ == BodyMode::kNone) return complete(0, consumed);
      state_ = State::kBody;
      return feed_body(data, consumed);
    case State::kBody:
      return feed_body(data, consumed);
    case State::kTrailers:
      return feed_trailers(data, 0, consumed);
  }
  return Step::kError;
}

Step MessageParser::feed_head(std::string_view data, size_t* consumed) {
  size_t pos = 0;
  for (;;) {
    size_t used = 0;
    const SectionScanner::Event event = head_.scan(data.substr(pos), &used);
    pos += used;
    if (event == SectionScanner::Event::kNeedMore) {
      *consumed = data.size();
      return Step::kNeedMore;
    }
    if (event == SectionScanner::Event::kError) return fail(head_.error());
    if (event == SectionScanner::Event::kComplete) break;
    ParseError error;
    if (!on_start_line(head_.start_line(), &error)) return fail(error);
  }

  BodyMode mode = BodyMode::kNone;
  uint64_t length = 0;
  ParseError error;
  if (!on_head(head_.bytes(), head_.fields(), &mode, &length, &error)) return fail(error);
  if (mode == BodyMode::kLength && length == 0) mode = BodyMode::kNone;

  // llhttp parses the same head: it must agree that the head is valid and on the body framing,
  // else the message is ambiguous and refused.
  skip_body_ = mode == BodyMode::kNone;
  const std::string_view bytes = head_.bytes();
  const Exec r = execute(bytes.data(), bytes.size());
  const llhttp_t* parser = ll(llhttp_);
  bool agree = false;
  if (mode == BodyMode::kNone) {
    agree =
        r.taken == bytes.size() && ((r.code == HPE_PAUSED && event_ == Event::kMessageComplete) ||
                                    r.code == HPE_PAUSED_UPGRADE);
  } else if (r.code == HPE_OK) {
    const bool chunked = (parser->flags & F_CHUNKED) != 0;
    const bool has_length = (parser->flags & F_CONTENT_LENGTH) != 0;
    switch (mode) {
      case BodyMode::kChunked:
        agree = chunked;
        break;
      case BodyMode::kLength:
        agree = !chunked && has_length && parser->content_length == length;
        break;
      case BodyMode::kUntilClose:
        agree = !chunked && !has_length;
        break;
      case BodyMode::kNone:
        break;
    }
  }
  if (!agree) {
    if (r.code != HPE_OK && r.code != HPE_PAUSED && r.code != HPE_PAUSED_UPGRADE) {
      return fail_llhttp(r.code);
    }
    return fail(ParseError{400, "ambiguous message framing"});
  }

  body_mode_ = mode;
  state_ = State::kHeadReady;
  *consumed = pos;
  return Step::kHead;
}

Step MessageParser::feed_body(std::string_view data, size_t* consumed) {
  size_t pos = 0;
  int idle_rounds = 0;  // pauses that consumed nothing; llhttp never needs two in a row
  for (;;) {
    const Exec r = execute(data.data() + pos, data.size() - pos);
    if (r.code == HPE_OK) {
      *consumed = data.size();
      return Step::kNeedMore;
    }
    if (r.code != HPE_PAUSED && r.code != HPE_PAUSED_UPGRADE) return fail_llhttp(r.code);
    pos += r.taken;
    idle_rounds = r.taken == 0 ? idle_rounds + 1 : 0;
    switch (event_) {
      case Event::kBody:
        assert(event_body_.data() + event_body_.size() == data.data() + pos);
        body_ = event_body_;
        *consumed = pos;
        return Step::kBody;
      case Event::kChunkHeader:
        if (event_chunk_size_ == 0) {
          state_ = State::kTrailers;
          return feed_trailers(data, pos, consumed);
        }
        if (is_request_ && event_chunk_size_ > limits_.max_body_bytes - body_bytes_) {
          return fail(ParseError{413, "request body too large"});
        }
        body_bytes_ += event_chunk_size_;
        break;
      case Event::kMessageComplete:
        return complete(pos, consumed);
      case Event::kNone:
        return fail(ParseError{400, "unexpected parser pause"});
    }
    if (idle_rounds > 1) return fail(ParseError{400, "parser made no progress"});
  }
}

Step MessageParser::feed_trailers(std::string_view data, size_t offset, size_t* consumed) {
  size_t used = 0;
  const SectionScanner::Event event = trailers_.scan(data.substr(offset), &used);
  if (event == SectionScanner::Event::kNeedMore) {
    *consumed = data.size();
    return Step::kNeedMore;
  }
  if (event != SectionScanner::Event::kComplete) return fail(trailers_.error());
  const std::string_view bytes = trailers_.bytes();
  const Exec r = execute(bytes.data(), bytes.size());
  if (r.code != HPE_PAUSED || event_ != Event::kMessageComplete || r.taken != bytes.size()) {
    if (r.code != HPE_OK && r.code != HPE_PAUSED) return fail_llhttp(r.code);
    return fail(ParseError{400, "malformed trailer section"});
  }
  return complete(offset + used, consumed);
}

Step MessageParser::finish() {
  switch (state_) {
    case State::kError:
      return Step::kError;
    case State::kDone:
    case State::kClosed:
      return Step::kDone;
    case State::kHead:
      if (head_.total_bytes() == 0) {
        state_ = State::kDone;
        return Step::kDone;
      }
      return fail(ParseError{400, "connection closed inside a message head"});
    case State::kHeadReady:
    case State::kBody:
      if (body_mode_ == BodyMode::kNone || body_mode_ == BodyMode::kUntilClose) {
        state_ = ends_connection_as_http() ? State::kClosed : State::kDone;
        return Step::kDone;
      }
      return fail(ParseError{400, "connection closed inside a message body"});
    case State::kTrailers:
      return fail(ParseError{400, "connection closed inside a trailer section"});
  }
  return Step::kError;
}

}  // namespace fulcrum::http::detail
