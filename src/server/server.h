// The composition root of fulcrumd: workers, listening sockets, publication of snapshots,
// reload and drain on signals. It composes; decisions live in the modules. [control]
#pragma once

#include <atomic>
#include <cstdint>
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

namespace fulcrum::health {
class Monitor;
}
namespace fulcrum::store {
class Store;
}
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
  std::string store = "sqlite";           // only the embedded SQLite store in this build
  std::string node;                       // default: the host name
  std::string zone;
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
  api::ApplyOutcome apply(const config::Config& next, bool dry_run) override;
  api::NodeStatus status() const override;
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
  int64_t revision_ = 0;  // the store revision config_ came from
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
