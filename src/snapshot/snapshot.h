// The immutable runtime view of configuration that workers see. Built once per generation on the
// control thread (config/compile), shared read-only by all workers as shared_ptr<const ...>.
// A connection keeps the Listener it started with (and through it its group and balancer table)
// until it ends, whatever newer generations say.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "balance/balancer.h"
#include "net/address.h"

namespace fulcrum::snapshot {

enum class Protocol : uint8_t { kTcp, kUdp, kHttp, kHttps };
enum class ProxyProtocol : uint8_t { kNone, kV1, kV2 };

struct Backend {
  std::string name;          // "address:port" as configured, for logs and metrics
  net::SocketAddress address;
  uint32_t weight = 100;     // 0 = no new connections
  uint64_t id = 0;           // stable across generations: hash of name
};

struct ServerGroup {
  std::string name;
  std::vector<Backend> backends;
  std::unordered_map<uint64_t, uint32_t> index_by_id;  // Backend::id -> index in backends
};

struct Listener {
  std::string lb_name;
  std::string id;  // "tcp:8000"
  Protocol protocol = Protocol::kTcp;
  net::SocketAddress bind;  // load balancer address + listener port
  bool running = true;
  balance::Scheduler scheduler = balance::Scheduler::kWrr;
  std::shared_ptr<const ServerGroup> group;
  std::shared_ptr<const balance::Table> table;  // built for `group` with `scheduler`
  int64_t connect_timeout_ms = 5000;
  int64_t idle_timeout_ms = 900000;
  int64_t persistence_timeout_ms = 0;  // 0 = no source-IP persistence
  int64_t drain_timeout_ms = 300000;
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  bool fail_open = false;
  uint32_t connect_attempts = 3;  // first try + at most 2 retries on other backends
};

struct Snapshot {
  uint64_t generation = 0;
  std::vector<std::shared_ptr<const Listener>> listeners;
};

}  // namespace fulcrum::snapshot
