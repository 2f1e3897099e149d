#include "l7/http_listener.h"

#include "l7/http_session.h"

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
      current_(std::make_shared<std::shared_ptr<HttpListenerState>>(
          std::make_shared<HttpListenerState>(cfg))),
      acceptor_(ctx.loop, std::move(fd), &HttpListener::on_accept, this,
                cfg->lb_name + " " + cfg->id) {}

HttpListener::~HttpListener() = default;

void HttpListener::update(std::shared_ptr<const snapshot::Listener> cfg) {
  acceptor_.set_label(cfg->lb_name + " " + cfg->id);
  *current_ = std::make_shared<HttpListenerState>(std::move(cfg));
}

void HttpListener::on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                             const net::SocketAddress& local) {
  auto* l = static_cast<HttpListener*>(self);
  ++l->ctx_.counters.connections_accepted;
  if (l->ctx_.draining) return;  // fd closes: a draining worker takes no new client
  auto* session = new HttpSession(l->ctx_, l->current_, std::move(fd), peer, local);
  session->start();  // owned by the session list from here; deleted through the loop
}

}  // namespace fulcrum::l7
