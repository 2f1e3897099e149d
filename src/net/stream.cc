#include "net/stream.h"

#include <sys/socket.h>

#include <cerrno>

namespace fulcrum::net {

void Stream::close_with_reset() {
  if (fd_) set_linger_reset(fd_.get());
  fd_.reset();
}

IoResult SocketStream::read(char* buf, size_t n) {
  for (;;) {
    ssize_t got = ::recv(fd_.get(), buf, n, 0);
    if (got > 0) {
      auto bytes = static_cast<size_t>(got);
      return {IoStatus::kOk, bytes, bytes == n};
    }
    if (got == 0) return {IoStatus::kEof, 0, false};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoStatus::kBlocked, 0, false};
    return {IoStatus::kError, 0, false};
  }
}

IoResult SocketStream::write(const char* buf, size_t n) {
  for (;;) {
    ssize_t put = ::send(fd_.get(), buf, n, MSG_NOSIGNAL);
    if (put >= 0) return {IoStatus::kOk, static_cast<size_t>(put), true};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoStatus::kBlocked, 0, false};
    return {IoStatus::kError, 0, false};
  }
}

}  // namespace fulcrum::net
