// A small HTTP/1.1 server for the admin API, on the control thread's event loop and the project's
// own codec (http::RequestParser, the same strict parser as the data plane). Whole request bodies
// are buffered up to a limit (413 beyond); one request at a time per connection (pipelined
// requests wait); keep-alive; idle and read timeouts; a cap on connections. Handlers may answer
// later (the metrics collection answers when every worker has replied). [control]
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "net/address.h"
#include "net/event_loop.h"

namespace fulcrum::api {

struct Request {
  std::string method;  // as received ("GET")
  std::string path;    // the target's path, not decoded
  std::string query;   // after '?', not decoded; empty when none
  std::string authorization;
  std::string content_type;  // media type only, lower case, without parameters
  std::string body;
  std::string peer;  // "127.0.0.1:50000"
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Call exactly once, on the loop thread. Calling it after the client went away is harmless.
using Respond = std::function<void(Response)>;
using Handler = std::function<void(Request request, Respond respond)>;

struct ServerLimits {
  size_t max_body_bytes = 16u << 20;  // whole documents of 1,000s of backends fit
  size_t max_connections = 256;
  int64_t idle_timeout_ms = 60000;     // between requests
  int64_t request_timeout_ms = 30000;  // to receive a whole request once it started
};

class HttpServer {
 public:
  // Listens on `address` (port 0: any free port; see bound()).
  static base::Result<std::unique_ptr<HttpServer>> start(net::EventLoop& loop,
                                                         const net::SocketAddress& address,
                                                         ServerLimits limits, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  const net::SocketAddress& bound() const;
  size_t connections() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// {"error": {"code": ..., "message": ..., "field": ...}} — the error shape of PRODUCT.md §4.
// `field` is left out when empty. Strings are JSON-escaped.
Response error_response(int status, std::string_view code, std::string_view message,
                        std::string_view field = {});

// JSON string escaping (quotes included). [any]
std::string json_quote(std::string_view s);

}  // namespace fulcrum::api
