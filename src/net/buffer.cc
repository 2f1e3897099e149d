#include "net/buffer.h"

#include <fcntl.h>
#include <unistd.h>

namespace fulcrum::net {

std::unique_ptr<Buffer> BufferPool::get() {
  if (idle_.empty()) return std::make_unique<Buffer>();
  std::unique_ptr<Buffer> b = std::move(idle_.back());
  idle_.pop_back();
  b->clear();
  return b;
}

void BufferPool::put(std::unique_ptr<Buffer> buffer) {
  if (buffer && idle_.size() < max_idle_) idle_.push_back(std::move(buffer));
}

PipePool::~PipePool() {
  for (Pipe& p : idle_) {
    ::close(p.read_fd);
    ::close(p.write_fd);
  }
}

bool PipePool::get(Pipe* out) {
  if (!idle_.empty()) {
    *out = idle_.back();
    idle_.pop_back();
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  fcntl(fds[1], F_SETPIPE_SZ, pipe_bytes_);  // best effort: a smaller pipe still works
  *out = Pipe{fds[0], fds[1], 0};
  return true;
}

void PipePool::put(Pipe* pipe) {
  if (pipe->read_fd < 0) return;
  if (pipe->pending == 0 && idle_.size() < max_idle_) {
    idle_.push_back(*pipe);
  } else {
    ::close(pipe->read_fd);
    ::close(pipe->write_fd);
  }
  *pipe = Pipe{};
}

}  // namespace fulcrum::net
