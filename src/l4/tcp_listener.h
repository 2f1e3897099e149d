// One worker's share of a TCP listener: its own SO_REUSEPORT socket, accept loop, and the
// per-worker balancing state (cursor, active connection counts, persistence table). [worker]
#pragma once

#include <memory>

#include "balance/balancer.h"
#include "balance/persistence.h"
#include "l4/context.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l4 {

// Balancing state for one listener generation on one worker. Sessions hold a shared_ptr so the
// active counters they decrement outlive a configuration change.
struct ListenerState {
  ListenerState(std::shared_ptr<const snapshot::Listener> cfg, const ListenerState* previous);
  std::shared_ptr<const snapshot::Listener> config;
  balance::Cursor cursor;
  std::vector<uint32_t> active;  // per backend of config->group
  balance::PersistenceTable persistence;
};

class TcpListener final : public net::IoHandler {
 public:
  TcpListener(WorkerContext& ctx, net::UniqueFd fd, std::shared_ptr<const snapshot::Listener> cfg);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Adopts a new generation of this listener's configuration; running sessions keep theirs.
  void update(std::shared_ptr<const snapshot::Listener> cfg);
  void on_io(uint32_t events) override;
  // The current generation of this listener's configuration.
  const snapshot::Listener& config() const { return *state_->config; }

 private:
  void accept_all();
  static void on_sweep(void* self);

  WorkerContext& ctx_;
  net::UniqueFd fd_;
  std::shared_ptr<ListenerState> state_;
  net::SocketAddress bound_;
  bool bound_is_wildcard_ = false;
  net::Timer sweep_timer_;  // expires persistence entries a little at a time
};

}  // namespace fulcrum::l4
