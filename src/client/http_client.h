// A small blocking HTTP/1.1 client for the admin API: one request per connection
// ("Connection: close"), plain http only, connect and read timeouts. Responses are parsed by the
// project's strict http::ResponseParser. Used by fulcrumctl (and tests); never by the data
// plane. [control: blocks the calling thread]
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "client/url.h"
#include "http/response_parser.h"

namespace fulcrum::client {

struct Request {
  std::string method = "GET";
  // Path and query below the URL's prefix, already percent-encoded: "/v1/loadbalancers/web".
  std::string target;
  std::string content_type;  // sent only with a body
  std::string body;
  // The bearer token; empty = no Authorization header. Never appears in any error message.
  std::string token;
};

struct Response {
  uint16_t status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;

  // The first header with this name (any case); "" when absent.
  std::string_view header(std::string_view name) const;
};

struct Timeouts {
  int connect_ms = 5000;  // per address tried
  int read_ms = 30000;    // longest silence while sending or waiting for the answer
};

// The largest answer accepted (a whole configuration document fits many times over).
inline constexpr size_t kMaxResponseBytes = 64u << 20;

// The bytes of `request` sent to `url`: request line with the URL's prefix, Host, Accept,
// User-Agent, Authorization (when a token is set), Content-Type and Content-Length (when a body
// is set or the method is POST/PUT/PATCH), Connection: close. Pure.
std::string serialize_request(const Url& url, const Request& request);

// Collects one response from the bytes of a connection: feed() what arrives, finish() at end of
// stream. Interim 1xx responses are skipped. Pure.
class ResponseReader {
 public:
  explicit ResponseReader(http::Method request_method);

  // Consumes bytes; true once the response is complete (bytes after it are ignored). An error
  // (malformed or oversized answer) is kept for result().
  bool feed(std::string_view data);
  // The connection ended; true when that completes the response.
  bool finish();
  bool done() const { return done_; }
  bool failed() const { return !error_.empty(); }
  // The response once done(), else the error that stopped it (or "truncated").
  base::Result<Response> result() &&;

 private:
  bool fail(std::string message);

  http::ResponseParser parser_;
  Response response_;
  bool in_interim_ = false;
  bool done_ = false;
  std::string error_;
};

// Sends `request` to `url` and waits for the whole answer. Errors: the URL has no address,
// connect refused / timed out (retryable = true: nothing was sent), a read timeout or reset, or a
// malformed answer; messages name the server URL, never the token. Any status is a success here:
// the caller decides what a 4xx means.
base::Result<Response> send(const Url& url, const Request& request, const Timeouts& timeouts);

}  // namespace fulcrum::client
