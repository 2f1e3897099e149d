// What every L7 object on one worker shares: the loop, the upstream connection pool, counters
// and the list of live sessions. [worker] only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "l7/access_log.h"
#include "l7/upstream_pool.h"
#include "net/event_loop.h"
#include "net/intrusive_list.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l7 {

// Worker-wide totals. Per-listener and per-backend counters (connections, bytes, responses by
// class, latency histograms, TLS handshakes) live in each listener's HttpListenerRuntime
// (l7/http_listener.h).
struct HttpCounters {
  uint64_t requests = 0;
  // Refused by the parser (400/413/414/431/501/505); HTTP/2: malformed streams reset with
  // PROTOCOL_ERROR, and connections ended on a protocol error.
  uint64_t bad_requests = 0;
  uint64_t upstream_errors = 0;  // 502 answered
  uint64_t no_backend = 0;       // 503 answered
  uint64_t timeouts = 0;         // 504 answered
  uint64_t retries = 0;
};

class HttpSession;
class Http2Session;
class TlsHandshake;

// Live sessions of one worker, for draining. [worker]
class HttpSessionList {
 public:
  void add(HttpSession* s);
  void remove(HttpSession* s);
  void add(Http2Session* s);
  void remove(Http2Session* s);
  size_t size() const { return list_.size() + h2_.size(); }
  // Asks every session to finish: idle ones close now, busy ones after their response.
  void drain_all();
  // Closes every session at once.
  void close_all();
  // Calls f(HttpSession&) and f(Http2Session&) for every session; f must not close sessions.
  template <typename F>
  void for_each(F&& f) {
    list_.for_each(f);
    h2_.for_each(f);
  }

 private:
  net::IntrusiveList<HttpSession> list_;
  net::IntrusiveList<Http2Session> h2_;
};

struct HttpContext {
  explicit HttpContext(net::EventLoop& l) : loop(l), pool(l, UpstreamPool::Limits{}) {}
  net::EventLoop& loop;
  UpstreamPool pool;
  HttpCounters counters;
  HttpSessionList sessions;
  net::IntrusiveList<TlsHandshake> handshakes;  // HTTPS connections still in their handshake
  bool draining = false;
  std::unique_ptr<AccessLog> access_log;  // null: no access log sink
  // Passive health detection, as l4::WorkerContext::on_backend_failure.
  std::function<void(const snapshot::Listener&, const snapshot::Backend&, int error)>
      on_backend_failure;
};

}  // namespace fulcrum::l7
