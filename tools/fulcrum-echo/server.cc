#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace echo {

namespace {

constexpr int kBacklog = 4096;
constexpr size_t kScratchSize = 64 * 1024;
constexpr auto kLinger = std::chrono::seconds(5);
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);
constexpr int kMaxEvents = 256;
constexpr int kAcceptBatch = 128;
constexpr int kUdpBatch = 64;

uint64_t EpollKey(int fd, uint32_t serial) {
  return (static_cast<uint64_t>(serial) << 32) | static_cast<uint32_t>(fd);
}

}  // namespace

// ---- Buffer ----------------------------------------------------------------------------------

void Buffer::Compact() {
  if (start == 0) return;
  if (start != end) std::memmove(data.get(), data.get() + start, end - start);
  end -= start;
  start = 0;
}

void Buffer::Consume(size_t n) {
  start += n;
  if (start == end) start = end = 0;
}

void Buffer::Assign(const std::string& text) {
  size_t n = text.size() < kCapacity ? text.size() : kCapacity;
  std::memcpy(data.get(), text.data(), n);
  start = 0;
  end = n;
}

// ---- Addresses -------------------------------------------------------------------------------

bool ParseAddress(const std::string& text, sockaddr_storage* addr, socklen_t* len,
                  std::string* error) {
  std::string host;
  std::string port;
  bool v6 = false;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "expected [IPv6]:PORT in '" + text + "'";
      return false;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    v6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      *error = "expected ADDR:PORT in '" + text + "'";
      return false;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    *error = "bad port in '" + text + "'";
    return false;
  }
  auto port_n = static_cast<uint16_t>(std::stoul(port));
  *addr = {};
  if (v6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(addr);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port_n);
    if (inet_pton(AF_INET6, host.c_str(), &sa->sin6_addr) != 1) {
      *error = "bad IPv6 address in '" + text + "'";
      return false;
    }
    *len = sizeof(sockaddr_in6);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(addr);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port_n);
    if (inet_pton(AF_INET, host.c_str(), &sa->sin_addr) != 1) {
      *error = "bad IPv4 address in '" + text + "' (IPv6 needs brackets: [::1]:PORT)";
      return false;
    }
    *len = sizeof(sockaddr_in);
  }
  return true;
}

std::string FormatAddress(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET6) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(sa->sin6_port));
  }
  const auto* sa = reinterpret_cast<const sockaddr_in*>(&addr);
  inet_ntop(AF_INET, &sa->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(sa->sin_port));
}

// ---- Setup -----------------------------------------------------------------------------------

Server::Server(Options options)
    : opt_(std::move(options)), scratch_(std::make_unique_for_overwrite<char[]>(kScratchSize)) {}

Server::~Server() {
  for (auto& c : conns_) {
    if (c) ::close(c->fd);
  }
  for (auto& l : listeners_) {
    if (l.fd >= 0) ::close(l.fd);
  }
  if (epfd_ >= 0) ::close(epfd_);
}

void Server::Log(const char* fmt, ...) {
  if (opt_.quiet) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "fulcrum-echo[%s]: %s\n", opt_.name.c_str(), line);
}

bool Server::AddListener(Listener::Kind kind, const std::string& address) {
  sockaddr_storage addr;
  socklen_t len = 0;
  std::string error;
  if (!ParseAddress(address, &addr, &len, &error)) {
    std::fprintf(stderr, "fulcrum-echo: %s\n", error.c_str());
    return false;
  }
  bool udp = kind == Listener::Kind::kUdp;
  int fd =
      ::socket(addr.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::fprintf(stderr, "fulcrum-echo: socket: %s\n", std::strerror(errno));
    return false;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    std::fprintf(stderr, "fulcrum-echo: bind %s: %s\n", address.c_str(), std::strerror(errno));
    ::close(fd);
    return false;
  }
  if (!udp && ::listen(fd, kBacklog) != 0) {
    std::fprintf(stderr, "fulcrum-echo: listen %s: %s\n", address.c_str(), std::strerror(errno));
    ::close(fd);
    return false;
  }
  sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  const char* proto = kind == Listener::Kind::kTcp    ? "tcp"
                      : kind == Listener::Kind::kHttp ? "http"
                                                      : "udp";
  Listener l{kind, fd, std::string(proto) + " " + FormatAddress(bound), false};
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = EpollKey(fd, 0);
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    std::fprintf(stderr, "fulcrum-echo: epoll_ctl: %s\n", std::strerror(errno));
    ::close(fd);
    return false;
  }
  if (listener_by_fd_.size() <= static_cast<size_t>(fd)) {
    listener_by_fd_.resize(static_cast<size_t>(fd) + 1, -1);
  }
  listener_by_fd_[static_cast<size_t>(fd)] = static_cast<int>(listeners_.size());
  listeners_.push_back(std::move(l));
  return true;
}

bool Server::Setup() {
  // Allow as many connections as the hard limit permits.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);

  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    std::fprintf(stderr, "fulcrum-echo: epoll_create1: %s\n", std::strerror(errno));
    return false;
  }
  sigfd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigfd_ < 0) {
    std::fprintf(stderr, "fulcrum-echo: signalfd: %s\n", std::strerror(errno));
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = EpollKey(sigfd_, 0);
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, sigfd_, &ev);
  listener_by_fd_.resize(static_cast<size_t>(sigfd_) + 1, -1);
  listener_by_fd_[static_cast<size_t>(sigfd_)] = static_cast<int>(listeners_.size());
  listeners_.push_back(Listener{Listener::Kind::kSignal, sigfd_, "signal", false});

  for (const auto& a : opt_.tcp) {
    if (!AddListener(Listener::Kind::kTcp, a)) return false;
  }
  for (const auto& a : opt_.http) {
    if (!AddListener(Listener::Kind::kHttp, a)) return false;
  }
  for (const auto& a : opt_.udp) {
    if (!AddListener(Listener::Kind::kUdp, a)) return false;
  }
  return true;
}

void Server::WriteReadyLines() {
  std::string lines;
  for (const auto& l : listeners_) {
    if (l.kind != Listener::Kind::kSignal) lines += "listening " + l.label + "\n";
  }
  std::fwrite(lines.data(), 1, lines.size(), stdout);
  std::fflush(stdout);
  if (opt_.ready_file.empty()) return;
  std::string tmp = opt_.ready_file + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << lines;
    f.flush();
    if (!f) {
      std::fprintf(stderr, "fulcrum-echo: cannot write %s\n", tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), opt_.ready_file.c_str()) != 0) {
    std::fprintf(stderr, "fulcrum-echo: rename %s: %s\n", tmp.c_str(), std::strerror(errno));
  }
}

// ---- Event loop ------------------------------------------------------------------------------

int Server::Run() {
  if (!Setup()) return 1;
  WriteReadyLines();

  epoll_event events[kMaxEvents];
  while (!stop_) {
    int n = ::epoll_wait(epfd_, events, kMaxEvents, NextTimeoutMs());
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "fulcrum-echo: epoll_wait: %s\n", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n && !stop_; ++i) {
      uint64_t key = events[i].data.u64;
      auto fd = static_cast<int>(key & 0xffffffffu);
      auto serial = static_cast<uint32_t>(key >> 32);
      auto ufd = static_cast<size_t>(fd);
      if (serial == 0) {
        if (ufd < listener_by_fd_.size() && listener_by_fd_[ufd] >= 0) {
          OnListener(listeners_[static_cast<size_t>(listener_by_fd_[ufd])]);
        }
        continue;
      }
      // A stale event for a connection closed earlier in this batch (its fd may be reused).
      if (ufd >= conns_.size() || !conns_[ufd] || conns_[ufd]->serial != serial) continue;
      OnConnEvent(*conns_[ufd], events[i].events);
    }
    RunTimers();
  }

  std::string counts;
  for (size_t i = 0; i < kCmdCount; ++i) {
    counts += std::string(" ") + kCommandNames[i] + "=" + std::to_string(tcp_commands_[i]);
  }
  Log("exiting: tcp connections=%llu (%s), http connections=%llu requests=%llu, udp "
      "datagrams=%llu",
      static_cast<unsigned long long>(tcp_connections_), counts.c_str() + 1,
      static_cast<unsigned long long>(http_connections_),
      static_cast<unsigned long long>(http_requests_),
      static_cast<unsigned long long>(udp_datagrams_));
  return 0;
}

void Server::OnListener(Listener& l) {
  if (l.kind == Listener::Kind::kSignal) {
    signalfd_siginfo info;
    while (::read(l.fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) stop_ = true;
    return;
  }
  if (l.kind == Listener::Kind::kUdp) {
    OnUdp(l);
    return;
  }
  for (int i = 0; i < kAcceptBatch; ++i) {
    int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      // Out of descriptors or memory: stop accepting for a moment instead of spinning.
      Log("accept on %s: %s (pausing accepts for 100 ms)", l.label.c_str(), std::strerror(errno));
      ::epoll_ctl(epfd_, EPOLL_CTL_DEL, l.fd, nullptr);
      l.paused = true;
      timers_.push(Timer{Clock::now() + kAcceptRetry, l.fd, 0, 0});
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->serial = next_serial_++;
    if (next_serial_ == 0) next_serial_ = 1;
    c->http = l.kind == Listener::Kind::kHttp;
    if (c->http) {
      ++http_connections_;
      HttpInit(*c);
    } else {
      ++tcp_connections_;
    }
    ++active_;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = EpollKey(fd, c->serial);
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      Log("epoll_ctl: %s", std::strerror(errno));
      ::close(fd);
      --active_;
      continue;
    }
    c->events = EPOLLIN;
    auto ufd = static_cast<size_t>(fd);
    if (conns_.size() <= ufd) conns_.resize(ufd + 1);
    conns_[ufd] = std::move(c);
  }
}

void Server::OnUdp(Listener& l) {
  for (int i = 0; i < kUdpBatch; ++i) {
    sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    ssize_t n = ::recvfrom(l.fd, scratch_.get(), kScratchSize, 0,
                           reinterpret_cast<sockaddr*>(&peer), &peer_len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      continue;  // e.g. ECONNREFUSED from an earlier reply's ICMP error
    }
    ++udp_datagrams_;
    const char* reply = scratch_.get();
    auto len = static_cast<size_t>(n);
    if (len == 4 && std::memcmp(reply, "NAME", 4) == 0) {
      reply = opt_.name.data();
      len = opt_.name.size();
    }
    // UDP has no backpressure: if the socket buffer is full the reply is dropped.
    ::sendto(l.fd, reply, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peer), peer_len);
  }
}

void Server::OnConnEvent(Conn& c, uint32_t events) {
  // EPOLLRDHUP is only requested while stalling: the peer closed, so do we.
  if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
    CloseConn(c);
    return;
  }
  if (c.finishing) {
    PumpFinishing(c);
    return;
  }
  if (c.http) {
    if (!HttpPump(c)) return;
    if (!c.finishing) UpdateInterest(c, HttpInterest(c));
  } else {
    if (!TcpPump(c)) return;
    if (!c.finishing) UpdateInterest(c, TcpInterest(c));
  }
}

void Server::UpdateInterest(Conn& c, uint32_t want) {
  if (want == c.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = EpollKey(c.fd, c.serial);
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.events = want;
}

void Server::CloseConn(Conn& c, bool reset) {
  if (reset) {
    linger lg{1, 0};
    ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  int fd = c.fd;
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  --active_;
  conns_[static_cast<size_t>(fd)].reset();  // frees `c`
}

void Server::DrainAndClose(Conn& c) {
  for (int i = 0; i < 64; ++i) {
    ssize_t n = ::recv(c.fd, scratch_.get(), kScratchSize, MSG_DONTWAIT);
    if (n <= 0) break;
  }
  ::shutdown(c.fd, SHUT_WR);
  CloseConn(c);
}

// ---- Timers ----------------------------------------------------------------------------------

void Server::SetTimer(Conn& c, std::chrono::milliseconds delay) {
  ++c.timer_token;
  timers_.push(Timer{Clock::now() + delay, c.fd, c.serial, c.timer_token});
}

int Server::NextTimeoutMs() const {
  if (timers_.empty()) return -1;
  auto left = timers_.top().when - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 60000 ? 60000 : static_cast<int>(ms);
}

void Server::RunTimers() {
  auto now = Clock::now();
  while (!timers_.empty() && timers_.top().when <= now && !stop_) {
    Timer t = timers_.top();
    timers_.pop();
    auto ufd = static_cast<size_t>(t.fd);
    if (t.serial == 0) {  // resume a paused listener
      if (ufd < listener_by_fd_.size() && listener_by_fd_[ufd] >= 0) {
        Listener& l = listeners_[static_cast<size_t>(listener_by_fd_[ufd])];
        if (l.paused) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = EpollKey(l.fd, 0);
          ::epoll_ctl(epfd_, EPOLL_CTL_ADD, l.fd, &ev);
          l.paused = false;
        }
      }
      continue;
    }
    if (ufd >= conns_.size() || !conns_[ufd]) continue;
    Conn& c = *conns_[ufd];
    if (c.serial != t.serial || c.timer_token != t.token) continue;  // cancelled
    if (c.finishing) {
      CloseConn(c);  // the peer never closed its side: give up waiting
    } else if (c.http) {
      HttpOnTimer(c);
    }
  }
}

// ---- Shared I/O helpers ----------------------------------------------------------------------

Server::Io Server::Recv(Conn& c, char* dst, size_t cap, size_t* got) {
  for (;;) {
    ssize_t n = ::recv(c.fd, dst, cap, 0);
    if (n > 0) {
      *got = static_cast<size_t>(n);
      return Io::kData;
    }
    if (n == 0) {
      c.read_eof = true;
      return Io::kEof;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Io::kAgain;
    return Io::kError;
  }
}

Server::Io Server::Send(Conn& c, const char* src, size_t len, size_t* sent, bool more) {
  for (;;) {
    ssize_t n = ::send(c.fd, src, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n >= 0) {
      *sent = static_cast<size_t>(n);
      return Io::kData;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Io::kAgain;
    return Io::kError;
  }
}

bool Server::StartFinish(Conn& c) {
  ::shutdown(c.fd, SHUT_WR);
  if (c.read_eof) {
    CloseConn(c);
    return false;
  }
  c.finishing = true;
  SetTimer(c, kLinger);
  UpdateInterest(c, EPOLLIN);
  return PumpFinishing(c);
}

bool Server::PumpFinishing(Conn& c) {
  for (int i = 0; i < 16; ++i) {
    size_t got = 0;
    switch (Recv(c, scratch_.get(), kScratchSize, &got)) {
      case Io::kData:
        continue;  // discarded
      case Io::kAgain:
        return true;
      case Io::kEof:
      case Io::kError:
        CloseConn(c);
        return false;
    }
  }
  return true;
}

int RunServer(const Options& options) {
  Server server(options);
  return server.Run();
}

}  // namespace echo
