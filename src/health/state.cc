#include "health/state.h"

namespace fulcrum::health {

using snapshot::Health;

void BackendHealth::set(Health s, int64_t now_ms) {
  status_ = s;
  changed_ms_ = now_ms;
  successes_ = 0;
  failures_ = 0;
}

bool BackendHealth::on_check(bool ok, int64_t now_ms, const Thresholds& t, std::string error) {
  if (ok) {
    failures_ = 0;
    ++successes_;
    if (status_ == Health::kUnchecked ||
        (status_ == Health::kUnhealthy && successes_ >= t.healthy)) {
      set(Health::kHealthy, now_ms);
      return true;
    }
    return false;
  }
  last_error_ = std::move(error);
  successes_ = 0;
  ++failures_;
  if (status_ != Health::kUnhealthy && failures_ >= t.unhealthy) {
    set(Health::kUnhealthy, now_ms);
    return true;
  }
  return false;
}

bool BackendHealth::on_passive_failure(int64_t now_ms, std::string error) {
  if (status_ == Health::kUnhealthy) {
    // Already out; a failure seen by traffic still resets the way back in.
    successes_ = 0;
    return false;
  }
  last_error_ = std::move(error);
  set(Health::kUnhealthy, now_ms);
  return true;
}

}  // namespace fulcrum::health
