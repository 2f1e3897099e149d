// One worker's share of an HTTP listener: its SO_REUSEPORT socket and the per-worker balancing
// state of every target (default group and forwarding rules). [worker]
#pragma once

#include <memory>
#include <vector>

#include "balance/balancer.h"
#include "base/counters.h"
#include "l7/context.h"
#include "net/acceptor.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l7 {

// Balancing state of one listener generation: a cursor and active request counts per target.
// Requests keep the state of the generation they were routed in (shared_ptr).
struct HttpListenerState {
  explicit HttpListenerState(std::shared_ptr<const snapshot::Listener> cfg);
  struct Target {
    explicit Target(const balance::Table& table) : cursor(table) {}
    balance::Cursor cursor;
    std::vector<uint32_t> active;  // requests in flight per backend (wlc)
    // Per backend of the target's group: the entries of HttpListenerRuntime::backends (set by
    // HttpListener; empty for a redirect).
    std::vector<std::shared_ptr<base::BackendCounters>> backend_counters;
  };
  std::shared_ptr<const snapshot::Listener> config;
  std::vector<Target> targets;  // index-aligned with config->targets
};

// HTTP-only counters of one listener on one worker.
struct HttpListenerCounters {
  uint64_t responses_by_class[6] = {};       // [1] 1xx ... [5] 5xx, Fulcrum's own answers included
  base::LatencyHistogram request_duration;   // request head received -> response complete
  base::LatencyHistogram upstream_response;  // request head sent to the backend -> response head
};

// What outlives one generation of a listener on one worker: the current state (which sessions
// take for their next request) and the counters the metrics report. Held by the listener and by
// each of its sessions.
struct HttpListenerRuntime {
  std::shared_ptr<HttpListenerState> current;
  base::ListenerCounters counters;
  HttpListenerCounters http;
  base::TlsCounters tls;               // HTTPS listeners: handshakes (l7/tls_handshake.h)
  base::BackendCounterTable backends;  // the backends of every target's group
  // When the listener was removed (loop time): its sessions, and those a TLS handshake in
  // progress then still makes, drain by removed_ms + drain_timeout. -1: the listener is live.
  int64_t removed_ms = -1;
};

// Whether backend `index` of `group` (of an older generation) is out of `current`: removed from
// the group of that name, set to weight 0, or its group serves the listener no more. A request
// or tunnel on it gets the listener's drain_timeout (Worker::apply_drain_deadlines).
bool backend_left(const snapshot::Listener& current, const snapshot::ServerGroup& group,
                  uint32_t index);

class HttpListener {
 public:
  HttpListener(HttpContext& ctx, net::UniqueFd fd, std::shared_ptr<const snapshot::Listener> cfg);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Adopts a new generation; requests in flight keep theirs.
  void update(std::shared_ptr<const snapshot::Listener> cfg);
  const snapshot::Listener& config() const { return *runtime_->current->config; }
  // What the metrics read (on this worker, by copying).
  const HttpListenerRuntime& runtime() const { return *runtime_; }
  net::UniqueFd release_socket() { return acceptor_.release(); }

 private:
  static void on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                        const net::SocketAddress& local);

  HttpContext& ctx_;
  // Shared with sessions so that their next request uses the newest generation.
  std::shared_ptr<HttpListenerRuntime> runtime_;
  net::Acceptor acceptor_;
};

}  // namespace fulcrum::l7
