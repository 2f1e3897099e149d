// The health of one backend as seen by one listener's checks: a hysteresis state machine fed by
// active check results and by failures that real traffic saw. Pure: time is passed in. [control]
//
//   unchecked --1 success--> healthy
//   unchecked/healthy --unhealthy_threshold failures in a row--> unhealthy
//   unchecked/healthy --a passive failure (real traffic)--> unhealthy at once
//   unhealthy --healthy_threshold successes in a row--> healthy
#pragma once

#include <cstdint>
#include <string>

#include "snapshot/snapshot.h"

namespace fulcrum::health {

struct Thresholds {
  uint32_t healthy = 3;    // 2–10
  uint32_t unhealthy = 3;  // 2–10
};

class BackendHealth {
 public:
  snapshot::Health status() const { return status_; }
  // Monotonic ms of the last status change (0: never changed).
  int64_t changed_ms() const { return changed_ms_; }
  // Why the last failure happened ("connect: Connection refused", "status 500"); empty if none.
  const std::string& last_error() const { return last_error_; }

  // An active check finished. Returns true when the status changed.
  bool on_check(bool ok, int64_t now_ms, const Thresholds& t, std::string error = {});
  // Real traffic failed to reach the backend (connect refused, timed out). Returns true when the
  // status changed (to unhealthy).
  bool on_passive_failure(int64_t now_ms, std::string error);

 private:
  void set(snapshot::Health s, int64_t now_ms);

  snapshot::Health status_ = snapshot::Health::kUnchecked;
  uint32_t successes_ = 0;  // in a row
  uint32_t failures_ = 0;   // in a row
  int64_t changed_ms_ = 0;
  std::string last_error_;
};

}  // namespace fulcrum::health
