// One worker's share of an HTTP listener: its SO_REUSEPORT socket and the per-worker balancing
// state of every target (default group and forwarding rules). [worker]
#pragma once

#include <memory>
#include <vector>

#include "balance/balancer.h"
#include "l7/context.h"
#include "net/acceptor.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l7 {

// Balancing state of one listener generation: a cursor and active request counts per target.
// Requests keep the state of the generation they were routed in (shared_ptr).
struct HttpListenerState {
  explicit HttpListenerState(std::shared_ptr<const snapshot::Listener> cfg);
  struct Target {
    explicit Target(const balance::Table& table) : cursor(table) {}
    balance::Cursor cursor;
    std::vector<uint32_t> active;  // requests in flight per backend (wlc)
  };
  std::shared_ptr<const snapshot::Listener> config;
  std::vector<Target> targets;  // index-aligned with config->targets
};

class HttpListener {
 public:
  HttpListener(HttpContext& ctx, net::UniqueFd fd, std::shared_ptr<const snapshot::Listener> cfg);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Adopts a new generation; requests in flight keep theirs.
  void update(std::shared_ptr<const snapshot::Listener> cfg);
  const snapshot::Listener& config() const { return *(*current_)->config; }
  net::UniqueFd release_socket() { return acceptor_.release(); }

 private:
  static void on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                        const net::SocketAddress& local);

  HttpContext& ctx_;
  // Shared with sessions so that their next request uses the newest generation.
  std::shared_ptr<std::shared_ptr<HttpListenerState>> current_;
  net::Acceptor acceptor_;
};

}  // namespace fulcrum::l7
