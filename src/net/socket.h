// Socket helpers: listening sockets (SO_REUSEPORT per worker), non-blocking connect, options.
// Control-plane setup calls and data-plane calls are marked; none of them blocks.
#pragma once

#include <cstdint>
#include <utility>

#include "base/result.h"
#include "net/address.h"

namespace fulcrum::net {

// Owns one file descriptor; closes it on destruction. [any]
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A non-blocking TCP listening socket bound to `addr`, SO_REUSEADDR, and SO_REUSEPORT when
// `reuseport` (one socket per worker in one group). [control]
base::Result<UniqueFd> listen_tcp(const SocketAddress& addr, bool reuseport, int backlog);

// A non-blocking UDP socket bound to `addr`, SO_REUSEPORT when `reuseport` (one per worker in
// one group), with receive and send buffers of `buffer_bytes` where the system allows it.
// [control]
base::Result<UniqueFd> bind_udp(const SocketAddress& addr, bool reuseport, int buffer_bytes);

// A non-blocking UDP socket connected to `to` (an ephemeral local port; the kernel then delivers
// only `to`'s datagrams to it, and an ICMP port-unreachable from `to` as ECONNREFUSED). [worker]
base::Result<UniqueFd> connect_udp(const SocketAddress& to);

// The address a socket is bound to (port 0 resolved). [any]
base::Result<SocketAddress> local_address(int fd);

// Steers new connections of a SO_REUSEPORT group by a hash of the client's source IP, so that
// every connection of one client lands on the same worker (per-worker persistence tables then
// agree). Attach to one socket of the group after all `group_size` sockets are bound. [control]
base::Status steer_reuseport_by_source_ip(int fd, int family, uint32_t group_size);

// Starts a non-blocking connect. `*in_progress` is true when completion comes later by EPOLLOUT.
// [worker]
base::Result<UniqueFd> connect_tcp(const SocketAddress& to, bool* in_progress);

// The pending error of a socket after a non-blocking connect (0 = connected). [worker]
int socket_error(int fd);

void set_nodelay(int fd);
// Makes close() send RST instead of FIN. [worker]
void set_linger_reset(int fd);
// TCP_CORK on or off: while on, the kernel holds partial segments (at most 200 ms); turning it off
// sends what is held. Used to put a TLS session ticket and the first response in one segment.
void set_cork(int fd, bool on);

}  // namespace fulcrum::net
