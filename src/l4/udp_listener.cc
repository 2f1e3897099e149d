#include "l4/udp_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/hash.h"
#include "base/log.h"

namespace fulcrum::l4 {

namespace {
// Batches per readiness event before other sockets get their turn; the rest is read after the
// current batch of events (resume_timer_).
constexpr int kMaxBatchesPerTurn = 8;
// Idle flows, drain deadlines and persistence entries are looked at this often: a flow ends at
// most this long after its idle_timeout.
constexpr int64_t kSweepIntervalMs = 500;
// Persistence cleanup per sweep (expired entries are also dropped when looked up).
constexpr size_t kPersistenceSweepBudget = 4096;
// Source-IP persistence entries per listener and worker; the oldest go first when full.
constexpr size_t kPersistenceEntries = 1 << 16;
// A full flow table is logged at most this often.
constexpr int64_t kFullLogIntervalMs = 10000;

bool would_block(int err) {
  return err == EAGAIN || err == EWOULDBLOCK;
}

// The destination address of a datagram from its IP_PKTINFO / IPV6_PKTINFO control message,
// with `port`; nullopt when there is none.
std::optional<net::SocketAddress> pktinfo_destination(msghdr& msg, uint16_t port) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_port = htons(port);
      sin.sin_addr = pi.ipi_addr;
      return net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      sockaddr_in6 sin6{};
      sin6.sin6_family = AF_INET6;
      sin6.sin6_port = htons(port);
      sin6.sin6_addr = pi.ipi6_addr;
      return net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6), sizeof sin6);
    }
  }
  return std::nullopt;
}

// Writes a control message that makes a reply leave from `local` (a wildcard listener) into
// `buf` (64 bytes); returns its length.
size_t write_source(const net::SocketAddress& local, char* buf) {
  std::memset(buf, 0, 64);
  auto* c = reinterpret_cast<cmsghdr*>(buf);
  if (local.is_v4()) {
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo pi{};
    pi.ipi_spec_dst = reinterpret_cast<const sockaddr_in*>(local.sa())->sin_addr;
    std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof(in_pktinfo));
  }
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
  in6_pktinfo pi{};
  pi.ipi6_addr = reinterpret_cast<const sockaddr_in6*>(local.sa())->sin6_addr;
  std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
  return CMSG_SPACE(sizeof(in6_pktinfo));
}

static_assert(CMSG_SPACE(sizeof(in6_pktinfo)) <= 64, "control buffers are 64 bytes");
}  // namespace

FlowKey flow_key(const sockaddr_storage& ss) {
  FlowKey k;
  k.family = static_cast<uint8_t>(ss.ss_family);
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    std::memcpy(k.ip, &sin.sin_addr, 4);
    k.port = ntohs(sin.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
    std::memcpy(k.ip, &sin6.sin6_addr, 16);
    k.port = ntohs(sin6.sin6_port);
  }
  return k;
}

// ---- UdpContext ----

UdpContext::UdpContext(net::EventLoop& l, size_t max)
    : loop(l), max_flows(max), batch_(std::make_unique<Batch>()) {
  // Untouched pages of this buffer are never made resident: a batch of DNS-sized datagrams
  // touches a few KiB of it.
  batch_->data = std::make_unique<char[]>(kBatch * kDatagramRoom);
}

// ---- UdpListener ----

UdpListener::UdpListener(UdpContext& ctx, net::UniqueFd fd,
                         std::shared_ptr<const snapshot::Listener> cfg)
    : ctx_(ctx),
      fd_(std::move(fd)),
      table_(ctx.max_flows),
      sweep_timer_(ctx.loop, &UdpListener::on_sweep, this),
      resume_timer_(ctx.loop, &UdpListener::on_resume, this) {
  if (auto a = net::local_address(fd_.get()); a.ok()) bound_ = *a;
  std::string_view ip = bound_.ip_bytes();
  wildcard_ = ip.find_first_not_of('\0') == std::string_view::npos;
  if (wildcard_) {
    int one = 1;
    if (bound_.is_v4()) {
      setsockopt(fd_.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    } else {
      setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    }
  }
  update(std::move(cfg));
  if (auto st = ctx_.loop.add(fd_.get(), EPOLLIN, this); !st.ok()) {
    FLOG_ERROR("listener {}: {}", label_, st.error().message);
  }
  resume_listener_ = true;  // datagrams may have queued before registration
  resume_timer_.arm_in(0);
  sweep_timer_.arm_in(kSweepIntervalMs);
}

UdpListener::~UdpListener() {
  for (auto& f : flows_) {
    if (f && f->fd) close_flow(*f);
  }
  const UdpCounters& c = counters_;
  if (c.flows_created > 0 || c.acl_denied > 0) {
    FLOG_INFO(
        "{}: {} datagrams ({} B) in, {} ({} B) out; flows: {} created, {} expired, {} refused "
        "(table full), {} ended by ICMP unreachable, {} drained, {} ended by the ACL; {} dropped "
        "without backend, {} refused by the ACL, {} dropped by the kernel",
        label_, c.packets_in, c.bytes_in, c.packets_out, c.bytes_out, c.flows_created,
        c.flows_expired, c.flows_refused_full, c.backend_refused, c.drain_closes, c.acl_closed,
        c.no_backend, c.acl_denied, c.send_drops);
  }
}

void UdpListener::update(std::shared_ptr<const snapshot::Listener> cfg) {
  cfg_ = std::move(cfg);
  label_ = cfg_->lb_name + " " + cfg_->id;
  cursor_ = std::make_unique<balance::Cursor>(*cfg_->table);
  if (cfg_->persistence_timeout_ms > 0 && !persistence_) {
    persistence_ = std::make_unique<balance::PersistenceTable>(kPersistenceEntries);
  } else if (cfg_->persistence_timeout_ms == 0) {
    persistence_.reset();
  }
  const snapshot::ServerGroup& group = *cfg_->group;
  int64_t deadline = ctx_.loop.now_ms() + cfg_->drain_timeout_ms;
  draining_ = 0;
  for (auto& fp : flows_) {
    if (!fp || !fp->fd) continue;
    Flow& f = *fp;
    if (!cfg_->access.allows(f.client)) {
      close_flow(f);
      ++counters_.acl_closed;
      continue;
    }
    auto it = group.index_by_id.find(f.backend_id);
    f.backend = it == group.index_by_id.end() ? balance::kNoHost : it->second;
    if (f.backend != balance::kNoHost && group.backends[f.backend].weight > 0) {
      if (cfg_->health[f.backend] == snapshot::Health::kUnhealthy &&
          cfg_->table->weight(f.backend) == 0) {
        close_flow(f);  // UDP has nothing to finish: the next datagram picks a healthy backend
        continue;
      }
      f.drain_deadline_ms = INT64_MAX;
    } else {
      f.drain_deadline_ms = std::min(f.drain_deadline_ms, deadline);
    }
    if (f.drain_deadline_ms != INT64_MAX) ++draining_;
  }
  recount_active();
}

void UdpListener::recount_active() {
  active_.assign(cfg_->group->backends.size(), 0);
  for (auto& f : flows_) {
    if (f && f->fd && f->backend != balance::kNoHost) ++active_[f->backend];
  }
}

void UdpListener::on_io(uint32_t /*events*/) {
  receive_some();
}

void UdpListener::on_resume(void* self) {
  auto* l = static_cast<UdpListener*>(self);
  if (l->resume_listener_) {
    l->resume_listener_ = false;
    l->receive_some();
  }
  // Flows queued now (by a capped turn below) wait for the next turn.
  std::vector<uint32_t> pending;
  pending.swap(l->resume_flows_);
  for (uint32_t slot : pending) {
    Flow& f = *l->flows_[slot];
    f.resume_queued = false;
    if (f.fd) l->relay_replies(f);
  }
  pending.clear();
  if (l->resume_flows_.empty()) l->resume_flows_.swap(pending);  // keep the capacity
}

void UdpListener::receive_some() {
  if (!fd_) return;
  UdpContext::Batch& b = ctx_.batch();
  for (int turn = 0; turn < kMaxBatchesPerTurn; ++turn) {
    for (size_t i = 0; i < UdpContext::kBatch; ++i) {
      b.in_iov[i] = {b.data.get() + i * UdpContext::kDatagramRoom, UdpContext::kDatagramRoom};
      msghdr& m = b.in[i].msg_hdr;
      m.msg_name = &b.names[i];
      m.msg_namelen = sizeof b.names[i];
      m.msg_iov = &b.in_iov[i];
      m.msg_iovlen = 1;
      m.msg_control = wildcard_ ? b.in_control[i] : nullptr;
      m.msg_controllen = wildcard_ ? sizeof b.in_control[i] : 0;
      m.msg_flags = 0;
    }
    int n = ::recvmmsg(fd_.get(), b.in, UdpContext::kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (!would_block(errno)) FLOG_DEBUG("{}: recvmmsg: {}", label_, std::strerror(errno));
      return;
    }
    forward(static_cast<size_t>(n));
    if (static_cast<size_t>(n) < UdpContext::kBatch) return;  // the queue is empty
  }
  resume_listener_ = true;
  if (!resume_timer_.armed()) resume_timer_.arm_in(0);
}

void UdpListener::forward(size_t count) {
  UdpContext::Batch& b = ctx_.batch();
  for (size_t i = 0; i < count; ++i) {
    FlowKey key = flow_key(b.names[i]);
    uint32_t slot = table_.find(key);
    if (slot != FlowTable::kNone) {
      table_.touch(slot, ctx_.loop.now_ms());
    } else {
      // A new client: the ACL decides before a flow (and a backend) is picked. Flows that exist
      // were allowed by the current generation (update() ends the others), so datagrams of a
      // known flow are not looked up again.
      auto client = net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&b.names[i]),
                                                      b.in[i].msg_hdr.msg_namelen);
      if (!cfg_->access.allows(client)) {
        ++counters_.acl_denied;
        b.flow[i] = FlowTable::kNone;
        continue;
      }
      net::SocketAddress local = bound_;
      if (wildcard_) {
        if (auto d = pktinfo_destination(b.in[i].msg_hdr, bound_.port())) local = *d;
      }
      slot = open_flow(key, client, local);
    }
    b.flow[i] = slot;
  }
  // The datagrams of one flow leave with one sendmmsg on the flow's socket: the batch is grouped
  // by flow, each flow's datagrams keeping their order (interleaved clients would otherwise cost
  // one system call per datagram).
  static_assert(UdpContext::kBatch <= 256, "order holds batch positions in bytes");
  uint8_t order[UdpContext::kBatch];
  bool placed[UdpContext::kBatch] = {};
  size_t m = 0;
  for (size_t i = 0; i < count; ++i) {
    if (placed[i]) continue;
    for (size_t j = i; j < count; ++j) {
      if (!placed[j] && b.flow[j] == b.flow[i]) {
        placed[j] = true;
        order[m++] = static_cast<uint8_t>(j);
      }
    }
  }
  for (size_t i = 0; i < count;) {
    uint32_t slot = b.flow[order[i]];
    size_t end = i + 1;
    while (end < count && b.flow[order[end]] == slot) ++end;
    if (slot == FlowTable::kNone) {
      i = end;
      continue;
    }
    Flow& f = *flows_[slot];
    if (!f.fd) {  // ended by an ICMP error earlier in this batch
      counters_.send_drops += end - i;
      i = end;
      continue;
    }
    size_t n = 0;
    for (size_t k = i; k < end; ++k, ++n) {
      iovec* iov = b.out_iov[n];
      size_t iovlen = 0;
      if (f.proxy_len > 0) iov[iovlen++] = {f.proxy_header, f.proxy_len};
      iov[iovlen++] = {b.in_iov[order[k]].iov_base, b.in[order[k]].msg_len};
      b.out[n].msg_hdr = msghdr{nullptr, 0, iov, iovlen, nullptr, 0, 0};
    }
    size_t done = 0;
    while (done < n && f.fd) {
      int r = ::sendmmsg(f.fd.get(), b.out + done, static_cast<unsigned>(n - done), MSG_DONTWAIT);
      if (r > 0) {
        for (size_t k = done; k < done + static_cast<size_t>(r); ++k) {
          ++counters_.packets_in;
          counters_.bytes_in += b.in[order[i + k]].msg_len;
        }
        done += static_cast<size_t>(r);
        continue;
      }
      int err = errno;
      if (err == EINTR) continue;
      if (err == ECONNREFUSED) {
        counters_.send_drops += n - done;
        backend_failed(f, err);
        break;
      }
      if (would_block(err) || err == ENOBUFS) {
        counters_.send_drops += n - done;  // UDP: dropped, as the network would
        break;
      }
      ++counters_.send_drops;  // this datagram only (EMSGSIZE with a PROXY header, ...)
      ++done;
    }
    i = end;
  }
}

uint32_t UdpListener::open_flow(const FlowKey& key, const net::SocketAddress& client,
                                const net::SocketAddress& local) {
  if (table_.size() >= table_.max_flows()) {
    ++counters_.flows_refused_full;
    int64_t now = ctx_.loop.now_ms();
    if (last_full_log_ms_ < 0 || now - last_full_log_ms_ >= kFullLogIntervalMs) {
      last_full_log_ms_ = now;
      FLOG_WARN("{}: flow table full ({} flows): datagrams of new clients dropped ({} so far)",
                label_, table_.max_flows(), counters_.flows_refused_full);
    }
    return FlowTable::kNone;
  }
  const snapshot::Listener& cfg = *cfg_;
  const snapshot::ServerGroup& group = *cfg.group;
  uint64_t ip_key = base::hash_string(client.ip_bytes());
  balance::HostMask& tried = tried_;
  tried.reset(group.backends.size());
  for (uint32_t attempt = 0; attempt < cfg.connect_attempts; ++attempt) {
    uint32_t index = balance::kNoHost;
    if (persistence_) {
      if (auto id = persistence_->lookup(ip_key, ctx_.loop.now_ms())) {
        auto it = group.index_by_id.find(*id);
        if (it != group.index_by_id.end() && !tried.test(it->second) &&
            cfg.table->weight(it->second) > 0) {
          index = it->second;
        }
      }
    }
    if (index == balance::kNoHost) {
      balance::PickRequest req;
      if (cfg.scheduler == balance::Scheduler::kTch) {
        uint16_t ports[2] = {client.port(), local.port()};
        req.key = base::hash_bytes(ports, sizeof ports, ip_key);
      } else {
        req.key = ip_key;
      }
      req.active = active_;
      req.skip = &tried;
      index = cursor_->pick(*cfg.table, req);
    }
    if (index == balance::kNoHost) break;
    tried.set(index);
    const snapshot::Backend& backend = group.backends[index];
    auto fd = net::connect_udp(backend.address);
    if (!fd.ok()) {
      FLOG_DEBUG("{}: socket toward {} failed: {}", label_, backend.name, fd.error().message);
      if (ctx_.on_backend_failure) ctx_.on_backend_failure(cfg, backend, fd.error().sys_errno);
      continue;
    }
    uint32_t slot = table_.insert(key, ctx_.loop.now_ms());
    if (flows_.size() <= slot) flows_.resize(slot + 1);
    if (!flows_[slot]) flows_[slot] = std::make_unique<Flow>();
    Flow& f = *flows_[slot];
    f.owner = this;
    f.slot = slot;
    f.fd = std::move(*fd);
    f.client = client;
    f.local = local;
    f.backend_id = backend.id;
    f.backend = index;
    f.drain_deadline_ms = INT64_MAX;
    f.proxy_len = 0;
    if (cfg.proxy_protocol == snapshot::ProxyProtocol::kV2) {
      f.proxy_len = static_cast<uint8_t>(
          net::encode_proxy_v2(client, local, net::ProxyTransport::kDatagram, f.proxy_header));
    }
    if (!ctx_.loop.add(f.fd.get(), EPOLLIN, &f).ok()) {
      f.fd.reset();
      table_.erase(slot);
      continue;
    }
    ++active_[index];
    ++counters_.flows_created;
    if (persistence_) {
      persistence_->put(ip_key, backend.id, ctx_.loop.now_ms() + cfg.persistence_timeout_ms);
    }
    FLOG_DEBUG("{}: flow {} -> {} ({} flows)", label_, client.to_string(), backend.name,
               table_.size());
    return slot;
  }
  ++counters_.no_backend;
  return FlowTable::kNone;
}

void UdpListener::on_flow_io(Flow& flow, uint32_t /*events*/) {
  if (flow.fd) relay_replies(flow);
}

bool UdpListener::relay_replies(Flow& flow) {
  UdpContext::Batch& b = ctx_.batch();
  for (int turn = 0; turn < kMaxBatchesPerTurn; ++turn) {
    for (size_t i = 0; i < UdpContext::kBatch; ++i) {
      b.in_iov[i] = {b.data.get() + i * UdpContext::kDatagramRoom, UdpContext::kDatagramRoom};
      b.in[i].msg_hdr = msghdr{nullptr, 0, &b.in_iov[i], 1, nullptr, 0, 0};
    }
    int n = ::recvmmsg(flow.fd.get(), b.in, UdpContext::kBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (would_block(err)) return true;
      if (err == ECONNREFUSED) {
        backend_failed(flow, err);
      } else {
        FLOG_DEBUG("{}: flow {}: recvmmsg: {}", label_, flow.client.to_string(),
                   std::strerror(err));
        close_flow(flow);
      }
      return false;
    }
    table_.touch(flow.slot, ctx_.loop.now_ms());
    size_t count = static_cast<size_t>(n);
    size_t control_len = 0;
    if (wildcard_) control_len = write_source(flow.local, b.out_control[0]);
    for (size_t i = 0; i < count; ++i) {
      b.out_iov[i][0] = {b.in_iov[i].iov_base, b.in[i].msg_len};
      msghdr& m = b.out[i].msg_hdr;
      m = msghdr{const_cast<sockaddr*>(flow.client.sa()),
                 flow.client.len(),
                 b.out_iov[i],
                 1,
                 nullptr,
                 0,
                 0};
      if (control_len > 0) {
        m.msg_control = b.out_control[0];  // the same source for every reply of this flow
        m.msg_controllen = control_len;
      }
    }
    size_t done = 0;
    while (done < count) {
      int r =
          ::sendmmsg(fd_.get(), b.out + done, static_cast<unsigned>(count - done), MSG_DONTWAIT);
      if (r > 0) {
        for (size_t k = done; k < done + static_cast<size_t>(r); ++k) {
          ++counters_.packets_out;
          counters_.bytes_out += b.in[k].msg_len;
        }
        done += static_cast<size_t>(r);
        continue;
      }
      int err = errno;
      if (err == EINTR) continue;
      if (would_block(err) || err == ENOBUFS) {
        counters_.send_drops += count - done;
        break;
      }
      ++counters_.send_drops;  // this reply only
      ++done;
    }
    if (count < UdpContext::kBatch) return true;
  }
  if (!flow.resume_queued) {
    flow.resume_queued = true;
    resume_flows_.push_back(flow.slot);
  }
  if (!resume_timer_.armed()) resume_timer_.arm_in(0);
  return true;
}

void UdpListener::backend_failed(Flow& flow, int err) {
  ++counters_.backend_refused;
  if (flow.backend != balance::kNoHost) {
    const snapshot::Backend& backend = cfg_->group->backends[flow.backend];
    FLOG_DEBUG("{}: flow {}: backend {}: {}", label_, flow.client.to_string(), backend.name,
               std::strerror(err));
    if (ctx_.on_backend_failure) ctx_.on_backend_failure(*cfg_, backend, err);
  }
  // The client's next datagram must not be pinned to the backend that refused it.
  if (persistence_) persistence_->erase(base::hash_string(flow.client.ip_bytes()));
  close_flow(flow);
}

void UdpListener::close_flow(Flow& flow) {
  if (!flow.fd) return;
  if (flow.backend != balance::kNoHost && flow.backend < active_.size() &&
      active_[flow.backend] > 0) {
    --active_[flow.backend];
  }
  if (flow.drain_deadline_ms != INT64_MAX && draining_ > 0) --draining_;
  flow.drain_deadline_ms = INT64_MAX;
  flow.fd.reset();  // closing the socket also takes it out of the epoll set
  table_.erase(flow.slot);
}

void UdpListener::on_sweep(void* self) {
  auto* l = static_cast<UdpListener*>(self);
  int64_t now = l->ctx_.loop.now_ms();
  int64_t idle = l->cfg_->idle_timeout_ms;
  size_t expired = 0;
  for (uint32_t slot = l->table_.oldest();
       slot != FlowTable::kNone && l->table_.last_active_ms(slot) + idle <= now;
       slot = l->table_.oldest()) {
    Flow& f = *l->flows_[slot];
    if (l->persistence_) {
      // Persistence counts from the flow's last datagram, not from its first.
      l->persistence_->put(base::hash_string(f.client.ip_bytes()), f.backend_id,
                           l->table_.last_active_ms(slot) + l->cfg_->persistence_timeout_ms);
    }
    l->close_flow(f);
    ++l->counters_.flows_expired;
    ++expired;
  }
  if (l->draining_ > 0) {
    // Only while some flow drains (after a configuration change): every flow is looked at.
    for (auto& f : l->flows_) {
      if (f && f->fd && f->drain_deadline_ms <= now) {
        l->close_flow(*f);
        ++l->counters_.drain_closes;
      }
    }
  }
  if (l->persistence_) l->persistence_->expire(now, kPersistenceSweepBudget);
  if (expired > 0) {
    FLOG_DEBUG("{}: {} idle flows expired, {} left", l->label_, expired, l->table_.size());
  }
  l->sweep_timer_.arm_in(kSweepIntervalMs);
}

}  // namespace fulcrum::l4
