// Connections to backends, per worker. Each one is registered with the event loop once, for its
// whole life, with itself as the handler; its events go to its current owner (a session), or to
// the pool while it is idle — handing a connection over changes a pointer, not the epoll set.
// Idle ones are kept LIFO per backend (the connection used last is the one least likely to have
// been closed by the backend meanwhile), bounded in number and idle time; an idle connection that
// turns readable (the backend closed it, or sent bytes nobody asked for) is dropped. [worker]
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "net/event_loop.h"
#include "net/socket.h"

namespace fulcrum::l7 {

// Whoever uses an upstream connection receives its readiness events.
class UpstreamOwner {
 public:
  virtual void on_upstream_io(uint32_t events) = 0;

 protected:
  ~UpstreamOwner() = default;
};

class UpstreamPool;

class UpstreamConn final : public net::IoHandler, public net::Deferred {
 public:
  int fd() const { return fd_.get(); }
  uint64_t backend_id() const { return backend_id_; }
  void on_io(uint32_t events) override;

 private:
  friend class UpstreamPool;
  UpstreamPool* pool_ = nullptr;
  net::UniqueFd fd_;
  uint64_t backend_id_ = 0;
  UpstreamOwner* owner_ = nullptr;  // null while idle in the pool
  int64_t idle_since_ms_ = 0;
};

class UpstreamPool {
 public:
  struct Limits {
    // Above the concurrent streams of an HTTP/2 connection (100), each of which needs one.
    size_t max_idle_per_backend = 256;
    int64_t max_idle_ms = 10000;  // below common backend keep-alive timeouts (nginx: 75 s)
  };
  UpstreamPool(net::EventLoop& loop, Limits limits);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A new connection (connecting or connected) to backend `backend_id`, registered with the loop
  // for `events`, owned by `owner`. Null if it cannot be registered (the fd is then closed).
  UpstreamConn* adopt(net::UniqueFd fd, uint64_t backend_id, uint32_t events, UpstreamOwner* owner);
  // An idle connection to `backend_id`, now owned by `owner`; null when none is idle.
  UpstreamConn* take(uint64_t backend_id, UpstreamOwner* owner);
  // Parks a connection that has no request in flight and no unread byte.
  void put(UpstreamConn* conn);
  // Closes a connection (its owner is done with it, and it is not reusable).
  void close(UpstreamConn* conn);
  // For an owned but unused connection that signalled readiness: still usable (nothing to read)?
  static bool still_idle(const UpstreamConn& conn);

  size_t idle() const { return idle_count_; }
  uint64_t reused() const { return reused_; }

 private:
  friend class UpstreamConn;
  void on_idle_event(UpstreamConn* conn);
  void unlink(UpstreamConn* conn);
  static void on_sweep(void* self);

  net::EventLoop& loop_;
  Limits limits_;
  std::unordered_map<uint64_t, std::vector<UpstreamConn*>> idle_;  // per backend, oldest first
  size_t idle_count_ = 0;
  uint64_t reused_ = 0;
  net::Timer sweep_;
};

}  // namespace fulcrum::l7
