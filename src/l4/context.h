// What every L4 object on one worker shares: the loop, pooled buffers and pipes, counters.
// [worker] only. Per-listener and per-backend counters (connections, bytes) live in each
// listener's ListenerRuntime (l4/tcp_listener.h), not here.
#pragma once

#include <cstdint>
#include <functional>

#include "net/buffer.h"
#include "net/event_loop.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l4 {

struct Counters {
  uint64_t connect_retries = 0;  // a backend failed and another was tried
  uint64_t idle_timeouts = 0;
  uint64_t drain_closes = 0;  // closed at the drain deadline of a removed backend
  uint64_t splice_flows = 0;  // directions that switched to splice
};

class SessionRegistry;

struct WorkerContext {
  explicit WorkerContext(net::EventLoop& l) : loop(l) {}
  net::EventLoop& loop;
  net::BufferPool buffers;
  net::PipePool pipes;
  Counters counters;
  SessionRegistry* sessions = nullptr;
  // Called when a connection to `backend` of `listener` failed (refused, timed out, unreachable):
  // passive health detection. Set by the worker's owner; may be empty. [worker]
  std::function<void(const snapshot::Listener& listener, const snapshot::Backend& backend,
                     int error)>
      on_backend_failure;
};

}  // namespace fulcrum::l4
