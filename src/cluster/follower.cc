#include "cluster/follower.h"

#include <algorithm>

#include "base/log.h"
#include "net/event_loop.h"

namespace fulcrum::cluster {

Follower::Follower(net::EventLoop& loop, store::Store& store, std::string prefix,
                   std::string guard_key, ApplyFn apply)
    : loop_(loop),
      store_(store),
      prefix_(std::move(prefix)),
      guard_key_(std::move(guard_key)),
      apply_(std::move(apply)) {
  retry_ = std::make_unique<net::Timer>(loop_, &Follower::on_retry, this);
}

Follower::~Follower() {
  if (watch_ != store::kNoWatch) store_.unwatch(watch_);
}

std::pair<KeyMap, int64_t> Follower::split(store::RangeResult read, const std::string& guard_key) {
  KeyMap kvs;
  int64_t revision = 0;
  int64_t newest = 0;
  for (auto& kv : read.kvs) {
    if (!guard_key.empty() && kv.key == guard_key) {
      revision = kv.mod_revision;
      continue;
    }
    newest = std::max(newest, kv.mod_revision);
    kvs.emplace(std::move(kv.key), std::move(kv.value));
  }
  // No guard yet (keys written before it existed, or by hand): the newest key's revision.
  return {std::move(kvs), std::max(revision, newest)};
}

void Follower::start(KeyMap kvs, int64_t revision, int64_t read_revision) {
  kvs_ = std::move(kvs);
  revision_ = revision;
  seen_ = std::max(revision, read_revision);
  watch();
}

void Follower::watch() {
  if (watch_ != store::kNoWatch) store_.unwatch(watch_);
  auto id = store_.watch_checked(
      prefix_, seen_, [this](const std::vector<store::Event>& events) { on_events(events); },
      [this](const base::Error&) {
        watch_ = store::kNoWatch;
        on_lost();
      });
  if (!id.ok()) {
    FLOG_WARN("store watch of {} from revision {}: {}", prefix_, seen_, id.error().message);
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

void Follower::change(store::Op::Kind kind, const std::string& key, const std::string& value) {
  if (!guard_key_.empty() && key == guard_key_) return;  // its revision is the copy's, not a key
  if (kind == store::Op::Kind::kPut) {
    kvs_[key] = value;
  } else {
    kvs_.erase(key);
  }
}

void Follower::deliver(const std::vector<store::Event>& events) {
  if (events.empty() || events.front().revision <= seen_) return;
  seen_ = events.front().revision;
  for (const auto& e : events) change(e.kind, e.key, e.value);
  revision_ = events.front().revision;
  apply_(kvs_, revision_);
}

void Follower::begin() {
  on_lost();
}

// The history the watch needed is gone (or there is no copy yet): read everything again (retrying
// while the store is unreachable) and watch from there.
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
    if (r->revision > seen_ || watch_ == store::kNoWatch) {
      int64_t header = r->revision;
      auto [fresh, revision] = split(std::move(*r), guard_key_);
      bool moved = fresh != kvs_ || revision != revision_;
      kvs_ = std::move(fresh);
      revision_ = revision;
      seen_ = std::max(seen_, header);
      held_.clear();
      if (watch_ == store::kNoWatch) watch();
      if (moved) apply_(kvs_, revision_);
    }
    done({});
  });
}

void Follower::committed(const std::vector<store::Op>& ops, int64_t revision) {
  for (const auto& op : ops) change(op.kind, op.key, op.value);
  revision_ = std::max(revision_, revision);
  seen_ = std::max(seen_, revision);
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
