// One worker's share of a UDP listener: its own SO_REUSEPORT socket bound to the service address,
// the flow table of the clients this worker sees, one connected socket per flow toward the
// flow's backend, and the listener's packet and byte counters. [worker] only.
//
// Data path (docs/architecture.md, "The UDP data path"): datagrams are read in batches with
// recvmmsg; each finds its flow by the client address (or a new flow picks a backend and connects
// a socket to it) and is sent on the flow's socket, consecutive datagrams of one flow with one
// sendmmsg. Replies are read in batches from the flow's socket and sent back through the
// listener's socket with sendmmsg, so they leave from the address the client sent to. Nothing is
// allocated per datagram; a new flow costs a socket and, above the high-water mark, memory.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "balance/balancer.h"
#include "balance/host_mask.h"
#include "balance/persistence.h"
#include "l4/udp_flow_table.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/proxy_protocol.h"
#include "net/socket.h"
#include "snapshot/snapshot.h"

namespace fulcrum::l4 {

// Per listener and worker; read on the worker thread. Packets and bytes are datagram payloads
// (without PROXY headers); "in" is client -> backend, "out" is backend -> client.
struct UdpCounters {
  uint64_t packets_in = 0;
  uint64_t bytes_in = 0;
  uint64_t packets_out = 0;
  uint64_t bytes_out = 0;
  uint64_t flows_created = 0;
  uint64_t flows_expired = 0;       // idle for idle_timeout
  uint64_t flows_refused_full = 0;  // datagrams of new clients dropped: the flow table was full
  uint64_t no_backend = 0;          // datagrams of new clients dropped: no backend to pick
  uint64_t acl_denied = 0;          // datagrams of new clients dropped: refused by the ACL
  uint64_t acl_closed = 0;          // flows ended because a new generation's ACL refuses them
  uint64_t backend_refused = 0;     // flows ended by ICMP port-unreachable from their backend
  uint64_t drain_closes = 0;        // flows ended at the drain deadline of their backend
  uint64_t send_drops = 0;          // datagrams the kernel would not take (buffer full, too big)
};

// What the UDP listeners of one worker share: the loop, the batch buffers, passive health
// reports and the flow-table bound. [worker]
class UdpContext {
 public:
  // Datagrams per recvmmsg/sendmmsg call.
  static constexpr size_t kBatch = 32;
  // Room per datagram: the largest UDP payload over IPv4 (65,507) fits, so nothing is truncated.
  static constexpr size_t kDatagramRoom = 65536;
  // Flows per listener and worker (docs/configuration.md); past it datagrams of new clients are
  // dropped and counted in flows_refused_full.
  static constexpr size_t kDefaultMaxFlows = 65536;

  explicit UdpContext(net::EventLoop& l, size_t max_flows = kDefaultMaxFlows);
  UdpContext(const UdpContext&) = delete;
  UdpContext& operator=(const UdpContext&) = delete;

  net::EventLoop& loop;
  size_t max_flows;
  // Called when a backend answered ICMP port-unreachable (ECONNREFUSED) or a socket toward it
  // could not be set up: passive health detection. May be empty. [worker]
  std::function<void(const snapshot::Listener& listener, const snapshot::Backend& backend,
                     int error)>
      on_backend_failure;

  // One batch of datagrams in flight (receive, then send); reused by every call. [worker]
  struct Batch {
    std::unique_ptr<char[]> data;  // kBatch * kDatagramRoom
    mmsghdr in[kBatch];
    iovec in_iov[kBatch];
    sockaddr_storage names[kBatch];
    alignas(cmsghdr) char in_control[kBatch][64];
    mmsghdr out[kBatch];
    iovec out_iov[kBatch][2];
    alignas(cmsghdr) char out_control[kBatch][64];
    uint32_t flow[kBatch];  // the flow slot each received datagram belongs to
  };
  Batch& batch() { return *batch_; }

 private:
  std::unique_ptr<Batch> batch_;
};

class UdpListener final : public net::IoHandler {
 public:
  UdpListener(UdpContext& ctx, net::UniqueFd fd, std::shared_ptr<const snapshot::Listener> cfg);
  // Ends every flow (their sockets close) and logs the listener's counters.
  ~UdpListener();
  UdpListener(const UdpListener&) = delete;
  UdpListener& operator=(const UdpListener&) = delete;

  // Adopts a new generation. Flows whose client its ACL refuses end at once (their later
  // datagrams are dropped like any refused client's); flows whose backend left the group or has
  // weight 0 get a drain deadline (drain_timeout); flows whose backend is unhealthy end at once
  // (the client's next datagram picks another backend); the others carry on.
  void update(std::shared_ptr<const snapshot::Listener> cfg);
  const snapshot::Listener& config() const { return *cfg_; }
  const UdpCounters& counters() const { return counters_; }
  size_t flows() const { return table_.size(); }

  void on_io(uint32_t events) override;

 private:
  struct Flow final : net::IoHandler {
    UdpListener* owner = nullptr;
    uint32_t slot = 0;
    net::UniqueFd fd;
    net::SocketAddress client;
    net::SocketAddress local;  // the address the client sent to
    uint64_t backend_id = 0;
    uint32_t backend = balance::kNoHost;  // index in cfg_->group, kNoHost when it left the group
    int64_t drain_deadline_ms = INT64_MAX;
    bool resume_queued = false;  // in resume_flows_
    uint8_t proxy_len = 0;
    char proxy_header[net::kProxyHeaderMax];
    void on_io(uint32_t events) override { owner->on_flow_io(*this, events); }
  };

  void receive_some();
  // Picks a backend and opens a flow for a new client: its slot, or FlowTable::kNone when the
  // datagram must be dropped (table full, no backend).
  uint32_t open_flow(const FlowKey& key, const net::SocketAddress& client,
                     const net::SocketAddress& local);
  void forward(size_t count);
  void on_flow_io(Flow& flow, uint32_t events);
  // Relays replies of `flow` to its client. Returns false when the flow was closed.
  bool relay_replies(Flow& flow);
  void close_flow(Flow& flow);
  void backend_failed(Flow& flow, int err);
  void recount_active();
  static void on_sweep(void* self);
  static void on_resume(void* self);

  UdpContext& ctx_;
  net::UniqueFd fd_;
  std::shared_ptr<const snapshot::Listener> cfg_;
  net::SocketAddress bound_;
  bool wildcard_ = false;  // bound to 0.0.0.0 or ::: replies name their source (IP_PKTINFO)
  std::string label_;      // "lb udp:53" for logs
  std::unique_ptr<balance::Cursor> cursor_;
  std::vector<uint32_t> active_;  // flows per backend of cfg_->group (wlc)
  std::unique_ptr<balance::PersistenceTable> persistence_;
  balance::HostMask tried_;  // backends tried for the flow being opened
  FlowTable table_;
  std::vector<std::unique_ptr<Flow>> flows_;  // by slot; kept for reuse after the flow ends
  size_t draining_ = 0;                       // flows with a drain deadline
  std::vector<uint32_t> resume_flows_;        // flows left with replies after a capped turn
  bool resume_listener_ = false;              // the listener socket was left with datagrams
  net::Timer sweep_timer_;                    // idle expiry, drain deadlines, persistence
  net::Timer resume_timer_;                   // the rest of a capped turn, after other events
  int64_t last_full_log_ms_ = -1;
  UdpCounters counters_;
};

// The compact key of a client address (IPv4 or IPv6).
FlowKey flow_key(const sockaddr_storage& ss);

}  // namespace fulcrum::l4
