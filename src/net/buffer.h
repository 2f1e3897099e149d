// Relay buffers and splice pipes, pooled per worker so an idle connection holds neither.
// [worker] only: a pool belongs to one worker's loop.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace fulcrum::net {

struct Buffer {
  static constexpr size_t kCapacity = 16 * 1024;  // one TLS record / a few TCP segments
  size_t begin = 0;
  size_t end = 0;
  char data[kCapacity];

  size_t readable() const { return end - begin; }
  size_t writable() const { return kCapacity - end; }
  bool empty() const { return begin == end; }
  void clear() { begin = end = 0; }
};

class BufferPool {
 public:
  explicit BufferPool(size_t max_idle = 1024) : max_idle_(max_idle) {}
  std::unique_ptr<Buffer> get();
  // Returns a buffer for reuse (LIFO: the warmest one goes out next).
  void put(std::unique_ptr<Buffer> buffer);

 private:
  size_t max_idle_;
  std::vector<std::unique_ptr<Buffer>> idle_;
};

// A non-blocking pipe used as the kernel-side buffer for splice(2).
struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
  size_t pending = 0;  // bytes inside the pipe
};

class PipePool {
 public:
  // `pipe_bytes`: size asked for with F_SETPIPE_SZ (the kernel may round it).
  explicit PipePool(size_t max_idle = 256, int pipe_bytes = 512 * 1024)
      : max_idle_(max_idle), pipe_bytes_(pipe_bytes) {}
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;
  // A fresh or reused empty pipe; false when the system is out of descriptors.
  bool get(Pipe* out);
  // Returns an empty pipe to the pool; a pipe with data in it is closed instead.
  void put(Pipe* pipe);
  int pipe_bytes() const { return pipe_bytes_; }

 private:
  size_t max_idle_;
  int pipe_bytes_;
  std::vector<Pipe> idle_;
};

}  // namespace fulcrum::net
