#include "net/acceptor.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace fulcrum::net {

namespace {
// New connections per turn before established ones get theirs (HAProxy's tune.maxaccept).
constexpr int kMaxAcceptsPerWake = 64;
// Out of descriptors or memory: try again after this long (connections wait in the backlog).
constexpr int64_t kResourceRetryMs = 100;
constexpr int64_t kErrorLogIntervalMs = 10000;
}  // namespace

Acceptor::Acceptor(EventLoop& loop, UniqueFd fd, OnAccept on_accept, void* arg, std::string label)
    : loop_(loop),
      fd_(std::move(fd)),
      on_accept_(on_accept),
      arg_(arg),
      label_(std::move(label)),
      resume_(loop, &Acceptor::on_timer, this) {
  if (auto a = local_address(fd_.get()); a.ok()) bound_ = *a;
  std::string_view ip = bound_.ip_bytes();
  bound_is_wildcard_ = ip.find_first_not_of('\0') == std::string_view::npos;
  if (auto st = loop_.add(fd_.get(), EPOLLIN, this); !st.ok()) {
    FLOG_ERROR("listener {}: {}", label_, st.error().message);
  }
  // Connections may have queued before registration; take them on the first turn.
  resume_.arm_in(0);
}

Acceptor::~Acceptor() {
  if (fd_) loop_.remove(fd_.get());
}

UniqueFd Acceptor::release() {
  if (fd_) loop_.remove(fd_.get());
  resume_.cancel();
  return std::move(fd_);
}

void Acceptor::on_io(uint32_t /*events*/) {
  accept_some();
}

void Acceptor::on_timer(void* self) {
  static_cast<Acceptor*>(self)->accept_some();
}

void Acceptor::accept_some() {
  if (!fd_) return;
  // Each worker has its own SO_REUSEPORT socket: no other thread competes for this queue.
  for (int n = 0; n < kMaxAcceptsPerWake; ++n) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;  // empty: the next arrival is an edge
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays queued and no new edge may come;
      // retry later rather than stall or spin.
      if (last_error_log_ms_ < 0 || loop_.now_ms() - last_error_log_ms_ >= kErrorLogIntervalMs) {
        FLOG_WARN("listener {}: accept: {}; retrying every {} ms", label_, std::strerror(err),
                  kResourceRetryMs);
        last_error_log_ms_ = loop_.now_ms();
      }
      resume_.arm_in(kResourceRetryMs);
      return;
    }
    ++accepted_;
    // The local address is the bound one unless the socket is on a wildcard address; only then
    // does it cost a getsockname per connection.
    SocketAddress local = bound_;
    if (bound_is_wildcard_) {
      if (auto a = local_address(fd); a.ok()) local = *a;
    }
    on_accept_(arg_, UniqueFd(fd),
               SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), peer_len), local);
  }
  resume_.arm_in(0);  // capped: the rest after this turn
}

}  // namespace fulcrum::net
