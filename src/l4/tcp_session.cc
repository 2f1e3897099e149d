#include "l4/tcp_session.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/hash.h"
#include "base/log.h"
#include "net/proxy_protocol.h"

namespace fulcrum::l4 {

namespace {
constexpr uint32_t kSideEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
// Two reads in a row that fill a whole 16 KiB buffer mark a bulk flow; from then on the kernel
// moves its bytes with splice(2) and they never enter user space.
constexpr uint32_t kFullReadsBeforeSplice = 2;
// Upper bound of one splice call; the pipe itself is sized by PipePool.
constexpr size_t kSpliceChunk = 1 << 20;

bool would_block(int err) {
  return err == EAGAIN || err == EWOULDBLOCK;
}
}  // namespace

// ---- SessionRegistry ----

void SessionRegistry::close_all() {
  while (TcpSession* s = list_.front()) s->close(/*reset=*/true);
}

// ---- TcpSession ----

TcpSession::TcpSession(WorkerContext& ctx, std::shared_ptr<ListenerRuntime> runtime,
                       net::UniqueFd client, const net::SocketAddress& peer,
                       const net::SocketAddress& local)
    : ctx_(ctx),
      runtime_(std::move(runtime)),
      state_(runtime_->current),
      peer_(peer),
      local_(local),
      client_fd_(std::move(client)),
      timer_(ctx.loop, &TcpSession::on_timer, this) {
  client_.session = this;
  client_.fd = client_fd_.get();
  backend_.session = this;
  up_ = Flow{&client_, &backend_, nullptr, {}, false, 0, &runtime_->counters.bytes_in};
  down_ = Flow{&backend_, &client_, nullptr, {}, false, 0, &runtime_->counters.bytes_out};
  tried_.reset(state_->config->group->backends.size());
  ctx_.sessions->add(this);
  ++runtime_->counters.active;
}

TcpSession::~TcpSession() {
  for (Flow* f : {&up_, &down_}) {
    ctx_.buffers.put(std::move(f->buffer));
    ctx_.pipes.put(&f->pipe);
  }
}

void TcpSession::start() {
  last_activity_ms_ = ctx_.loop.now_ms();
  net::set_nodelay(client_.fd);
  if (!ctx_.loop.add(client_.fd, kSideEvents, &client_).ok()) {
    close(true);
    return;
  }
  connect_next();
}

// Picks the next backend not tried yet and starts connecting. Returns false (and ends the
// session) when none is left.
bool TcpSession::connect_next() {
  const snapshot::Listener& cfg = *state_->config;
  const snapshot::ServerGroup& group = *cfg.group;
  while (attempts_ < cfg.connect_attempts) {
    uint32_t index = balance::kNoHost;
    uint64_t client_key = base::hash_string(peer_.ip_bytes());
    if (cfg.persistence_timeout_ms > 0 && runtime_->persistence) {
      if (auto id = runtime_->persistence->lookup(client_key, ctx_.loop.now_ms())) {
        auto it = group.index_by_id.find(*id);
        if (it != group.index_by_id.end() && !tried_.test(it->second) &&
            cfg.table->weight(it->second) > 0) {
          index = it->second;
        }
      }
    }
    if (index == balance::kNoHost) {
      balance::PickRequest req;
      if (cfg.scheduler == balance::Scheduler::kTch) {
        uint16_t ports[2] = {peer_.port(), local_.port()};
        req.key = base::hash_bytes(ports, sizeof ports, client_key);
      } else {
        req.key = client_key;
      }
      req.active = state_->active;
      req.skip = &tried_;
      index = state_->cursor.pick(*state_->config->table, req);
    }
    if (index == balance::kNoHost) break;
    ++attempts_;
    tried_.set(index);
    const snapshot::Backend& backend = group.backends[index];
    base::BackendCounters& counters = *state_->backend_counters[index];
    ++counters.connections;
    bool in_progress = false;
    auto fd = net::connect_tcp(backend.address, &in_progress);
    if (!fd.ok()) {
      FLOG_DEBUG("{} {}: connect to {} failed: {}", cfg.lb_name, cfg.id, backend.name,
                 fd.error().message);
      ++counters.connect_failures;
      ++ctx_.counters.connect_retries;
      if (ctx_.on_backend_failure) ctx_.on_backend_failure(cfg, backend, fd.error().sys_errno);
      continue;
    }
    backend_fd_ = std::move(*fd);
    backend_.fd = backend_fd_.get();
    backend_.readable = backend_.writable = backend_.read_eof = backend_.write_shut = false;
    backend_.hangup_seen = false;
    backend_index_ = index;
    if (uint32_t* active = active_slot(index)) ++*active;
    ++counters.active;
    if (!ctx_.loop.add(backend_.fd, kSideEvents, &backend_).ok()) {
      release_backend();
      continue;
    }
    if (!in_progress) {
      on_connected();
      return state_kind_ != State::kClosed;
    }
    timer_.arm_in(cfg.connect_timeout_ms);
    return true;
  }
  FLOG_DEBUG("{} {}: no backend reachable for {}", cfg.lb_name, cfg.id, peer_.to_string());
  ++runtime_->counters.dropped;
  close(/*reset=*/true);
  return false;
}

uint32_t* TcpSession::active_slot(uint32_t index) const {
  ListenerState& current = *runtime_->current;
  if (&current == state_.get()) return &current.active[index];
  const auto& by_id = current.config->group->index_by_id;
  auto it = by_id.find(state_->config->group->backends[index].id);
  return it == by_id.end() ? nullptr : &current.active[it->second];
}

void TcpSession::release_backend() {
  if (backend_index_ != balance::kNoHost) {
    // Counted in some generation, released in the current one: the counts were carried over by
    // backend identity in between, or the backend left and came back (then never below zero).
    if (uint32_t* active = active_slot(backend_index_); active && *active > 0) --*active;
    --state_->backend_counters[backend_index_]->active;
    backend_index_ = balance::kNoHost;
  }
  backend_fd_.reset();
  backend_.fd = -1;
}

void TcpSession::on_connect_failed(int err) {
  const snapshot::Listener& cfg = *state_->config;
  FLOG_DEBUG("{} {}: backend {} failed to connect: {}", cfg.lb_name, cfg.id,
             cfg.group->backends[backend_index_].name, std::strerror(err));
  ++state_->backend_counters[backend_index_]->connect_failures;
  ++ctx_.counters.connect_retries;
  if (ctx_.on_backend_failure)
    ctx_.on_backend_failure(cfg, cfg.group->backends[backend_index_], err);
  release_backend();
  connect_next();
}

void TcpSession::on_connected() {
  const snapshot::Listener& cfg = *state_->config;
  state_kind_ = State::kRelaying;
  backend_.writable = true;
  if (cfg.persistence_timeout_ms > 0 && runtime_->persistence) {
    runtime_->persistence->put(base::hash_string(peer_.ip_bytes()),
                               cfg.group->backends[backend_index_].id,
                               ctx_.loop.now_ms() + cfg.persistence_timeout_ms);
  }
  if (cfg.proxy_protocol != snapshot::ProxyProtocol::kNone) {
    up_.buffer = ctx_.buffers.get();
    char* out = up_.buffer->data;
    size_t n = cfg.proxy_protocol == snapshot::ProxyProtocol::kV1
                   ? net::encode_proxy_v1(peer_, local_, out)
                   : net::encode_proxy_v2(peer_, local_, net::ProxyTransport::kStream, out);
    up_.buffer->end = n;
  }
  last_activity_ms_ = ctx_.loop.now_ms();
  arm_relay_timer();
  run_relay();
}

// While relaying, one timer serves the idle timeout and the drain deadline, whichever is first.
// Activity does not re-arm it: on_timer looks at last_activity_ms_ and re-arms lazily.
void TcpSession::arm_relay_timer() {
  timer_.arm_at(std::min(last_activity_ms_ + state_->config->idle_timeout_ms, drain_deadline_ms_));
}

std::optional<uint64_t> TcpSession::backend_id() const {
  if (backend_index_ == balance::kNoHost) return std::nullopt;
  return state_->config->group->backends[backend_index_].id;
}

void TcpSession::drain_by(int64_t deadline_ms) {
  if (state_kind_ == State::kClosed || deadline_ms >= drain_deadline_ms_) return;
  drain_deadline_ms_ = deadline_ms;
  if (state_kind_ == State::kRelaying) arm_relay_timer();
  // While connecting, the connect timer runs; on_connected arms the relay timer with it.
}

void TcpSession::cancel_drain() {
  drain_deadline_ms_ = kNoDeadline;
}

void TcpSession::Side::on_io(uint32_t events) {
  session->on_side_io(*this, events);
}

void TcpSession::on_side_io(Side& side, uint32_t events) {
  if (state_kind_ == State::kClosed) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) side.readable = true;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) side.hangup_seen = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) side.writable = true;
  if (state_kind_ == State::kConnecting) {
    if (&side != &backend_) return;  // client bytes wait until the backend is connected
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = net::socket_error(backend_.fd);
    if (err != 0) {
      on_connect_failed(err);
      return;
    }
    // An event left over from a previous attempt's socket in the same batch must not count as
    // this one connecting: only a known peer proves the connection is up.
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (::getpeername(backend_.fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
    on_connected();
    return;
  }
  run_relay();
}

void TcpSession::run_relay() {
  // Alternate directions until neither moves: a write that frees room may allow a read.
  if (!pump(up_)) return;
  if (!pump(down_)) return;
  if (up_.to->write_shut && down_.to->write_shut) close(/*reset=*/false);
}

bool TcpSession::pump(Flow& flow) {
  for (;;) {
    bool progress = false;
    bool alive = flow.splice ? pump_spliced(flow, &progress) : pump_buffered(flow, &progress);
    if (!alive) return false;
    if (!progress) break;
  }
  bool drained = flow.splice ? flow.pipe.pending == 0 : (!flow.buffer || flow.buffer->empty());
  if (flow.from->read_eof && drained && !flow.to->write_shut) {
    // Half-close: the source finished sending; tell the destination, keep the other way open.
    FLOG_DEBUG("{} {}: {} half-close {} (fd {} -> fd {})", state_->config->lb_name,
               state_->config->id, peer_.to_string(),
               &flow == &up_ ? "from client" : "from backend", flow.from->fd, flow.to->fd);
    ::shutdown(flow.to->fd, SHUT_WR);
    flow.to->write_shut = true;
  }
  return true;
}

bool TcpSession::pump_buffered(Flow& flow, bool* progress) {
  net::Buffer* buf = flow.buffer.get();
  if (buf && !buf->empty() && flow.to->writable) {
    ssize_t n = ::send(flow.to->fd, buf->data + buf->begin, buf->readable(), MSG_NOSIGNAL);
    if (n > 0) {
      buf->begin += static_cast<size_t>(n);
      *progress = true;
    } else if (n < 0 && would_block(errno)) {
      flow.to->writable = false;
    } else if (n < 0) {
      close(/*reset=*/true);
      return false;
    }
  }
  if (buf && buf->empty()) {
    buf->clear();
    if (flow.full_reads >= kFullReadsBeforeSplice) {
      // Bulk flow: hand it to the kernel from now on.
      ctx_.buffers.put(std::move(flow.buffer));
      if (ctx_.pipes.get(&flow.pipe)) {
        flow.splice = true;
        ++ctx_.counters.splice_flows;
        *progress = true;
        return true;
      }
      flow.full_reads = 0;
      buf = nullptr;
    }
  }
  if (!flow.from->read_eof && flow.from->readable && (!buf || buf->writable() > 0)) {
    if (!buf) {
      flow.buffer = ctx_.buffers.get();
      buf = flow.buffer.get();
    }
    size_t room = buf->writable();
    ssize_t n = ::recv(flow.from->fd, buf->data + buf->end, room, 0);
    if (n > 0) {
      buf->end += static_cast<size_t>(n);
      *flow.byte_counter += static_cast<uint64_t>(n);
      last_activity_ms_ = ctx_.loop.now_ms();
      if (static_cast<size_t>(n) == net::Buffer::kCapacity)
        ++flow.full_reads;
      else
        flow.full_reads = 0;
      // A short read emptied the socket: the next arrival raises a new edge, so skip the recv
      // that would only say EAGAIN. Not when a hangup was reported: the FIN behind these bytes
      // raises no further edge, and only another recv can see it.
      if (static_cast<size_t>(n) < room && !flow.from->hangup_seen) flow.from->readable = false;
      *progress = true;
    } else if (n == 0) {
      flow.from->read_eof = true;
      *progress = true;
    } else if (would_block(errno)) {
      flow.from->readable = false;
    } else {
      close(/*reset=*/true);
      return false;
    }
  }
  if (buf && buf->empty()) ctx_.buffers.put(std::move(flow.buffer));  // idle flows hold nothing
  return true;
}

bool TcpSession::pump_spliced(Flow& flow, bool* progress) {
  net::Pipe& pipe = flow.pipe;
  if (pipe.pending > 0 && flow.to->writable) {
    ssize_t n = ::splice(pipe.read_fd, nullptr, flow.to->fd, nullptr, pipe.pending,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      pipe.pending -= static_cast<size_t>(n);
      *progress = true;
    } else if (n < 0 && would_block(errno)) {
      flow.to->writable = false;
    } else {
      close(/*reset=*/true);
      return false;
    }
  }
  if (!flow.from->read_eof && flow.from->readable) {
    ssize_t n = ::splice(flow.from->fd, nullptr, pipe.write_fd, nullptr, kSpliceChunk,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      pipe.pending += static_cast<size_t>(n);
      *flow.byte_counter += static_cast<uint64_t>(n);
      last_activity_ms_ = ctx_.loop.now_ms();
      *progress = true;
    } else if (n == 0) {
      flow.from->read_eof = true;
      *progress = true;
    } else if (would_block(errno)) {
      // EAGAIN means "socket empty" or "pipe full"; only an empty pipe proves the former.
      if (pipe.pending == 0) flow.from->readable = false;
    } else {
      close(/*reset=*/true);
      return false;
    }
  }
  return true;
}

void TcpSession::on_timer(void* self) {
  auto* s = static_cast<TcpSession*>(self);
  if (s->state_kind_ == State::kConnecting) {
    s->on_connect_failed(ETIMEDOUT);
    return;
  }
  if (s->state_kind_ != State::kRelaying) return;
  int64_t now = s->ctx_.loop.now_ms();
  if (now >= s->drain_deadline_ms_) {
    ++s->ctx_.counters.drain_closes;
    s->close(/*reset=*/false);
    return;
  }
  if (now < s->last_activity_ms_ + s->state_->config->idle_timeout_ms) {
    s->arm_relay_timer();  // there was traffic since: look again at the new deadline
    return;
  }
  ++s->ctx_.counters.idle_timeouts;
  s->close(/*reset=*/false);
}

void TcpSession::close(bool reset) {
  if (state_kind_ == State::kClosed) return;
  FLOG_DEBUG("{} {}: {} closed{}", state_->config->lb_name, state_->config->id, peer_.to_string(),
             reset ? " with reset" : "");
  state_kind_ = State::kClosed;
  timer_.cancel();
  if (reset) {
    if (client_.fd >= 0) net::set_linger_reset(client_.fd);
    if (backend_.fd >= 0) net::set_linger_reset(backend_.fd);
  }
  client_fd_.reset();
  client_.fd = -1;
  release_backend();
  --runtime_->counters.active;
  ctx_.sessions->remove(this);
  ctx_.loop.defer_delete(std::unique_ptr<net::Deferred>(this));
}

}  // namespace fulcrum::l4
