// The composition root of fulcrumd: workers, listening sockets, publication of snapshots,
// reload and drain on signals. It composes; decisions live in the modules. [control]
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/control.h"
#include "base/result.h"
#include "config/compile.h"
#include "config/model.h"
#include "net/event_loop.h"
#include "server/access_log_writer.h"
#include "server/worker.h"
#include "store/store.h"

namespace fulcrum::health {
class Monitor;
}
namespace fulcrum::store {
class Store;
class EtcdStore;
}  // namespace fulcrum::store
namespace fulcrum::cluster {
class Follower;
class Cluster;
}  // namespace fulcrum::cluster
namespace fulcrum::api {
class Api;
class HttpServer;
}  // namespace fulcrum::api

namespace fulcrum::server {

struct ServerOptions {
  std::string config_path;       // empty: serve what the store holds
  uint32_t workers = 0;          // 0: one per CPU
  std::string access_log = "-";  // where HTTP listeners with access_log: true write ("-": stdout)
  std::string data_dir = "fulcrum-data";  // the store, the API tokens, admin.url
  std::string admin = "127.0.0.1:9901";   // the admin API's address ("off": no API)
  std::string token_file;                 // the admin token (default <data_dir>/admin.token)
  std::string reader_token_file;          // the reader token (default <data_dir>/reader.token)
  std::string store = "sqlite";           // "sqlite" or "etcd://HOST:PORT,..." (cluster mode)
  std::string node;                       // default: the host name
  std::string zone;
  // Cluster mode: TLS and authentication towards etcd.
  std::string etcd_cacert, etcd_cert, etcd_key, etcd_user, etcd_password_file;
  int64_t etcd_start_wait_ms = 10000;  // how long the first start waits for etcd (no cache)
};

class Server final : public api::Control {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  // Loads, validates and compiles `config_path` without binding anything.
  static base::Status check(const std::string& config_path);
  // Loads and applies the configuration and starts the workers. An error names the field.
  base::Status start();
  // Serves until SIGTERM (graceful drain) or SIGINT (fast), re-reading the configuration on
  // SIGHUP. Returns the process exit code.
  int run();
  // api::Control [control thread]
  const config::Config& config() const override { return config_; }
  void change(api::Edit edit, bool dry_run, api::EditKind kind,
              std::function<void(api::ApplyOutcome)> done) override;
  api::NodeStatus status() const override;
  int64_t revision() const override { return revision_; }
  std::vector<api::NodeView> nodes() const override;
  void forget_node(const std::string& name,
                   std::function<void(int status, base::Error error)> done) override;
  std::shared_ptr<const snapshot::Snapshot> snapshot() const override { return snapshot_; }
  // The Prometheus text of every counter (workers, health, generation), handed to `done` on the
  // control loop once every running worker answered (see metrics_collector.h).
  void render_metrics(std::function<void(std::string)> done) override;
  bool ready() const override { return ready_; }

 private:
  // A compiled generation whose new listening sockets are open, not yet handed to the workers.
  struct Prepared {
    std::shared_ptr<const snapshot::Snapshot> snap;
    std::map<std::string, std::vector<net::UniqueFd>> fresh;  // listener key -> one per worker
    std::map<std::string, int> next_bound;
    int64_t max_drain = 0;
  };
  // Compiles `config` with the current health and opens what it adds; nothing changes yet.
  base::Result<Prepared> prepare(const config::Config& config);
  // Hands `p` to every worker and waits until all run it. Logs every listener when `announce`.
  void activate(Prepared p, const config::Config& config, bool announce);
  // prepare + activate without the store (health changes).
  base::Status publish(const config::Config& config, bool announce = true);
  base::Status open_store();
  base::Status open_etcd();
  base::Status load_stored(const std::map<std::string, std::string>& kvs);
  // Applies `next` now (start-up: the --config file), committing with the blocking store call.
  api::ApplyOutcome apply(const config::Config& next, bool dry_run);
  // The store copy of the configuration keys (what the next change is a difference against).
  std::map<std::string, std::string> stored_keys() const;
  struct Change;
  void run_change();
  void finish_change(api::ApplyOutcome out);
  void committed(int64_t revision, const std::vector<store::Op>& ops, Prepared p,
                 const config::Config& next);
  void retry_change();
  // Another node changed the configuration (a watch batch, or a re-read): run it.
  void follow(const std::map<std::string, std::string>& kvs, int64_t revision);
  void save_cache();
  void start_cluster();
  static void on_store_check(void* self);
  base::Status start_api();
  base::Status reload();
  void drain(bool graceful);
  void on_signal();
  // A backend's health changed: the same configuration, compiled with the new health.
  void republish_health();
  static void on_drain_poll(void* self);
  // Rotates the session ticket keys every tls::kTicketRotationS. [control]
  static void on_ticket_rotation(void* self);

  struct SignalHandler final : net::IoHandler {
    Server* server = nullptr;
    void on_io(uint32_t) override { server->on_signal(); }
  };

  ServerOptions options_;
  std::unique_ptr<AccessLogWriter> access_log_;   // outlives the workers that submit to it
  std::unique_ptr<net::EventLoop> control_loop_;  // signals, health checks, publication
  std::unique_ptr<health::Monitor> monitor_;
  config::Config config_;  // the configuration of the running generation
  std::shared_ptr<const snapshot::Snapshot> snapshot_;  // the running generation
  std::unique_ptr<store::Store> store_;
  store::EtcdStore* etcd_ = nullptr;  // store_ in cluster mode
  int64_t revision_ = 0;              // the store revision config_ came from
  // Cluster mode: the store copy of the configuration, node records and shared secrets.
  std::unique_ptr<cluster::Follower> follower_;
  std::unique_ptr<cluster::Cluster> cluster_;
  std::string config_source_ = "store";  // "cache" until etcd answers after a start from cache
  std::string cache_path_;
  std::unique_ptr<net::Timer> store_check_;
  // API changes, one at a time in arrival order; writing_ while a store write is in flight
  // (health and watch publications wait for it).
  std::deque<std::unique_ptr<Change>> changes_;
  bool changing_ = false;
  bool writing_ = false;
  bool health_pending_ = false;
  std::unique_ptr<api::Api> api_;
  std::unique_ptr<api::HttpServer> api_server_;
  bool ready_ = false;
  int64_t started_unix_ms_ = 0;
  int signal_fd_ = -1;
  SignalHandler signal_handler_;
  std::unique_ptr<net::Timer> drain_poll_;
  bool draining_ = false;
  uint64_t sticky_secret_ = 0;
  // Ticket keys and what TLS compilation reuses across generations.
  config::TlsState tls_;
  std::unique_ptr<net::Timer> ticket_timer_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t generation_ = 0;
  std::map<std::string, int> bound_;  // listener key -> fd of worker 0's socket (owned there)
  int64_t max_drain_timeout_ms_ = 0;
  std::atomic<size_t> drained_workers_{0};
};

}  // namespace fulcrum::server
