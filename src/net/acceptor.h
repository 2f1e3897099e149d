// Accepts connections on one listening socket of one worker and hands each to a callback.
// Edge-triggered; at most kMaxAcceptsPerWake connections per turn so that established
// connections are not starved by a flood of new ones; when the process is out of file
// descriptors (or memory), accepting pauses and retries instead of spinning or stalling. [worker]
#pragma once

#include <cstdint>

#include "net/address.h"
#include "net/event_loop.h"
#include "net/socket.h"

namespace fulcrum::net {

class Acceptor final : public IoHandler {
 public:
  // Receives each accepted socket (non-blocking, close-on-exec) with its peer and local address.
  using OnAccept = void (*)(void* arg, UniqueFd fd, const SocketAddress& peer,
                            const SocketAddress& local);
  // `label` names the listener in logs ("web tcp:80").
  Acceptor(EventLoop& loop, UniqueFd fd, OnAccept on_accept, void* arg, std::string label);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void on_io(uint32_t events) override;
  const SocketAddress& bound() const { return bound_; }
  uint64_t accepted() const { return accepted_; }
  void set_label(std::string label) { label_ = std::move(label); }
  // Stops accepting and hands the listening socket over (to a listener of another protocol on
  // the same address). The Acceptor is inert afterwards.
  UniqueFd release();

 private:
  void accept_some();
  static void on_timer(void* self);

  EventLoop& loop_;
  UniqueFd fd_;
  OnAccept on_accept_;
  void* arg_;
  std::string label_;
  SocketAddress bound_;
  bool bound_is_wildcard_ = false;
  Timer resume_;  // the next turn after a capped batch, or a retry after EMFILE
  uint64_t accepted_ = 0;
  int64_t last_error_log_ms_ = -1;
};

}  // namespace fulcrum::net
