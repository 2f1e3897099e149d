// Compiles a validated configuration model into one immutable Snapshot: resolved addresses,
// server groups, and balancer tables built once here for all workers. [control]
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/model.h"
#include "snapshot/snapshot.h"

namespace fulcrum::config {

struct Compiled {
  std::shared_ptr<const snapshot::Snapshot> snapshot;
  // For snapshot->listeners[i]: its field path in the document ("loadbalancers[0].listeners[1]"),
  // so that errors found later (a port in use) name the field.
  std::vector<std::string> listener_paths;
};

// `config` must have passed validate(). Fails with a field path when the document asks for
// something this build cannot serve yet. `health` (may be null: every backend unchecked) gives
// each listener's view of its backends; unhealthy ones get weight 0 in the balancer table.
// `sticky_secret` keys the sticky-session tokens (snapshot::sticky_token); keep it across
// generations so that cookies stay valid over reloads and health changes.
base::Result<Compiled> compile(const Config& config, uint64_t generation,
                               const snapshot::HealthTable* health = nullptr,
                               uint64_t sticky_secret = 0);

}  // namespace fulcrum::config
