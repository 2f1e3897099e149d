// What the admin API needs from the node: the running configuration, a way to change it
// atomically, and read-only views of what the data plane does. Implemented by server::Server;
// every call is on the control thread. [control]
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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

// Builds the next document from `current`: the running one, or, after another node's write got in
// first, the fresher one the store now holds (so the edit can run more than once). nullopt refuses
// the change; the edit keeps why.
using Edit = std::function<std::optional<config::Config>(const config::Config& current)>;

// How a change is carried onto a fresher document after a conflicting write.
enum class EditKind : uint8_t {
  kResource,  // the edit names what it changes (add a backend, patch a listener): run it again
  kDocument,  // a whole document (/v1/apply, --config): its own key changes are replayed onto the
              // fresher document when no key it changes was changed meanwhile; else 409
};

struct ApplyOutcome {
  Refusal refusal = Refusal::kNone;
  base::Error error;          // when refused
  int64_t revision = 0;       // the store revision after the change (the current one for dry runs)
  uint64_t generation = 0;    // the snapshot generation now active on every worker
  bool edit_refused = false;  // the Edit returned nullopt (it knows why)
};

struct StoreStatus {
  std::string kind;                    // "sqlite" | "etcd"
  std::vector<std::string> endpoints;  // the SQLite file, or the etcd endpoints
  bool reachable = true;
};

struct NodeStatus {
  std::string node;
  std::string zone;
  StoreStatus store;
  std::string config_source = "store";  // "cache": the last known good, etcd not reached yet
  int64_t revision = 0;
  uint64_t generation = 0;  // active on every worker
  uint32_t workers = 0;
  int64_t started_unix_ms = 0;
};

struct NodeView {
  std::string name;
  std::string zone;
  std::string admin;
  bool up = false;
  int64_t revision = 0;
  uint64_t generation = 0;
  int64_t last_seen_unix_ms = 0;
};

class Control {
 public:
  virtual ~Control() = default;

  // The configuration of the running generation (validated).
  virtual const config::Config& config() const = 0;
  // Runs `edit` on the running document, compiles the result (already validated), opens the
  // listening sockets it adds (a port in use refuses it), commits it to the store (one guarded
  // transaction: another node's write in between makes it run again on the fresher document),
  // publishes it to every worker and waits until all of them run it, then calls `done` on the
  // control thread. dry_run stops before the store. On any refusal nothing changed. Changes of
  // one node are applied one after the other, in order.
  virtual void change(Edit edit, bool dry_run, EditKind kind,
                      std::function<void(ApplyOutcome)> done) = 0;
  virtual NodeStatus status() const = 0;
  // The store revision of the running configuration.
  virtual int64_t revision() const = 0;
  // Every node of the cluster (this one alone with SQLite).
  virtual std::vector<NodeView> nodes() const = 0;
  // Removes a node that is down from the cluster's list: `done(status, error)` with 204, 404 (not
  // known), 409 (up) or 503.
  virtual void forget_node(const std::string& name,
                           std::function<void(int status, base::Error error)> done) = 0;
  // The snapshot every worker runs now.
  virtual std::shared_ptr<const snapshot::Snapshot> snapshot() const = 0;
  // Prometheus text of every counter; `done` runs on the control thread.
  virtual void render_metrics(std::function<void(std::string)> done) = 0;
  // True once the first configuration is published and the node serves it.
  virtual bool ready() const = 0;
};

}  // namespace fulcrum::api
