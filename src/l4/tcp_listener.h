// One worker's share of a TCP listener: its own SO_REUSEPORT socket, accept loop, and the
// per-worker balancing state (cursor, active connection counts, persistence table). [worker]
#pragma once

#include <memory>

#include "balance/balancer.h"
#include "balance/persistence.h"
#include "base/counters.h"
#include "l4/context.h"
#include "net/acceptor.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l4 {

// Balancing state for one listener generation on one worker.
struct ListenerState {
  // Active connection counts are carried over from `previous` by backend identity.
  ListenerState(std::shared_ptr<const snapshot::Listener> cfg, const ListenerState* previous);
  std::shared_ptr<const snapshot::Listener> config;
  balance::Cursor cursor;
  std::vector<uint32_t> active;  // per backend of config->group
  // Per backend of config->group: the entries of ListenerRuntime::backends (set by TcpListener).
  std::vector<std::shared_ptr<base::BackendCounters>> backend_counters;
};

// What outlives one generation of a listener on one worker: the current state, which sessions of
// every generation account their connections to (so wlc counts stay true across reloads), and
// the source-IP persistence table (so a reload keeps clients where they are), and the counters
// the metrics report. Held by the listener and by each of its sessions; it outlives a removed
// listener until its last session.
struct ListenerRuntime {
  std::shared_ptr<ListenerState> current;
  std::unique_ptr<balance::PersistenceTable> persistence;  // null while persistence is off
  base::ListenerCounters counters;
  base::BackendCounterTable backends;  // the backends of current->config->group
};

class TcpListener {
 public:
  TcpListener(WorkerContext& ctx, net::UniqueFd fd, std::shared_ptr<const snapshot::Listener> cfg);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Adopts a new generation of this listener's configuration; running sessions keep theirs.
  void update(std::shared_ptr<const snapshot::Listener> cfg);
  // The current generation of this listener's configuration.
  const snapshot::Listener& config() const { return *runtime_->current->config; }
  // What the metrics read (on this worker, by copying).
  const ListenerRuntime& runtime() const { return *runtime_; }
  // Hands the listening socket over; see net::Acceptor::release.
  net::UniqueFd release_socket() { return acceptor_.release(); }

 private:
  static void on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                        const net::SocketAddress& local);
  static void on_sweep(void* self);

  WorkerContext& ctx_;
  std::shared_ptr<ListenerRuntime> runtime_;
  net::Acceptor acceptor_;
  net::Timer sweep_timer_;  // expires persistence entries a little at a time
};

}  // namespace fulcrum::l4
