#include "l4/tcp_listener.h"

#include "base/log.h"
#include "l4/tcp_session.h"

namespace fulcrum::l4 {

namespace {
// Source-IP persistence entries one worker keeps per listener; the oldest go first when full.
constexpr size_t kPersistenceEntries = 1 << 18;
// Persistence cleanup: every second, drop at most this many expired entries.
constexpr int64_t kSweepIntervalMs = 1000;
constexpr size_t kSweepBudget = 4096;
}  // namespace

ListenerState::ListenerState(std::shared_ptr<const snapshot::Listener> cfg,
                             const ListenerState* previous)
    : config(std::move(cfg)), cursor(*config->table), active(config->group->backends.size(), 0) {
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
      runtime_(std::make_shared<ListenerRuntime>()),
      acceptor_(ctx.loop, std::move(fd), &TcpListener::on_accept, this,
                cfg->lb_name + " " + cfg->id),
      sweep_timer_(ctx.loop, &TcpListener::on_sweep, this) {
  update(std::move(cfg));
  sweep_timer_.arm_in(kSweepIntervalMs);
}

TcpListener::~TcpListener() = default;

void TcpListener::update(std::shared_ptr<const snapshot::Listener> cfg) {
  bool persistent = cfg->persistence_timeout_ms > 0;
  acceptor_.set_label(cfg->lb_name + " " + cfg->id);
  auto state = std::make_shared<ListenerState>(std::move(cfg), runtime_->current.get());
  const snapshot::ServerGroup& group = *state->config->group;
  state->backend_counters.reserve(group.backends.size());
  for (const snapshot::Backend& b : group.backends) {
    state->backend_counters.push_back(runtime_->backends.use(group.name, b.id, b.name));
  }
  runtime_->backends.sweep();
  runtime_->current = std::move(state);
  // Entries keep their own expiry; turning persistence off forgets them, turning it on starts
  // empty. Backend ids that left the group are ignored on lookup.
  if (persistent && !runtime_->persistence) {
    runtime_->persistence = std::make_unique<balance::PersistenceTable>(kPersistenceEntries);
  } else if (!persistent) {
    runtime_->persistence.reset();
  }
}

void TcpListener::on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                            const net::SocketAddress& local) {
  auto* l = static_cast<TcpListener*>(self);
  ++l->runtime_->counters.connections;
  // The ACL of the generation current now decides, before any backend is picked; a refused
  // client gets a RST (as a cloud load balancer's TCP listener does), nothing else.
  if (!l->runtime_->current->config->access.allows(peer)) {
    ++l->runtime_->counters.dropped;
    ++l->runtime_->counters.acl_denied;
    net::set_linger_reset(fd.get());
    return;  // fd closes here
  }
  auto* session = new TcpSession(l->ctx_, l->runtime_, std::move(fd), peer, local);
  session->start();  // owned by the registry from here; deleted through the loop
}

void TcpListener::on_sweep(void* self) {
  auto* l = static_cast<TcpListener*>(self);
  if (l->runtime_->persistence) {
    l->runtime_->persistence->expire(l->ctx_.loop.now_ms(), kSweepBudget);
  }
  l->sweep_timer_.arm_in(kSweepIntervalMs);
}

}  // namespace fulcrum::l4
