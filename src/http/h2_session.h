// H2ServerSession: the server side of one HTTP/2 connection (RFC 9113) as a pure codec over
// nghttp2 — fed the bytes the client sent, it reports request heads, request body pieces and
// stream ends to an H2Handler, and it frames the responses it is given into bytes to send. No
// sockets, no clock of its own but base::monotonic_ms(). The only file that includes nghttp2.
// [worker]
//
// What a request must satisfy (RFC 9113 §8; a violation resets that stream with PROTOCOL_ERROR,
// the handler never sees it): nghttp2's HTTP messaging rules — lowercase field names, no
// connection-specific fields (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
// Upgrade), TE only "trailers", no CR/LF/NUL or leading/trailing whitespace in values, exactly
// one of each of :method, :scheme, :path (non-empty; CONNECT excepted), pseudo-header fields
// before regular ones and only the request ones, a Content-Length equal to the sum of the DATA
// payloads — and, checked here: Host equal to :authority when both are present, and the header
// list (names + values + 32 per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts) within
// H2Limits::max_header_list_bytes.
//
// Connection limits: SETTINGS_MAX_CONCURRENT_STREAMS (streams over it are refused), at most 8
// CONTINUATION frames per header block, pending outbound ACKs (PING/SETTINGS floods) and
// SETTINGS entries capped, and RST_STREAM from the client counted per window: more than
// max_resets_per_window in reset_window_ms (rapid reset) ends the connection with GOAWAY
// ENHANCE_YOUR_CALM.
//
// Flow control: request body bytes are credited back to the client (WINDOW_UPDATE) only when the
// caller says they were consumed (consumed()); response bodies are queued per stream and framed
// as the client's windows allow (queued() says how much is still waiting).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"

namespace fulcrum::http {

struct H2Limits {
  uint32_t max_concurrent_streams = 100;
  size_t max_header_list_bytes = 64 * 1024;  // the same bound as an HTTP/1 head
  uint32_t initial_window = 256 * 1024;      // per stream, for request bodies
  uint32_t max_resets_per_window = 200;      // RST_STREAM frames from the client ...
  int64_t reset_window_ms = 10000;           // ... per this window
  size_t max_outbound_ack = 1000;            // unsent PING/SETTINGS ACKs
  size_t max_settings = 32;                  // entries in one SETTINGS frame
};

// RFC 9113 §7 error codes used by callers.
inline constexpr uint32_t kH2NoError = 0x0;
inline constexpr uint32_t kH2ProtocolError = 0x1;
inline constexpr uint32_t kH2InternalError = 0x2;
inline constexpr uint32_t kH2Cancel = 0x8;
inline constexpr uint32_t kH2EnhanceYourCalm = 0xb;

struct H2Request {
  std::string method;
  std::string scheme;
  std::string authority;  // :authority, else the Host field
  std::string path;
  std::vector<std::pair<std::string, std::string>> fields;  // regular fields (lowercase names)
  std::optional<uint64_t> content_length;
  bool end_stream = false;  // no body follows

  // Empty again, the string and vector buffers kept.
  void clear() {
    method.clear();
    scheme.clear();
    authority.clear();
    path.clear();
    fields.clear();
    content_length.reset();
    end_stream = false;
  }
};

class H2Handler {
 public:
  // A valid request head on a new stream. The request is the handler's to keep (moved from).
  virtual void on_h2_request(int32_t stream, H2Request& request) = 0;
  // A piece of its body; call H2ServerSession::consumed() once it has been passed on.
  virtual void on_h2_data(int32_t stream, std::string_view data) = 0;
  // The request (body included) is complete.
  virtual void on_h2_request_end(int32_t stream) = 0;
  // The stream is gone (answered in full, or reset by either side): forget it.
  virtual void on_h2_stream_closed(int32_t stream, uint32_t error_code) = 0;
  // A malformed request was refused (RST_STREAM PROTOCOL_ERROR sent; the stream may never have
  // been reported), or the connection ended on a protocol error (GOAWAY with an error code).
  virtual void on_h2_malformed() {}

 protected:
  ~H2Handler() = default;
};

class H2ServerSession {
 public:
  H2ServerSession(H2Handler* handler, const H2Limits& limits);
  ~H2ServerSession();
  H2ServerSession(const H2ServerSession&) = delete;
  H2ServerSession& operator=(const H2ServerSession&) = delete;

  // Received bytes (all consumed). False: a connection error; send what produce() gives, then
  // close.
  bool feed(std::string_view data);
  // Appends the frames that are ready to `out` (until it holds about `max_bytes`). False on a
  // fatal error.
  bool produce(std::string* out, size_t max_bytes);
  // Both false: the connection is finished (GOAWAY exchanged, or a connection error).
  bool wants_read() const;
  bool wants_write() const;

  // The response head (`fields` as received from HTTP/1: names are lowercased here; the caller
  // drops hop-by-hop ones). `end_stream`: no body.
  bool respond(int32_t stream, uint16_t status, std::span<const Header> fields, bool end_stream);
  // Queues response body bytes; `end`: the body is complete.
  void send_data(int32_t stream, std::string_view data, bool end);
  // Response body bytes queued and not yet framed.
  size_t queued(int32_t stream) const;
  // `n` request body bytes of `stream` were passed on: the client may send that many more.
  void consumed(int32_t stream, size_t n);
  void reset(int32_t stream, uint32_t error_code);
  // GOAWAY: streams already open finish, no new ones (drain).
  void shutdown();
  // GOAWAY with `error_code`, then the connection ends.
  void terminate(uint32_t error_code);
  // Streams open (not closed yet).
  size_t open_streams() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fulcrum::http
