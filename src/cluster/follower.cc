#include "cluster/follower.h"

#include <algorithm>

#include "base/log.h"
#include "net/event_loop.h"

namespace fulcrum::cluster {

Follower::Follower(net::EventLoop& loop, store::Store& store, std::string prefix, ApplyFn apply)
    : loop_(loop), store_(store), prefix_(std::move(prefix)), apply_(std::move(apply)) {
  retry_ = std::make_unique<net::Timer>(loop_, &Follower::on_retry, this);
}

Follower::~Follower() {
  if (watch_ != store::kNoWatch) store_.unwatch(watch_);
}

void Follower::start(KeyMap kvs, int64_t revision) {
  kvs_ = std::move(kvs);
  revision_ = revision;
  watch();
}

void Follower::watch() {
  if (watch_ != store::kNoWatch) store_.unwatch(watch_);
  auto id = store_.watch_checked(
      prefix_, revision_, [this](const std::vector<store::Event>& events) { on_events(events); },
      [this](const base::Error&) {
        watch_ = store::kNoWatch;
        on_lost();
      });
  if (!id.ok()) {
    FLOG_WARN("store watch of {} from revision {}: {}", prefix_, revision_, id.error().message);
    on_lost();
    return;
  }
  watch_ = *id;
}

void Follower::on_events(const std::vector<store::Event>& events) {
  caught_up_ = true;
  if (holds_ > 0) {
    held_.push_back(events);
    return;
  }
  deliver(events);
}

void Follower::deliver(const std::vector<store::Event>& events) {
  if (events.empty() || events.front().revision <= revision_) return;
  for (const auto& e : events) {
    if (e.kind == store::Op::Kind::kPut) {
      kvs_[e.key] = e.value;
    } else {
      kvs_.erase(e.key);
    }
  }
  revision_ = events.front().revision;
  apply_(kvs_, revision_);
}

// The history the watch needed is gone: read everything again (retrying while the store is
// unreachable) and watch from there.
void Follower::on_lost() {
  refresh([this](base::Status st) {
    if (!st.ok()) {
      retry_->arm_in(retry_ms_);
      retry_ms_ = std::min<int64_t>(retry_ms_ * 2, 2000);
    }
  });
}

void Follower::on_retry(void* self) {
  static_cast<Follower*>(self)->on_lost();
}

void Follower::refresh(std::function<void(base::Status)> done) {
  store_.range_async(prefix_, [this, done = std::move(done)](base::Result<store::RangeResult> r) {
    if (!r.ok()) {
      caught_up_ = false;
      return done(r.take_error());
    }
    retry_ms_ = 100;
    caught_up_ = true;
    if (r->revision > revision_ || watch_ == store::kNoWatch) {
      KeyMap fresh;
      for (auto& kv : r->kvs) fresh.emplace(std::move(kv.key), std::move(kv.value));
      bool moved = fresh != kvs_ || r->revision > revision_;
      kvs_ = std::move(fresh);
      revision_ = std::max(revision_, r->revision);
      held_.clear();
      if (watch_ == store::kNoWatch) watch();
      if (moved) apply_(kvs_, revision_);
    }
    done({});
  });
}

void Follower::committed(const std::vector<store::Op>& ops, int64_t revision) {
  for (const auto& op : ops) {
    if (op.kind == store::Op::Kind::kPut) {
      kvs_[op.key] = op.value;
    } else {
      kvs_.erase(op.key);
    }
  }
  revision_ = std::max(revision_, revision);
}

void Follower::hold() {
  ++holds_;
}

void Follower::release() {
  if (holds_ > 0) --holds_;
  if (holds_ > 0) return;
  while (!held_.empty() && holds_ == 0) {
    auto events = std::move(held_.front());
    held_.pop_front();
    deliver(events);
  }
}

}  // namespace fulcrum::cluster
