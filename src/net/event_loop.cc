#include "net/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "base/clock.h"
#include "base/log.h"

namespace fulcrum::net {

namespace {
constexpr int kMaxEventsPerWait = 256;      // bounds one batch; more events wait for the next wait
constexpr size_t kMinHeapToCompact = 1024;  // below this, stale timer entries are not worth a pass
}  // namespace

Timer::Timer(EventLoop& loop, Callback callback, void* arg)
    : loop_(loop), callback_(callback), arg_(arg), slot_(loop.acquire_slot(this)) {}

Timer::~Timer() {
  if (armed_) --loop_.armed_timers_;
  loop_.release_slot(slot_);
}

void Timer::arm_at(int64_t deadline_ms) {
  if (armed_ && deadline_ms == deadline_ms_) return;
  loop_.invalidate_slot(slot_);
  deadline_ms_ = deadline_ms;
  if (!armed_) ++loop_.armed_timers_;
  armed_ = true;
  loop_.push_timer(slot_, deadline_ms);
}

void Timer::arm_in(int64_t delay_ms) {
  arm_at(loop_.now_ms() + delay_ms);
}

void Timer::cancel() {
  if (!armed_) return;
  armed_ = false;
  --loop_.armed_timers_;
  loop_.invalidate_slot(slot_);
}

base::Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return base::Error::system(errno, "epoll_create1 failed");
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    int err = errno;
    ::close(ep);
    return base::Error::system(err, "eventfd failed");
  }
  std::unique_ptr<EventLoop> loop(new EventLoop(ep, wake));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // null marks the wake fd
  if (epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev) != 0) {
    return base::Error::system(errno, "epoll_ctl(wake) failed");
  }
  return loop;
}

EventLoop::EventLoop(int epoll_fd, int wake_fd) : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {
  refresh_now();
}

EventLoop::~EventLoop() {
  graveyard_.clear();
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void EventLoop::refresh_now() {
  now_ms_ = base::monotonic_ms();
}

base::Status EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return base::Error::system(errno, std::string("epoll_ctl(add): ") + std::strerror(errno));
  }
  return {};
}

base::Status EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return base::Error::system(errno, std::string("epoll_ctl(mod): ") + std::strerror(errno));
  }
  return {};
}

void EventLoop::remove(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::stop() {
  {
    std::lock_guard lock(posted_mutex_);
    stop_requested_ = true;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void EventLoop::defer_delete(std::unique_ptr<Deferred> object) {
  graveyard_.push_back(std::move(object));
}

void EventLoop::at_batch_end(BatchEnd* handler) {
  if (handler->batch_end_queued_) return;
  handler->batch_end_queued_ = true;
  batch_end_.push_back(handler);
}

void EventLoop::run_batch_end() {
  while (!batch_end_.empty()) {
    batch_end_running_.swap(batch_end_);
    for (BatchEnd* h : batch_end_running_) {
      h->batch_end_queued_ = false;
      h->on_batch_end();
    }
    batch_end_running_.clear();
  }
}

uint32_t EventLoop::acquire_slot(Timer* owner) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back({});
  }
  slots_[slot].owner = owner;
  return slot;
}

void EventLoop::release_slot(uint32_t slot) {
  slots_[slot].owner = nullptr;
  ++slots_[slot].generation;
  free_slots_.push_back(slot);
}

void EventLoop::invalidate_slot(uint32_t slot) {
  ++slots_[slot].generation;
}

void EventLoop::push_timer(uint32_t slot, int64_t deadline_ms) {
  heap_.push_back({deadline_ms, slot, slots_[slot].generation});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  // Cancelled and re-armed timers leave stale entries behind until their deadline (up to the
  // 900 s idle timeout). When they outnumber the live ones, drop them all: amortised O(1) per arm,
  // and the heap stays within about twice the armed timers.
  if (heap_.size() > 2 * static_cast<size_t>(armed_timers_) + kMinHeapToCompact) compact_timers();
}

void EventLoop::compact_timers() {
  std::erase_if(heap_, [this](const HeapEntry& e) {
    const Slot& s = slots_[e.slot];
    return s.owner == nullptr || s.generation != e.generation;
  });
  std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
}

int EventLoop::next_timeout_ms() const {
  if (!graveyard_.empty()) return 0;
  if (heap_.empty()) return -1;
  int64_t wait = heap_.front().deadline_ms - base::monotonic_ms();
  if (wait < 0) return 0;
  return static_cast<int>(std::min<int64_t>(wait + 1, 60000));  // +1: never wake a hair early
}

void EventLoop::run_timers() {
  while (!heap_.empty() && heap_.front().deadline_ms <= now_ms_) {
    HeapEntry top = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
    Slot& slot = slots_[top.slot];
    if (slot.owner == nullptr || slot.generation != top.generation) continue;  // stale
    Timer* timer = slot.owner;
    timer->armed_ = false;
    --armed_timers_;
    ++slot.generation;
    timer->callback_(timer->arg_);
  }
}

void EventLoop::run_posted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(posted_mutex_);
    batch.swap(posted_);
    if (stop_requested_) stopping_ = true;
  }
  for (auto& fn : batch) fn();
}

bool EventLoop::try_post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mutex_);
    if (finished_) return false;
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  return true;
}

void EventLoop::run() {
  {
    std::lock_guard lock(posted_mutex_);
    finished_ = false;
  }
  epoll_event events[kMaxEventsPerWait];
  while (!stopping_) {
    int n = epoll_wait(epoll_fd_, events, kMaxEventsPerWait, next_timeout_ms());
    if (n < 0 && errno != EINTR) {
      FLOG_ERROR("epoll_wait failed: {}", std::strerror(errno));
      break;
    }
    refresh_now();
    bool posted = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
        posted = true;
        continue;
      }
      static_cast<IoHandler*>(events[i].data.ptr)->on_io(events[i].events);
    }
    // Posted work and timers run between batches, never inside one: they may destroy handlers
    // (a removed listener) that later events of the same batch would otherwise still reach.
    run_batch_end();
    if (posted) run_posted();
    run_timers();
    run_batch_end();
    bury_dead();
  }
  {
    std::lock_guard lock(posted_mutex_);
    finished_ = true;  // what try_post accepted so far runs just below; nothing after
  }
  run_posted();
  bury_dead();
}

void EventLoop::bury_dead() {
  // Destructors may defer more objects; keep going until none are left.
  while (!graveyard_.empty()) {
    dying_.swap(graveyard_);
    dying_.clear();
  }
}

}  // namespace fulcrum::net
