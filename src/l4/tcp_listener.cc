#include "l4/tcp_listener.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "l4/tcp_session.h"

namespace fulcrum::l4 {

namespace {
// Source-IP persistence entries one worker keeps per listener; the oldest go first when full.
constexpr size_t kPersistenceEntries = 1 << 18;
// Persistence cleanup: every second, drop at most this many expired entries.
constexpr int64_t kSweepIntervalMs = 1000;
constexpr size_t kSweepBudget = 4096;
// New connections taken per wake-up before established sessions get a turn (HAProxy's
// tune.maxaccept plays the same role).
constexpr int kMaxAcceptsPerWake = 64;
}  // namespace

ListenerState::ListenerState(std::shared_ptr<const snapshot::Listener> cfg,
                             const ListenerState* previous)
    : config(std::move(cfg)),
      cursor(*config->table),
      active(config->group->backends.size(), 0) {
  if (!previous) return;
  // Sessions of every generation count themselves in the current state (TcpSession::active_slot),
  // so the counts move with the backends they belong to.
  const auto& old_backends = previous->config->group->backends;
  for (size_t i = 0; i < old_backends.size(); ++i) {
    auto it = config->group->index_by_id.find(old_backends[i].id);
    if (it != config->group->index_by_id.end()) active[it->second] = previous->active[i];
  }
}

TcpListener::TcpListener(WorkerContext& ctx, net::UniqueFd fd,
                         std::shared_ptr<const snapshot::Listener> cfg)
    : ctx_(ctx),
      fd_(std::move(fd)),
      runtime_(std::make_shared<ListenerRuntime>()),
      sweep_timer_(ctx.loop, &TcpListener::on_sweep, this),
      accept_timer_(ctx.loop, &TcpListener::on_accept_more, this) {
  update(std::move(cfg));
  if (auto a = net::local_address(fd_.get()); a.ok()) bound_ = *a;
  std::string_view ip = bound_.ip_bytes();
  bound_is_wildcard_ = ip.find_first_not_of('\0') == std::string_view::npos;
  if (auto st = ctx_.loop.add(fd_.get(), EPOLLIN, this); !st.ok()) {
    FLOG_ERROR("listener {}: {}", config().id, st.error().message);
  }
  sweep_timer_.arm_in(kSweepIntervalMs);
  accept_all();  // connections may have queued before registration
}

TcpListener::~TcpListener() { ctx_.loop.remove(fd_.get()); }

void TcpListener::update(std::shared_ptr<const snapshot::Listener> cfg) {
  bool persistent = cfg->persistence_timeout_ms > 0;
  runtime_->current = std::make_shared<ListenerState>(std::move(cfg), runtime_->current.get());
  // Entries keep their own expiry; turning persistence off forgets them, turning it on starts
  // empty. Backend ids that left the group are ignored on lookup.
  if (persistent && !runtime_->persistence) {
    runtime_->persistence = std::make_unique<balance::PersistenceTable>(kPersistenceEntries);
  } else if (!persistent) {
    runtime_->persistence.reset();
  }
}

void TcpListener::on_io(uint32_t /*events*/) { accept_all(); }

void TcpListener::accept_all() {
  // Edge-triggered: accept until the queue is empty. Each worker has its own SO_REUSEPORT
  // socket, so no other thread competes for this queue. At most kMaxAcceptsPerWake at a time:
  // the rest are taken after the sessions already running had their turn.
  for (int accepted = 0;; ++accepted) {
    if (accepted == kMaxAcceptsPerWake) {
      accept_timer_.arm_in(0);
      return;
    }
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        FLOG_WARN("listener {}: accept: {}", config().id, std::strerror(errno));
      }
      return;
    }
    ++ctx_.counters.connections_accepted;
    net::UniqueFd client(fd);
    // The local address is the bound one unless the listener is on a wildcard address; only
    // then does it cost a getsockname per connection.
    net::SocketAddress local = bound_;
    if (bound_is_wildcard_) {
      if (auto a = net::local_address(fd); a.ok()) local = *a;
    }
    auto* session = new TcpSession(
        ctx_, runtime_, std::move(client),
        net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), peer_len), local);
    session->start();  // owned by the registry from here; deleted through the loop
  }
}

void TcpListener::on_accept_more(void* self) { static_cast<TcpListener*>(self)->accept_all(); }

void TcpListener::on_sweep(void* self) {
  auto* l = static_cast<TcpListener*>(self);
  if (l->runtime_->persistence) {
    l->runtime_->persistence->expire(l->ctx_.loop.now_ms(), kSweepBudget);
  }
  l->sweep_timer_.arm_in(kSweepIntervalMs);
}

}  // namespace fulcrum::l4
