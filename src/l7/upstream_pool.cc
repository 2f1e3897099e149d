#include "l7/upstream_pool.h"

#include <sys/epoll.h>

#include <algorithm>

namespace fulcrum::l7 {

namespace {
constexpr int64_t kSweepIntervalMs = 1000;
}

struct UpstreamPool::Idle final : net::IoHandler, net::Deferred {
  UpstreamPool* pool = nullptr;
  uint64_t key = 0;
  net::UniqueFd fd;
  int64_t since_ms = 0;
  // Any readiness while idle (FIN, RST, stray bytes) makes the connection unusable.
  void on_io(uint32_t /*events*/) override { pool->drop(this); }
};

UpstreamPool::UpstreamPool(net::EventLoop& loop, Limits limits)
    : loop_(loop), limits_(limits), sweep_(loop, &UpstreamPool::on_sweep, this) {}

UpstreamPool::~UpstreamPool() {
  for (auto& [key, list] : by_backend_) {
    for (Idle* idle : list) {
      loop_.remove(idle->fd.get());
      delete idle;
    }
  }
}

net::UniqueFd UpstreamPool::take(uint64_t key) {
  auto it = by_backend_.find(key);
  if (it == by_backend_.end() || it->second.empty()) return {};
  Idle* idle = it->second.back();
  it->second.pop_back();
  --idle_count_;
  ++reused_;
  net::UniqueFd fd = std::move(idle->fd);
  loop_.defer_delete(std::unique_ptr<net::Deferred>(idle));  // an event may be queued for it
  return fd;
}

void UpstreamPool::put(uint64_t key, net::UniqueFd fd) {
  auto& list = by_backend_[key];
  if (list.size() >= limits_.max_idle_per_backend) drop(list.front());  // the oldest goes
  auto* idle = new Idle;
  idle->pool = this;
  idle->key = key;
  idle->fd = std::move(fd);
  idle->since_ms = loop_.now_ms();
  if (!loop_.modify(idle->fd.get(), EPOLLIN | EPOLLRDHUP, idle).ok()) {
    delete idle;
    return;
  }
  list.push_back(idle);
  ++idle_count_;
  if (!sweep_.armed()) sweep_.arm_in(kSweepIntervalMs);
}

void UpstreamPool::drop(Idle* idle) {
  auto& list = by_backend_[idle->key];
  auto it = std::find(list.begin(), list.end(), idle);
  if (it == list.end()) return;  // already handed out or dropped
  list.erase(it);
  --idle_count_;
  loop_.remove(idle->fd.get());
  idle->fd.reset();
  loop_.defer_delete(std::unique_ptr<net::Deferred>(idle));
}

void UpstreamPool::on_sweep(void* self) {
  auto* pool = static_cast<UpstreamPool*>(self);
  int64_t oldest_allowed = pool->loop_.now_ms() - pool->limits_.max_idle_ms;
  for (auto& [key, list] : pool->by_backend_) {
    while (!list.empty() && list.front()->since_ms <= oldest_allowed) pool->drop(list.front());
  }
  if (pool->idle_count_ > 0) pool->sweep_.arm_in(kSweepIntervalMs);
}

}  // namespace fulcrum::l7
