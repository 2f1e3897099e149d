#include "l7/upstream_pool.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace fulcrum::l7 {

namespace {
constexpr int64_t kSweepIntervalMs = 1000;
}

void UpstreamConn::on_io(uint32_t events) {
  if (owner_) {
    owner_->on_upstream_io(events);
  } else if (pool_ && fd_) {
    pool_->on_idle_event(this);
  }
  // No fd: a connection closed earlier in this batch; its memory goes after the batch.
}

UpstreamPool::UpstreamPool(net::EventLoop& loop, Limits limits)
    : loop_(loop), limits_(limits), sweep_(loop, &UpstreamPool::on_sweep, this) {}

UpstreamPool::~UpstreamPool() {
  for (auto& [key, list] : idle_) {
    for (UpstreamConn* c : list) {
      loop_.remove(c->fd());
      delete c;
    }
  }
}

UpstreamConn* UpstreamPool::adopt(net::UniqueFd fd, uint64_t backend_id, uint32_t events,
                                  UpstreamOwner* owner) {
  auto conn = std::make_unique<UpstreamConn>();
  conn->pool_ = this;
  conn->fd_ = std::move(fd);
  conn->backend_id_ = backend_id;
  conn->owner_ = owner;
  if (!loop_.add(conn->fd(), events, conn.get()).ok()) return nullptr;
  return conn.release();
}

UpstreamConn* UpstreamPool::take(uint64_t backend_id, UpstreamOwner* owner) {
  auto it = idle_.find(backend_id);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  UpstreamConn* conn = it->second.back();
  it->second.pop_back();
  --idle_count_;
  ++reused_;
  conn->owner_ = owner;
  return conn;
}

void UpstreamPool::put(UpstreamConn* conn) {
  auto& list = idle_[conn->backend_id_];
  if (list.size() >= limits_.max_idle_per_backend) {
    UpstreamConn* oldest = list.front();
    unlink(oldest);
    close(oldest);
  }
  conn->owner_ = nullptr;
  conn->idle_since_ms_ = loop_.now_ms();
  list.push_back(conn);
  ++idle_count_;
  if (!sweep_.armed()) sweep_.arm_in(kSweepIntervalMs);
}

void UpstreamPool::close(UpstreamConn* conn) {
  conn->owner_ = nullptr;
  if (conn->fd_) {
    loop_.remove(conn->fd());
    conn->fd_.reset();
  }
  loop_.defer_delete(std::unique_ptr<net::Deferred>(conn));  // events may still be queued for it
}

bool UpstreamPool::still_idle(const UpstreamConn& conn) {
  char byte;
  ssize_t n = ::recv(conn.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void UpstreamPool::unlink(UpstreamConn* conn) {
  auto& list = idle_[conn->backend_id_];
  auto it = std::find(list.begin(), list.end(), conn);
  if (it == list.end()) return;
  list.erase(it);
  --idle_count_;
}

void UpstreamPool::on_idle_event(UpstreamConn* conn) {
  if (still_idle(*conn)) return;  // a spurious wake-up
  unlink(conn);
  close(conn);
}

void UpstreamPool::on_sweep(void* self) {
  auto* pool = static_cast<UpstreamPool*>(self);
  int64_t oldest_allowed = pool->loop_.now_ms() - pool->limits_.max_idle_ms;
  for (auto& [key, list] : pool->idle_) {
    while (!list.empty() && list.front()->idle_since_ms_ <= oldest_allowed) {
      UpstreamConn* conn = list.front();
      list.erase(list.begin());
      --pool->idle_count_;
      pool->close(conn);
    }
  }
  if (pool->idle_count_ > 0) pool->sweep_.arm_in(kSweepIntervalMs);
}

}  // namespace fulcrum::l7
