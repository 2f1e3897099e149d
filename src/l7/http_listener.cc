#include "l7/http_listener.h"

#include "l7/http_session.h"
#include "l7/tls_handshake.h"

namespace fulcrum::l7 {

HttpListenerState::HttpListenerState(std::shared_ptr<const snapshot::Listener> cfg)
    : config(std::move(cfg)) {
  targets.reserve(config->targets.size());
  for (const auto& t : config->targets) {
    if (t.table) {
      targets.emplace_back(*t.table);
      targets.back().active.assign(t.group->backends.size(), 0);
    } else {
      targets.emplace_back(*config->table);  // a redirect: never picked from
    }
  }
}

HttpListener::HttpListener(HttpContext& ctx, net::UniqueFd fd,
                           std::shared_ptr<const snapshot::Listener> cfg)
    : ctx_(ctx),
      runtime_(std::make_shared<HttpListenerRuntime>()),
      acceptor_(ctx.loop, std::move(fd), &HttpListener::on_accept, this,
                cfg->lb_name + " " + cfg->id) {
  update(std::move(cfg));
}

HttpListener::~HttpListener() {
  runtime_->removed_ms = ctx_.loop.now_ms();
}

void HttpListener::update(std::shared_ptr<const snapshot::Listener> cfg) {
  acceptor_.set_label(cfg->lb_name + " " + cfg->id);
  auto state = std::make_shared<HttpListenerState>(std::move(cfg));
  // The same group behind two targets shares its entries: (group, backend) is one series.
  for (size_t i = 0; i < state->targets.size(); ++i) {
    const snapshot::HttpTarget& t = state->config->targets[i];
    if (!t.group) continue;
    auto& counters = state->targets[i].backend_counters;
    counters.reserve(t.group->backends.size());
    for (const snapshot::Backend& b : t.group->backends) {
      counters.push_back(runtime_->backends.use(t.group->name, b.id, b.name));
    }
  }
  runtime_->backends.sweep();
  runtime_->current = std::move(state);
}

bool backend_left(const snapshot::Listener& current, const snapshot::ServerGroup& group,
                  uint32_t index) {
  uint64_t id = group.backends[index].id;
  for (const snapshot::HttpTarget& t : current.targets) {
    if (!t.group || t.group->name != group.name) continue;
    auto it = t.group->index_by_id.find(id);
    return it == t.group->index_by_id.end() || t.group->backends[it->second].weight == 0;
  }
  return true;
}

void HttpListener::on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                             const net::SocketAddress& local) {
  auto* l = static_cast<HttpListener*>(self);
  ++l->runtime_->counters.connections;
  if (l->ctx_.draining) {
    ++l->runtime_->counters.dropped;
    return;  // fd closes: a draining worker takes no new client
  }
  // The ACL of the generation current now decides for the whole connection. A refused client
  // still gets an HTTP answer: 403 to its first request, then the connection closes.
  bool refused = !l->runtime_->current->config->access.allows(peer);
  if (refused) {
    ++l->runtime_->counters.dropped;
    ++l->runtime_->counters.acl_denied;
  }
  if (const auto& tls = l->runtime_->current->config->tls) {
    // [worker] The per-connection OpenSSL objects are made here, from the shared context.
    std::unique_ptr<tls::TlsStream> stream = tls->accept(std::move(fd));
    if (!stream) {
      ++l->runtime_->counters.dropped;
      return;
    }
    auto* handshake = new TlsHandshake(l->ctx_, l->runtime_, std::move(stream), peer, local);
    handshake->set_refused(refused);
    handshake->start();  // owned by the handshake list from here; deleted through the loop
    return;
  }
  auto* session = new HttpSession(l->ctx_, l->runtime_,
                                  std::make_unique<net::SocketStream>(std::move(fd)), peer, local);
  HttpSession::ClientInfo info;
  info.refused = refused;
  session->start(std::move(info));  // owned by the session list from here; deleted through the loop
}

}  // namespace fulcrum::l7
