// Idle keep-alive connections to backends, per worker. LIFO per backend: the connection used last
// is the one least likely to have been closed by the backend meanwhile. Bounded in number per
// backend and in idle time. An idle connection that becomes readable (the backend closed it, or
// sent bytes nobody asked for) is dropped at once and never handed out. [worker]
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "net/event_loop.h"
#include "net/socket.h"

namespace fulcrum::l7 {

class UpstreamPool {
 public:
  struct Limits {
    size_t max_idle_per_backend = 64;
    int64_t max_idle_ms = 10000;  // below common backend keep-alive timeouts (nginx: 75 s)
  };
  UpstreamPool(net::EventLoop& loop, Limits limits);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // An idle connection to backend `key`, still registered with the loop: the caller takes over
  // the registration with EventLoop::modify(). Empty when none is idle.
  net::UniqueFd take(uint64_t key);
  // Parks a connection that has no request in flight and no unread byte.
  void put(uint64_t key, net::UniqueFd fd);

  size_t idle() const { return idle_count_; }
  uint64_t reused() const { return reused_; }

 private:
  struct Idle;
  void drop(Idle* idle);
  static void on_sweep(void* self);

  net::EventLoop& loop_;
  Limits limits_;
  std::unordered_map<uint64_t, std::vector<Idle*>> by_backend_;  // oldest first
  size_t idle_count_ = 0;
  uint64_t reused_ = 0;
  net::Timer sweep_;
};

}  // namespace fulcrum::l7
