// A worker: one thread, one event loop, its share of every listener (its own SO_REUSEPORT
// socket), and all connections accepted on them. The control thread talks to it only by posting
// messages (apply a snapshot, drain, read counters). [control] calls post; the rest runs on the
// worker's thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "l4/context.h"
#include "l7/context.h"
#include "metrics/sample.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l4 {
class TcpListener;
class SessionRegistry;
class UdpContext;
class UdpListener;
}  // namespace fulcrum::l4
namespace fulcrum::l7 {
class HttpListener;
}  // namespace fulcrum::l7

namespace fulcrum::server {

// A listening socket handed to a worker for a listener key ("tcp 127.0.0.1:8000").
struct SocketHandoff {
  std::string key;
  net::UniqueFd fd;
};

class Worker {
 public:
  // Receives (health key, error) of failures real traffic saw; called on the worker thread, at
  // most once per second per backend and listener.
  using FailureReport = std::function<void(std::string key, std::string error)>;
  // Receives batches of access-log lines; called on the worker thread.
  using AccessSubmit = std::function<void(std::string batch)>;
  static base::Result<std::unique_ptr<Worker>> create(uint32_t index, FailureReport report = {},
                                                      AccessSubmit access = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();
  uint32_t index() const { return index_; }

  // [control] Makes `snap` current: adopts the new sockets, updates listeners whose key is in
  // the snapshot, closes listening sockets whose key is gone (their connections go on).
  // `done(generation)` runs on the worker thread when the swap is complete.
  void apply(std::shared_ptr<const snapshot::Snapshot> snap, std::vector<SocketHandoff> sockets,
             std::function<void(uint64_t)> done);
  // [control] Stops accepting; when no connection is left, or at `deadline_ms` (monotonic) when
  // connections are closed by force, runs `drained` on the worker thread and stops the loop.
  void drain(int64_t deadline_ms, std::function<void()> drained);
  // [control] Copies the counters on the worker thread and hands them to `reply` there.
  void read_counters(std::function<void(const l4::Counters&)> reply);
  // [control] Copies the counters of every listener this worker serves into a WorkerSample on the
  // worker thread and hands it to `reply` there. Returns false, and `reply` never runs, when the
  // worker's loop has stopped (drained). Listeners a drain or reload removed are not reported.
  bool sample_metrics(std::function<void(metrics::WorkerSample)> reply);

 private:
  Worker(uint32_t index, std::unique_ptr<net::EventLoop> loop, FailureReport report,
         AccessSubmit access);
  void on_backend_failure(const snapshot::Listener& l, const snapshot::Backend& b, int error);
  void check_drained();
  void apply_drain_deadlines();
  void apply_http_drain_deadlines();
  static void on_drain_tick(void* self);

  uint32_t index_;
  std::unique_ptr<net::EventLoop> loop_;
  std::unique_ptr<l4::SessionRegistry> sessions_;
  l4::WorkerContext ctx_;
  std::unique_ptr<l7::HttpContext> http_ctx_;
  std::map<std::string, std::unique_ptr<l4::TcpListener>> listeners_;
  std::map<std::string, std::unique_ptr<l7::HttpListener>> http_listeners_;
  std::unique_ptr<l4::UdpContext> udp_ctx_;
  std::map<std::string, std::unique_ptr<l4::UdpListener>> udp_listeners_;
  std::shared_ptr<const snapshot::Snapshot> snapshot_;
  std::unique_ptr<net::Timer> drain_timer_;
  int64_t drain_deadline_ms_ = 0;
  std::function<void()> drained_;
  bool drain_done_ = false;
  FailureReport report_;
  std::unordered_map<std::string, int64_t> last_report_ms_;  // health key -> last report
  std::thread thread_;
};

// The key that identifies a listening socket: transport and bound address. Listeners whose key
// does not change across generations keep their sockets.
std::string listener_key(const snapshot::Listener& l);

}  // namespace fulcrum::server
