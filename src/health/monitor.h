// Active health checks (tcp, http, udp) and passive failure reports for every (listener, backend)
// pair of the current snapshot, on the control thread's event loop. One check per interval per pair
// whatever the number of workers; checks are spread by jitter so they never arrive in bursts. The
// result is a HealthTable that config::compile folds into the next snapshot: health reaches the
// workers through the same publication as configuration. [control]
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/event_loop.h"
#include "snapshot/snapshot.h"

namespace fulcrum::health {

class Probe;

class Monitor {
 public:
  // `on_change` runs on the loop thread, once per loop iteration in which statuses changed; the
  // owner republishes with table().
  Monitor(net::EventLoop& loop, std::function<void()> on_change);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Reconciles checks with the running listeners of `snap`: a pair whose listener, backend
  // address and check settings are unchanged keeps its state and schedule; new pairs start
  // unchecked; the others stop. Pairs of listeners with health_check.enabled = false are not kept.
  void update(const snapshot::Snapshot& snap);
  // Real traffic failed to connect to a backend (key = snapshot::health_key). Ejects it at once
  // if it has an active check (without one nothing would bring it back, so it is ignored).
  void report_failure(const std::string& key, const std::string& error);

  const snapshot::HealthTable& table() const { return table_; }
  size_t size() const { return probes_.size(); }
  uint64_t checks_started() const { return checks_started_; }

  // Active checks finished for one (listener, backend) pair, since its checks (re)started (a
  // change of its address or check settings starts them again from zero).
  struct CheckCounts {
    std::string lb;
    std::string listener;  // listener id, "http:8080"
    std::string backend;   // "address:port"
    uint64_t successes = 0;
    uint64_t failures = 0;  // timeouts and refused connections included; passive reports not
  };
  // Every pair checked now, ordered by health key.
  std::vector<CheckCounts> check_counts() const;

 private:
  friend class Probe;
  void changed(const Probe& probe);
  static void on_flush(void* self);

  net::EventLoop& loop_;
  std::function<void()> on_change_;
  std::map<std::string, std::unique_ptr<Probe>> probes_;  // by health key
  snapshot::HealthTable table_;
  net::Timer flush_timer_;  // coalesces changes of one iteration into one on_change
  uint64_t checks_started_ = 0;
};

}  // namespace fulcrum::health
