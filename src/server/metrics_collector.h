// Collection of the metrics report: the control thread asks every worker for a copy of its
// counters (a posted message; the worker answers by posting the copy back), adds what the control
// plane knows (backend health from the running snapshot, health-check counts from the monitor),
// sums and renders. Workers never lock or share a counter; nothing here runs per request.
// [control]
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "metrics/sample.h"
#include "net/event_loop.h"
#include "server/worker.h"
#include "snapshot/snapshot.h"

namespace fulcrum::health {
class Monitor;
}

namespace fulcrum::server {

// [control] Renders the Prometheus text of `workers`, `snapshot` (the running generation; null
// before the first publication) and `monitor` (may be null), and hands it to `done` on
// `control_loop` (never from inside this call). A worker whose loop has stopped (drained) counts as
// having nothing to report; `done` runs once every other worker answered. `workers` need not
// outlive the call; `control_loop` must outlive the answers.
void collect(const std::vector<std::unique_ptr<Worker>>& workers, net::EventLoop& control_loop,
             std::shared_ptr<const snapshot::Snapshot> snapshot, const health::Monitor* monitor,
             std::function<void(std::string text)> done);
// The same, with what the control plane knows of the store and the cluster.
void collect(const std::vector<std::unique_ptr<Worker>>& workers, net::EventLoop& control_loop,
             std::shared_ptr<const snapshot::Snapshot> snapshot, const health::Monitor* monitor,
             metrics::StoreSample store, std::function<void(std::string text)> done);

// The status of every backend of every running listener of `snap` (each server group the
// listener sends to, once), as fulcrum_backend_up / fulcrum_backend_health report it.
std::vector<metrics::BackendHealthSample> backend_health(const snapshot::Snapshot& snap);

}  // namespace fulcrum::server
