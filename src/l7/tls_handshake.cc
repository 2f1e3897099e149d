#include "l7/tls_handshake.h"

#include <sys/epoll.h>

#include "base/log.h"
#include "l7/http2_session.h"
#include "l7/http_session.h"

namespace fulcrum::l7 {

namespace {
constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
}  // namespace

void close_handshakes(HttpContext& ctx) {
  while (TlsHandshake* h = ctx.handshakes.front()) h->close();
}

TlsHandshake::TlsHandshake(HttpContext& ctx, std::shared_ptr<HttpListenerRuntime> listener,
                           std::unique_ptr<tls::TlsStream> stream, const net::SocketAddress& peer,
                           const net::SocketAddress& local)
    : ctx_(ctx),
      listener_(std::move(listener)),
      stream_(std::move(stream)),
      peer_(peer),
      local_(local),
      timer_(ctx.loop, &TlsHandshake::on_timer, this) {
  ctx_.handshakes.push_front(this);
  ++listener_->counters.active;
}

TlsHandshake::~TlsHandshake() = default;

void TlsHandshake::start() {
  net::set_nodelay(stream_->fd());
  // Corked until the first response: the handshake's last writes (the TLS 1.3 session ticket)
  // then leave in the response's segment instead of one of their own. Each flight the client must
  // answer is flushed when the handshake waits for it (advance()).
  net::set_cork(stream_->fd(), true);
  if (!ctx_.loop.add(stream_->fd(), kEvents, this).ok()) {
    close();
    return;
  }
  deadline_ms_ = ctx_.loop.now_ms() + listener_->current->config->idle_timeout_ms;
  timer_.arm_at(deadline_ms_);
  advance();  // the ClientHello is often there already
}

void TlsHandshake::on_io(uint32_t) {
  if (!closed_) advance();
}

void TlsHandshake::advance() {
  switch (stream_->handshake()) {
    case net::IoStatus::kOk:
      hand_over();
      return;
    case net::IoStatus::kBlocked:
      // Send the flight written so far (the client answers it), and cork again.
      net::set_cork(stream_->fd(), false);
      net::set_cork(stream_->fd(), true);
      return;  // the next readiness event, or the timer
    case net::IoStatus::kEof:
      fail(base::TlsFailure::kClosed);
      return;
    case net::IoStatus::kError:
      fail(stream_->failure());
      return;
  }
}

void TlsHandshake::on_timer(void* self) {
  auto* h = static_cast<TlsHandshake*>(self);
  FLOG_DEBUG("tls: handshake with {} timed out", h->peer_.to_string());
  h->fail(base::TlsFailure::kTimeout);
}

void TlsHandshake::fail(base::TlsFailure reason) {
  if (closed_) return;
  closed_ = true;
  base::TlsCounters& tls = listener_->tls;
  tls.count_failure(reason);
  if (stream_->sni_unmatched()) ++tls.sni_unmatched;
  timer_.cancel();
  net::set_cork(stream_->fd(), false);  // an alert OpenSSL wrote leaves before the reset
  stream_->close_with_reset();
  --listener_->counters.active;
  ctx_.handshakes.erase(this);
  ctx_.loop.defer_delete(std::unique_ptr<net::Deferred>(this));
}

void TlsHandshake::hand_over() {
  closed_ = true;
  timer_.cancel();
  base::TlsCounters& tls = listener_->tls;
  ++(stream_->resumed() ? tls.resumed : tls.full);
  ++tls.versions[static_cast<size_t>(stream_->version_id())];
  ++tls.alpn[static_cast<size_t>(stream_->alpn_id())];
  if (stream_->sni_unmatched()) ++tls.sni_unmatched;
  --listener_->counters.active;  // the session counts itself
  ctx_.handshakes.erase(this);
  HttpSession::ClientInfo info;
  info.tls = true;
  info.cert_subject = stream_->peer_subject();
  info.registered = true;
  info.head_deadline_ms = deadline_ms_;
  info.refused = refused_;
  info.corked = true;
  // ALPN decides the protocol: "h2" (offered when the listener's http2 is on), else HTTP/1.1.
  if (stream_->protocol() == "h2") {
    net::set_cork(stream_->fd(), false);  // HTTP/2 writes its SETTINGS at once
    info.corked = false;
    auto* h2 = new Http2Session(ctx_, std::move(listener_), std::move(stream_), peer_, local_);
    h2->start(std::move(info));  // owned by the session list from here
    ctx_.loop.defer_delete(std::unique_ptr<net::Deferred>(this));
    return;
  }
  auto* session = new HttpSession(ctx_, std::move(listener_), std::move(stream_), peer_, local_);
  session->start(std::move(info));  // owned by the session list from here
  ctx_.loop.defer_delete(std::unique_ptr<net::Deferred>(this));
}

}  // namespace fulcrum::l7
