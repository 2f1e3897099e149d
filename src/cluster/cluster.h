// What a node of a cluster shares with the others besides the configuration (follower.h):
//
// - Node records. Each node keeps "/fulcrum-cluster/nodes/<name>" (zone, admin URL, the revision
//   and generation it serves, last seen; rewritten every few seconds and on every change) and
//   "/fulcrum-cluster/alive/<name>" on an etcd lease it keeps alive: a node is up while that key
//   exists. The node watches its own alive key (etcd 3.4.23 can revoke a lease early) and
//   registers again whenever it is gone.
// - Shared secrets, never returned by the API or logged: the sticky-session key
//   ("/fulcrum-cluster/secrets/sticky", created once by the first node) and the TLS session-ticket
//   keys ("/fulcrum-cluster/secrets/tickets": current and previous key, rotated hourly by whichever
//   node's compare-and-put wins; the others install what they see).
// - The last-known-good file: the configuration keys, their revision and the shared secrets of the
//   last applied change, so that a node started while etcd is unreachable can serve.
// [control]
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cluster/follower.h"

namespace fulcrum::store {
class EtcdStore;
}
namespace fulcrum::net {
class EventLoop;
class Timer;
}  // namespace fulcrum::net

namespace fulcrum::cluster {

inline constexpr const char* kClusterPrefix = "/fulcrum-cluster/";
inline constexpr const char* kNodesPrefix = "/fulcrum-cluster/nodes/";
inline constexpr const char* kAlivePrefix = "/fulcrum-cluster/alive/";
inline constexpr const char* kStickyKey = "/fulcrum-cluster/secrets/sticky";
inline constexpr const char* kTicketsKey = "/fulcrum-cluster/secrets/tickets";
inline constexpr int64_t kLeaseTtlS = 6;
inline constexpr int64_t kHeartbeatMs = 2000;  // lease keep-alive (moves no etcd revision)
inline constexpr int64_t kRecordMs = 10000;    // node record rewrite (last_seen), besides changes

struct NodeRecord {
  std::string name;
  std::string zone;
  std::string admin;  // "http://10.0.0.11:9901" or "" without an API
  bool up = false;
  int64_t revision = 0;
  uint64_t generation = 0;
  int64_t last_seen_ms = 0;  // wall clock, Unix ms
  int64_t started_ms = 0;
};

// The shared secrets as bytes: the sticky key, and each ticket key as 80 bytes (name 16, AES 32,
// HMAC 32).
struct Secrets {
  uint64_t sticky = 0;
  std::string ticket_current;
  std::string ticket_previous;
  int64_t rotated_ms = 0;  // when the current ticket key was made (Unix ms)
};

// Parses the secrets out of the cluster keys; nullopt when they are not (all) there.
std::optional<Secrets> secrets_of(const KeyMap& cluster_kvs);

// Last known good.
struct Cache {
  KeyMap config;  // "/fulcrum/..." keys
  int64_t revision = 0;
  std::optional<Secrets> secrets;
};
base::Status save_cache(const std::string& path, const Cache& cache);
// nullopt when the file does not exist; an error when it exists but cannot be read.
base::Result<std::optional<Cache>> load_cache(const std::string& path);

class Cluster {
 public:
  using SecretsFn = std::function<void(const Secrets&)>;

  Cluster(net::EventLoop& loop, store::EtcdStore& store, NodeRecord self);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // At start, blocking (bounded by the store's request timeout): reads the secrets, creating the
  // missing ones. An error when etcd cannot be reached.
  base::Result<Secrets> load_secrets_sync(uint64_t fresh_sticky, const std::string& fresh_ticket);
  // Registers the node and follows the cluster keys; `on_tickets` runs when another node rotated
  // the ticket keys. `fresh_ticket` makes a new ticket key (80 random bytes) when this node wins
  // a rotation.
  void start(SecretsFn on_tickets, std::function<std::string()> fresh_ticket);
  // The admin API's URL, as other nodes and operators reach it ("" without an API).
  void set_admin(std::string url) { self_.admin = std::move(url); }
  // The revision and generation this node serves now (written to its record soon).
  void serving(int64_t revision, uint64_t generation);
  // Every node this node knows of (its own record first when etcd was never reached).
  std::vector<NodeRecord> nodes() const;
  // Removes a node that is down; an error (with field "node") when it is up or unknown.
  void forget(const std::string& name, std::function<void(base::Status, int status)> done);
  // Revokes the lease (the node shows down at once); best effort, at shutdown.
  void leave();
  // The cluster keys as last seen (secrets included): for the cache.
  const KeyMap& cluster_kvs() const { return follower_->kvs(); }

 private:
  void register_node();
  void write_record();
  void on_cluster_change(const KeyMap& kvs);
  void maybe_rotate();
  static void on_heartbeat(void* self);
  static void on_rotation(void* self);

  net::EventLoop& loop_;
  store::EtcdStore& store_;
  NodeRecord self_;
  std::unique_ptr<Follower> follower_;
  int64_t lease_ = 0;
  int64_t alive_revision_ = 0;  // the revision that wrote our alive key
  bool registering_ = false;
  bool record_dirty_ = true;
  bool left_ = false;
  int64_t record_written_ms_ = 0;
  std::unique_ptr<net::Timer> heartbeat_;
  std::unique_ptr<net::Timer> rotation_;
  SecretsFn on_tickets_;
  std::function<std::string()> fresh_ticket_;
  std::string tickets_seen_;  // the tickets value last installed
  int64_t tickets_mod_ = 0;
};

}  // namespace fulcrum::cluster
