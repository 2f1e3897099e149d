// The composition root of fulcrumd: workers, listening sockets, publication of snapshots,
// reload and drain on signals. It composes; decisions live in the modules. [control]
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/model.h"
#include "server/worker.h"

namespace fulcrum::server {

struct ServerOptions {
  std::string config_path;  // empty: start with no load balancers
  uint32_t workers = 0;     // 0: one per CPU
};

class Server {
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

 private:
  base::Status publish(const config::Config& config);
  base::Status reload();
  void drain(bool graceful);

  ServerOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t generation_ = 0;
  std::map<std::string, int> bound_;  // listener key -> fd of worker 0's socket (owned there)
  int64_t max_drain_timeout_ms_ = 0;
  std::atomic<size_t> drained_workers_{0};
};

}  // namespace fulcrum::server
