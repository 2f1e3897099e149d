// MessageParser: the state machine shared by RequestParser and ResponseParser. Internal to http/;
// the proxy uses the two derived classes. Pure. [worker]
//
// A message goes through: head (SectionScanner collects and checks it, the derived class
// validates start line and fields, then llhttp parses the same bytes as a second opinion and to
// arm its body state) → body (llhttp decodes Content-Length / chunked / until-close framing over
// the caller's bytes, without copying) → trailer section (SectionScanner again, then llhttp) →
// done. llhttp runs in strict mode with every lenient flag off; its state lives in opaque storage
// here so that no header outside this module's .cc files includes llhttp.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "http/message.h"
#include "http/section_scanner.h"

namespace fulcrum::http::detail {

// How the body of the message being parsed is framed on the wire.
enum class BodyMode : uint8_t { kNone, kLength, kChunked, kUntilClose };

class MessageParser {
 public:
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Consumes a prefix of `data` and reports the next step; `*consumed` is how many bytes of
  // `data` the step used (the caller drops them and calls again with the rest, possibly empty):
  //  kNeedMore: all of `data` was used (head bytes are copied; body framing bytes are dropped).
  //  kHead:     the head ends within `data`; *consumed stops right after its empty line.
  //  kBody:     body() is the next piece of body content, a view into `data` that ends exactly at
  //             *consumed (chunk-size lines, chunk extensions and chunk CRLFs before it were
  //             consumed too, and are never shown). Never empty.
  //  kDone:     the message is complete (*consumed may be 0). The next call starts the next
  //             message and invalidates head(), trailers(); bytes after the message are untouched.
  //  kError:    error() says why. Terminal: every later call returns kError.
  Step feed(std::string_view data, size_t* consumed);

  // The peer closed its sending side. kDone when that ends the current message (a body that runs
  // until close, or a head without body not yet reported done) or no message was in progress
  // (tell the two apart with idle() before calling); kError when a message was cut short.
  Step finish();

  // No byte of a next message has been consumed (a clean place to close the connection).
  bool idle() const;
  // The body of the current message as framed on the wire; valid from kHead to kDone.
  BodyMode body_mode() const { return body_mode_; }
  // Valid for the kBody step that returned it, until the caller's buffer changes.
  std::string_view body() const { return body_; }
  // The trailer fields of a chunked message; valid after kDone until the next message starts.
  std::span<const Header> trailers() const { return trailers_.fields(); }
  const ParseError& error() const { return error_; }
  // Forgets the message in progress (or the error): the parser is as new, its buffers kept.
  void reset();

 protected:
  MessageParser(bool is_request, const Limits& limits);
  ~MessageParser();

  // Hooks for the derived parsers, called once per message in this order. They return false
  // after setting *error (status as for a request; a response parser's errors become 502).
  // The start line (no CRLF) has arrived; its bytes start at offset 0 of the head storage.
  virtual bool on_start_line(std::string_view line, ParseError* error) = 0;
  // The head is complete: `bytes` is the whole head (stable until the next message), `fields`
  // views into it. Fill the head and say how the body is framed (*length for kLength).
  virtual bool on_head(std::string_view bytes, std::span<const Header> fields, BodyMode* mode,
                       uint64_t* length, ParseError* error) = 0;
  // Whether the message just completed switches the connection to another protocol (a 101
  // response): the parser then refuses any further byte.
  virtual bool ends_connection_as_http() const = 0;

  const Limits& limits() const { return limits_; }

 private:
  struct Callbacks;  // the llhttp callbacks (message_parser.cc)
  enum class State : uint8_t { kHead, kHeadReady, kBody, kTrailers, kDone, kClosed, kError };
  enum class Event : uint8_t { kNone, kBody, kChunkHeader, kMessageComplete };
  struct Exec {
    int code;      // llhttp_errno
    size_t taken;  // bytes consumed before the pause/stop
  };

  void start_message();
  Step feed_head(std::string_view data, size_t* consumed);
  Step feed_body(std::string_view data, size_t* consumed);
  Step feed_trailers(std::string_view data, size_t offset, size_t* consumed);
  Step complete(size_t consumed_bytes, size_t* consumed);
  Step fail(const ParseError& error);
  Step fail_llhttp(int code);
  Exec execute(const char* data, size_t size);

  // llhttp_t lives here; message_parser.cc static_asserts that it fits.
  static constexpr size_t kLlhttpStorageBytes = 128;
  alignas(8) unsigned char llhttp_[kLlhttpStorageBytes];

  const bool is_request_;
  const Limits limits_;
  State state_ = State::kDone;
  BodyMode body_mode_ = BodyMode::kNone;
  uint64_t body_bytes_ = 0;  // body content delivered or announced (chunk sizes) so far
  SectionScanner head_;
  SectionScanner trailers_;
  std::string_view body_;
  ParseError error_;
  // Set by the llhttp callbacks during execute().
  Event event_ = Event::kNone;
  std::string_view event_body_;
  uint64_t event_chunk_size_ = 0;
  bool skip_body_ = false;  // what on_headers_complete tells llhttp
};

}  // namespace fulcrum::http::detail
