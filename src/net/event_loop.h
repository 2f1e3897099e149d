// One event loop per thread: epoll (edge-triggered), timers, cross-thread posts, deferred deletion.
// Everything here runs on the loop's own thread ([worker] or [control]) except post() and stop(),
// which any thread may call.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"

namespace fulcrum::net {

// Receives readiness for one fd. With edge triggering the handler must read/write until EAGAIN
// or remember that the fd is still ready.
class IoHandler {
 public:
  virtual void on_io(uint32_t events) = 0;

 protected:
  ~IoHandler() = default;
};

// Objects whose destruction must wait until the current batch of events is done (a session closed
// by one event may still have events pending in the same batch).
class Deferred {
 public:
  virtual ~Deferred() = default;
};

class EventLoop;

// A one-shot timer owned by its user. Re-arming replaces the previous deadline. Destroying the
// Timer cancels it. The callback runs on the loop thread. Not copyable or movable (the loop keeps
// its slot).
class Timer {
 public:
  using Callback = void (*)(void* arg);
  Timer(EventLoop& loop, Callback callback, void* arg);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void arm_at(int64_t deadline_ms);
  void arm_in(int64_t delay_ms);
  void cancel();
  bool armed() const { return armed_; }
  int64_t deadline_ms() const { return deadline_ms_; }

 private:
  friend class EventLoop;
  EventLoop& loop_;
  Callback callback_;
  void* arg_;
  uint32_t slot_;
  int64_t deadline_ms_ = 0;
  bool armed_ = false;
};

// Work an object wants done once after the events of the current batch (coalescing what many
// events of one batch would each do: one write of an HTTP/2 connection's frames for all its
// streams that moved). [loop thread]
class BatchEnd {
 public:
  virtual ~BatchEnd() = default;
  virtual void on_batch_end() = 0;

 private:
  friend class EventLoop;
  bool batch_end_queued_ = false;
};

class EventLoop {
 public:
  static base::Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Registers `fd` edge-triggered for `events` (EPOLLIN|EPOLLOUT|EPOLLRDHUP...). The handler must
  // outlive the registration; closing the fd removes it.
  base::Status add(int fd, uint32_t events, IoHandler* handler);
  base::Status modify(int fd, uint32_t events, IoHandler* handler);
  void remove(int fd);

  // Runs until stop(). [loop thread]
  void run();
  // Asks run() to return after the current batch. [any]
  void stop();
  // Queues `fn` to run on the loop thread, after the current batch of events. [any] Takes a mutex:
  // for control messages, never per request. `fn` may destroy IoHandlers directly.
  void post(std::function<void()> fn);
  // As post(), but refused once the loop has finished running (run() is past its last turn after
  // stop()): returns false and `fn` is destroyed on the calling thread without running. A message
  // accepted while the loop runs always runs. For a caller that waits for an answer. [any]
  bool try_post(std::function<void()> fn);

  // Destroys `object` after the current batch of events. [loop thread]
  void defer_delete(std::unique_ptr<Deferred> object);
  // Calls handler->on_batch_end() once after the current batch of events (before timers, posted
  // work and deferred deletions; queued again from there, it runs in the same round). The handler
  // must stay alive until then (defer_delete keeps it so). [loop thread]
  void at_batch_end(BatchEnd* handler);

  // Wall of the loop: monotonic milliseconds, refreshed after every epoll_wait. [loop thread]
  int64_t now_ms() const { return now_ms_; }
  void refresh_now();

  // Timers armed now, and entries in the timer heap (armed plus stale ones not yet dropped).
  size_t armed_timers() const { return armed_timers_; }
  size_t timer_heap_size() const { return heap_.size(); }

 private:
  friend class Timer;
  struct Slot {
    Timer* owner = nullptr;
    uint32_t generation = 0;
  };
  struct HeapEntry {
    int64_t deadline_ms;
    uint32_t slot;
    uint32_t generation;
    bool operator>(const HeapEntry& o) const { return deadline_ms > o.deadline_ms; }
  };

  EventLoop(int epoll_fd, int wake_fd);
  uint32_t acquire_slot(Timer* owner);
  void release_slot(uint32_t slot);
  void push_timer(uint32_t slot, int64_t deadline_ms);
  void invalidate_slot(uint32_t slot);
  void compact_timers();
  int next_timeout_ms() const;
  void run_timers();
  void run_posted();
  void run_batch_end();
  void bury_dead();

  int epoll_fd_;
  int wake_fd_;
  int64_t now_ms_ = 0;
  bool stopping_ = false;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<HeapEntry> heap_;  // min-heap by deadline; stale entries skipped by generation
  uint32_t armed_timers_ = 0;
  std::vector<BatchEnd*> batch_end_;
  std::vector<BatchEnd*> batch_end_running_;
  std::vector<std::unique_ptr<Deferred>> graveyard_;
  std::vector<std::unique_ptr<Deferred>> dying_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  bool stop_requested_ = false;  // guarded by posted_mutex_
  bool finished_ = false;        // guarded by posted_mutex_: run() took its last posted batch
};

}  // namespace fulcrum::net
