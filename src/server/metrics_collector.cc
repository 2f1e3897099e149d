#include "server/metrics_collector.h"

#include <set>
#include <utility>

#include "health/monitor.h"
#include "metrics/prometheus.h"

namespace fulcrum::server {

namespace {

// One collection in progress. Touched only on the control loop (workers only carry the
// shared_ptr through their answer).
struct Collection {
  metrics::Report report;
  std::vector<metrics::WorkerSample> samples;  // by worker index
  size_t waiting = 0;                          // answers still expected
  std::function<void(std::string)> done;
};

void answered(Collection& c) {
  if (--c.waiting > 0) return;
  c.report.listeners = metrics::aggregate(c.samples);
  c.samples.clear();
  auto done = std::move(c.done);  // the Collection may die on a worker thread: keep nothing
  done(metrics::render_prometheus(c.report));
}

metrics::BackendStatus to_status(std::string_view s) {
  if (s == "healthy") return metrics::BackendStatus::kHealthy;
  if (s == "unhealthy") return metrics::BackendStatus::kUnhealthy;
  if (s == "draining") return metrics::BackendStatus::kDraining;
  return metrics::BackendStatus::kUnchecked;
}

}  // namespace

std::vector<metrics::BackendHealthSample> backend_health(const snapshot::Snapshot& snap) {
  std::vector<metrics::BackendHealthSample> out;
  for (const auto& l : snap.listeners) {
    if (!l->running) continue;
    auto add_group = [&](const snapshot::ServerGroup& group,
                         const std::vector<snapshot::Health>& health) {
      for (size_t i = 0; i < group.backends.size(); ++i) {
        const snapshot::Backend& b = group.backends[i];
        snapshot::Health h = i < health.size() ? health[i] : snapshot::Health::kUnchecked;
        out.push_back({l->lb_name, l->id, group.name, b.name,
                       to_status(snapshot::backend_status(b.weight, h))});
      }
    };
    if (l->targets.empty()) {
      if (l->group) add_group(*l->group, l->health);
      continue;
    }
    std::set<std::string> seen;  // two rules to one group: one set of series
    for (const snapshot::HttpTarget& t : l->targets) {
      if (t.group && seen.insert(t.group->name).second) add_group(*t.group, t.health);
    }
  }
  return out;
}

void collect(const std::vector<std::unique_ptr<Worker>>& workers, net::EventLoop& control_loop,
             std::shared_ptr<const snapshot::Snapshot> snapshot, const health::Monitor* monitor,
             std::function<void(std::string text)> done) {
  collect(workers, control_loop, std::move(snapshot), monitor, metrics::StoreSample{},
          std::move(done));
}

void collect(const std::vector<std::unique_ptr<Worker>>& workers, net::EventLoop& control_loop,
             std::shared_ptr<const snapshot::Snapshot> snapshot, const health::Monitor* monitor,
             metrics::StoreSample store, std::function<void(std::string text)> done) {
  auto c = std::make_shared<Collection>();
  c->report.config_generation = snapshot ? snapshot->generation : 0;
  c->report.store = store;
  c->report.workers = static_cast<uint32_t>(workers.size());
  if (snapshot) c->report.backend_health = backend_health(*snapshot);
  if (monitor) {
    for (health::Monitor::CheckCounts& k : monitor->check_counts()) {
      c->report.health_checks.push_back(
          {std::move(k.lb), std::move(k.listener), std::move(k.backend), k.successes, k.failures});
    }
  }
  c->samples.resize(workers.size());
  c->done = std::move(done);
  // One more than the workers: the answer posted below, so that `done` never runs inside this
  // call even when no worker can answer.
  c->waiting = workers.size() + 1;
  for (size_t i = 0; i < workers.size(); ++i) {
    bool asked = workers[i]->sample_metrics([&control_loop, c, i](metrics::WorkerSample s) {
      // [worker] Back to the control loop with the copy.
      control_loop.post([c, i, s = std::move(s)]() mutable {
        c->samples[i] = std::move(s);
        answered(*c);
      });
    });
    if (!asked) --c->waiting;  // its loop has stopped: nothing will come
  }
  control_loop.post([c] { answered(*c); });
}

}  // namespace fulcrum::server
