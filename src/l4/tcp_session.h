// One proxied TCP connection: picks a backend, connects (retrying other backends on failure),
// then relays both directions with half-close propagation, idle timeout and splice for bulk
// flows. [worker] only; owned by the worker's SessionRegistry, destroyed through defer_delete.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "balance/balancer.h"
#include "l4/context.h"
#include "l4/tcp_listener.h"
#include "net/address.h"
#include "net/buffer.h"
#include "net/event_loop.h"
#include "net/intrusive_list.h"
#include "net/socket.h"

namespace fulcrum::l4 {

class TcpSession;

// Every live session of one worker, for draining at shutdown and for configuration changes.
// [worker]
class SessionRegistry {
 public:
  void add(TcpSession* s) { list_.push_front(s); }
  void remove(TcpSession* s) { list_.erase(s); }
  size_t size() const { return list_.size(); }
  // Closes every session (RST to both sides): the drain deadline has passed.
  void close_all();
  // Calls f(TcpSession&) for every session; f must not close sessions.
  template <typename F>
  void for_each(F&& f) {
    list_.for_each(f);
  }

 private:
  net::IntrusiveList<TcpSession> list_;
};

class TcpSession final : public net::Deferred, public net::IntrusiveLink<TcpSession> {
 public:
  TcpSession(WorkerContext& ctx, std::shared_ptr<ListenerRuntime> runtime, net::UniqueFd client,
             const net::SocketAddress& peer, const net::SocketAddress& local);
  ~TcpSession() override;

  // Picks a backend and starts connecting; may end the session at once (no backend).
  void start();
  // Ends the session now, with RST on both sides when `reset`.
  void close(bool reset);

  // The listener generation this session started with, and the id of its backend (nullopt
  // while it has none).
  const snapshot::Listener& listener() const { return *state_->config; }
  std::optional<uint64_t> backend_id() const;
  // A configuration change removed this session's backend (or set its weight to 0, or removed
  // its listener): the session ends gracefully at `deadline_ms` (monotonic) unless it ends first.
  // A later deadline never replaces an earlier one.
  void drain_by(int64_t deadline_ms);
  // The backend is back in the configuration: no deadline any more.
  void cancel_drain();

 private:
  friend class SessionRegistry;
  enum class State : uint8_t { kConnecting, kRelaying, kClosed };
  static constexpr int64_t kNoDeadline = INT64_MAX;
  void arm_relay_timer();

  struct Side final : net::IoHandler {
    TcpSession* session = nullptr;
    int fd = -1;
    bool readable = false;
    bool writable = false;
    bool read_eof = false;     // peer sent FIN
    bool write_shut = false;   // we sent FIN
    bool hangup_seen = false;  // epoll reported RDHUP/HUP/ERR: a read must go on to see the end
    void on_io(uint32_t events) override;
  };
  // One direction of the relay: bytes read from `from` are written to `to`.
  struct Flow {
    Side* from = nullptr;
    Side* to = nullptr;
    std::unique_ptr<net::Buffer> buffer;
    net::Pipe pipe;
    bool splice = false;
    uint32_t full_reads = 0;  // reads that filled the whole buffer: evidence of a bulk flow
    uint64_t* byte_counter = nullptr;
  };

  void on_side_io(Side& side, uint32_t events);
  bool connect_next();
  void on_connected();
  void on_connect_failed(int err);
  void run_relay();
  // Moves what it can in one direction. Returns false when the session was closed.
  bool pump(Flow& flow);
  bool pump_buffered(Flow& flow, bool* progress);
  bool pump_spliced(Flow& flow, bool* progress);
  void release_backend();
  // This backend's active connection counter in the listener's current generation (null when the
  // backend has left it).
  uint32_t* active_slot(uint32_t index) const;
  static void on_timer(void* self);

  WorkerContext& ctx_;
  std::shared_ptr<ListenerRuntime> runtime_;
  std::shared_ptr<ListenerState> state_;  // the generation this session started with
  net::SocketAddress peer_;
  net::SocketAddress local_;
  Side client_;
  Side backend_;
  net::UniqueFd client_fd_;
  net::UniqueFd backend_fd_;
  Flow up_;           // client -> backend
  Flow down_;         // backend -> client
  net::Timer timer_;  // connect timeout, then idle timeout
  balance::HostMask tried_;
  uint32_t backend_index_ = balance::kNoHost;
  uint32_t attempts_ = 0;
  int64_t last_activity_ms_ = 0;
  int64_t drain_deadline_ms_ = kNoDeadline;
  State state_kind_ = State::kConnecting;
};

}  // namespace fulcrum::l4
