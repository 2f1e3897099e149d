#include "net/socket.h"

#include <linux/filter.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace fulcrum::net {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {
base::Error sys_error(const char* what, const SocketAddress& addr) {
  int err = errno;
  return base::Error::system(
      err, std::string(what) + " " + addr.to_string() + ": " + std::strerror(err));
}
}  // namespace

base::Result<UniqueFd> listen_tcp(const SocketAddress& addr, bool reuseport, int backlog) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket", addr);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return sys_error("SO_REUSEPORT", addr);
  }
  if (addr.family() == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), addr.sa(), addr.len()) != 0) return sys_error("bind", addr);
  if (::listen(fd.get(), backlog) != 0) return sys_error("listen", addr);
  return fd;
}

base::Result<UniqueFd> bind_udp(const SocketAddress& addr, bool reuseport, int buffer_bytes) {
  UniqueFd fd(::socket(addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket", addr);
  int one = 1;
  if (reuseport && setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return sys_error("SO_REUSEPORT", addr);
  }
  if (addr.family() == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (buffer_bytes > 0) {
    // Above net.core.{r,w}mem_max only a privileged process may go (the *FORCE options); an
    // unprivileged one gets what the sysctl allows.
    for (auto [force, plain] :
         {std::pair{SO_RCVBUFFORCE, SO_RCVBUF}, {SO_SNDBUFFORCE, SO_SNDBUF}}) {
      if (setsockopt(fd.get(), SOL_SOCKET, force, &buffer_bytes, sizeof buffer_bytes) != 0) {
        setsockopt(fd.get(), SOL_SOCKET, plain, &buffer_bytes, sizeof buffer_bytes);
      }
    }
  }
  if (::bind(fd.get(), addr.sa(), addr.len()) != 0) return sys_error("bind", addr);
  return fd;
}

base::Result<UniqueFd> connect_udp(const SocketAddress& to) {
  UniqueFd fd(::socket(to.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket", to);
  if (::connect(fd.get(), to.sa(), to.len()) != 0) {
    auto err = sys_error("connect", to);
    err.retryable = true;
    err.source = base::ErrorSource::kUpstream;
    return err;
  }
  return fd;
}

base::Result<SocketAddress> local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return base::Error::system(errno, "getsockname failed");
  }
  return SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

base::Status steer_reuseport_by_source_ip(int fd, int family, uint32_t group_size) {
  if (group_size <= 1) return {};
  // Classic BPF run by the kernel's reuseport selection: the packet data starts after the
  // transport header, so the IP header is reached through the SKF_NET_OFF ancillary base.
  // The result (an index into the group, in bind order) is the source address folded modulo
  // the group size; the last 4 bytes of an IPv6 source stand in for the address.
  uint32_t src_offset = family == AF_INET6 ? 8 + 12 : 12;  // IPv6 src ends at 24; IPv4 src at 12
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_NET_OFF) + src_offset},
      {BPF_ALU | BPF_MOD | BPF_K, 0, 0, group_size},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) {
    return base::Error::system(errno,
                               std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno));
  }
  return {};
}

base::Result<UniqueFd> connect_tcp(const SocketAddress& to, bool* in_progress) {
  UniqueFd fd(::socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket", to);
  set_nodelay(fd.get());
  if (::connect(fd.get(), to.sa(), to.len()) == 0) {
    *in_progress = false;
    return fd;
  }
  if (errno == EINPROGRESS) {
    *in_progress = true;
    return fd;
  }
  auto err = sys_error("connect", to);
  err.retryable = true;
  err.source = base::ErrorSource::kUpstream;
  return err;
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void set_cork(int fd, bool on) {
  int value = on ? 1 : 0;
  setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

void set_linger_reset(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

}  // namespace fulcrum::net
