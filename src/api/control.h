// What the admin API needs from the node: the running configuration, a way to change it
// atomically, and read-only views of what the data plane does. Implemented by server::Server;
// every call is on the control thread. [control]
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "config/model.h"
#include "snapshot/snapshot.h"

namespace fulcrum::api {

// Why a change was refused; the API maps each to one status.
enum class Refusal : uint8_t {
  kNone,
  kInvalid,      // 400: the document breaks a rule of the model
  kConflict,     // 409: a port is in use, a name is taken
  kUnsupported,  // 422: valid, but this build cannot serve it (https before TLS exists)
  kUnavailable,  // 503: the store could not make it durable; nothing changed
};

struct ApplyOutcome {
  Refusal refusal = Refusal::kNone;
  base::Error error;        // when refused
  int64_t revision = 0;     // the store revision after the change (the current one for dry runs)
  uint64_t generation = 0;  // the snapshot generation now active on every worker
};

struct NodeStatus {
  std::string node;
  std::string zone;
  std::string store;  // "sqlite:/path"
  int64_t revision = 0;
  uint64_t generation = 0;  // active on every worker
  uint32_t workers = 0;
  int64_t started_unix_ms = 0;
};

class Control {
 public:
  virtual ~Control() = default;

  // The configuration of the running generation (validated).
  virtual const config::Config& config() const = 0;
  // Compiles `next` (already validated), opens the listening sockets it adds (a port in use
  // refuses it), makes it durable in the store, publishes it to every worker and waits until all
  // of them run it. dry_run stops before the store. On any refusal nothing changed.
  virtual ApplyOutcome apply(const config::Config& next, bool dry_run) = 0;
  virtual NodeStatus status() const = 0;
  // The snapshot every worker runs now.
  virtual std::shared_ptr<const snapshot::Snapshot> snapshot() const = 0;
  // Prometheus text of every counter; `done` runs on the control thread.
  virtual void render_metrics(std::function<void(std::string)> done) = 0;
  // True once the first configuration is published and the node serves it.
  virtual bool ready() const = 0;
};

}  // namespace fulcrum::api
