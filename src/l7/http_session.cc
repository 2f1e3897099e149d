#include "l7/http_session.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/clock.h"
#include "base/log.h"
#include "http/syntax.h"
#include "l7/forwarding.h"
#include "l7/gzip.h"
#include "l7/http2_session.h"

namespace fulcrum::l7 {

namespace {
constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
constexpr size_t kReadChunk = 16 * 1024;
// Buffered bytes in one direction above which the other side is not read until they drain.
constexpr size_t kMaxBuffered = 1024 * 1024;
// Time to flush a final answer before the connection is closed anyway.
constexpr int64_t kClosingGraceMs = 5000;

bool would_block(int err) {
  return err == EAGAIN || err == EWOULDBLOCK;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

// Reads what is available from `fd` into `out`, up to `cap` bytes in `out`. Returns kDrained,
// kFull (stopped at the cap: more may be waiting, and no new edge will say so), kEof or kFailed.
enum ReadResult { kDrained, kFull, kEof, kFailed };
// `hangup_seen`: epoll reported RDHUP/HUP/ERR for this socket. Without it, a short read means the
// socket is empty (the next arrival raises a new edge) and the recv that would say EAGAIN is
// skipped; with it, reading goes on, because the FIN behind the bytes raises no further edge.
ReadResult read_into(int fd, std::string& out, size_t cap, bool hangup_seen) {
  char chunk[kReadChunk];  // recv here and append: no zero-filling of a larger string per read
  for (;;) {
    if (out.size() >= cap) return kFull;
    size_t room = std::min(kReadChunk, cap - out.size());
    ssize_t n = ::recv(fd, chunk, room, 0);
    if (n > 0) {
      out.append(chunk, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < room && !hangup_seen) return kDrained;
      continue;
    }
    if (n == 0) return kEof;
    if (errno == EINTR) continue;
    return would_block(errno) ? kDrained : kFailed;
  }
}

// As read_into, from the client's stream (TLS decrypts here).
ReadResult read_stream(net::Stream& stream, std::string& out, size_t cap, bool hangup_seen) {
  char chunk[kReadChunk];
  for (;;) {
    if (out.size() >= cap) return kFull;
    size_t room = std::min(kReadChunk, cap - out.size());
    net::IoResult r = stream.read(chunk, room);
    switch (r.status) {
      case net::IoStatus::kOk:
        out.append(chunk, r.bytes);
        if (!r.more && !hangup_seen) return kDrained;
        continue;
      case net::IoStatus::kBlocked:
        return kDrained;
      case net::IoStatus::kEof:
        return kEof;
      case net::IoStatus::kError:
        return kFailed;
    }
  }
}

// As write_from, to the client's stream.
bool write_stream(net::Stream& stream, std::string& buf) {
  size_t done = 0;
  while (done < buf.size()) {
    net::IoResult r = stream.write(buf.data() + done, buf.size() - done);
    if (r.status == net::IoStatus::kOk) {
      done += r.bytes;
      continue;
    }
    if (r.status == net::IoStatus::kBlocked) break;
    return false;
  }
  buf.erase(0, done);
  return true;
}

// Writes as much of `buf` as the socket takes; erases what was written. False on error.
bool write_from(int fd, std::string& buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::send(fd, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) break;
    return false;
  }
  buf.erase(0, done);
  return true;
}

}  // namespace

// ---- HttpSessionList ----

void HttpSessionList::add(HttpSession* s) {
  list_.push_front(s);
}

void HttpSessionList::remove(HttpSession* s) {
  list_.erase(s);
}

void HttpSessionList::add(Http2Session* s) {
  h2_.push_front(s);
}

void HttpSessionList::remove(Http2Session* s) {
  h2_.erase(s);
}

void HttpSessionList::drain_all() {
  list_.for_each([](HttpSession& s) { s.drain(); });  // drain() may close (and unlink) s
  h2_.for_each([](Http2Session& s) { s.drain(); });
}

void HttpSessionList::close_all() {
  while (HttpSession* s = list_.front()) s->close(/*reset=*/true);
  while (Http2Session* s = h2_.front()) s->close(/*reset=*/true);
}

// ---- HttpSession ----

HttpSession::HttpSession(HttpContext& ctx, std::shared_ptr<HttpListenerRuntime> listener,
                         std::unique_ptr<net::Stream> client, const net::SocketAddress& peer,
                         const net::SocketAddress& local)
    : ctx_(ctx),
      listener_(std::move(listener)),
      peer_(peer),
      local_(local),
      peer_ip_(peer.ip_string()),
      client_(std::move(client)),
      timer_(ctx.loop, &HttpSession::on_timer, this) {
  client_side_.session = this;
  ctx_.sessions.add(this);
  ++listener_->counters.active;
}

HttpSession::~HttpSession() = default;

void HttpSession::Side::on_io(uint32_t events) {
  session->on_client_io(events);
}

void HttpSession::start(ClientInfo info) {
  refused_ = info.refused;
  corked_ = info.corked;
  client_tls_ = info.tls;
  client_cert_subject_ = std::move(info.cert_subject);
  if (info.registered) {
    if (!ctx_.loop.modify(client_->fd(), kEvents, &client_side_).ok()) {
      close(true);
      return;
    }
  } else {
    net::set_nodelay(client_->fd());
    if (!ctx_.loop.add(client_->fd(), kEvents, &client_side_).ok()) {
      close(true);
      return;
    }
  }
  idle_deadline_ms_ = info.head_deadline_ms != 0
                          ? info.head_deadline_ms
                          : ctx_.loop.now_ms() + listener_->current->config->idle_timeout_ms;
  if (listener_->removed_ms >= 0) {  // removed during this client's TLS handshake
    listener_drain_ms_ = listener_->removed_ms + listener_->current->config->drain_timeout_ms;
  }
  arm_timer();
  on_client_io(EPOLLIN);
}

void HttpSession::drain() {
  draining_ = true;
  if (phase_ == Phase::kIdle && request_parser_.idle() && client_in_used_ == client_in_.size()) {
    close(false);
  }
}

void HttpSession::apply_generation(int64_t now_ms) {
  if (phase_ == Phase::kClosed || phase_ == Phase::kClosing || draining_) return;
  const snapshot::Listener& current = *listener_->current->config;
  if (listener_->removed_ms >= 0) {
    listener_drain_ms_ = std::min(listener_drain_ms_, now_ms + current.drain_timeout_ms);
  } else if ((phase_ == Phase::kExchange || phase_ == Phase::kTunnel) && state_ &&
             backend_ != UINT32_MAX &&
             backend_left(current, *state_->config->targets[target_].group, backend_)) {
    backend_drain_ms_ = std::min(backend_drain_ms_, now_ms + current.drain_timeout_ms);
  } else {
    if (backend_drain_ms_ == kNoDeadline) return;
    backend_drain_ms_ = kNoDeadline;  // the backend is back
    arm_timer();
    return;
  }
  int64_t at = drain_at();
  if (!timer_.armed() || at < timer_.deadline_ms()) timer_.arm_at(at);
}

void HttpSession::drain_deadline_passed() {
  listener_drain_ms_ = backend_drain_ms_ = kNoDeadline;
  if (phase_ == Phase::kTunnel) {
    close(false);
    return;
  }
  drain();  // idle: closes now; else the response in flight goes out with Connection: close
  if (phase_ != Phase::kClosed) arm_timer();
}

void HttpSession::close(bool reset) {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  timer_.cancel();
  if (reset) {
    client_->close_with_reset();
  } else {
    client_->shutdown();  // TLS: our close_notify
    client_->close();
  }
  release_upstream(false);
  unpark();  // a clean connection: others can use it
  --listener_->counters.active;
  ctx_.sessions.remove(this);
  ctx_.loop.defer_delete(std::unique_ptr<net::Deferred>(this));
}

// ---- client side ----

void HttpSession::on_client_io(uint32_t events) {
  if (phase_ == Phase::kClosed) return;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) client_hangup_ = true;
  if (phase_ == Phase::kTunnel) {
    relay_tunnel();
    return;
  }
  // TLS may need the other direction's readiness to make progress (a record to send before
  // reading on, a record to read before writing on).
  bool writable = (events & EPOLLOUT) || ((events & EPOLLIN) && client_->wants_read_to_write());
  bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ||
                  ((events & EPOLLOUT) && client_->wants_write_to_read());
  if (writable) {
    if (!flush_client()) return;
  }
  if (readable) {
    if (!read_client()) return;
    process_client_input();
  }
}

bool HttpSession::read_client() {
  if (client_eof_) return true;
  if (client_in_used_ > 0 && client_in_used_ == client_in_.size()) {
    client_in_.clear();
    client_in_used_ = 0;
  }
  size_t had = client_in_.size();
  ReadResult r = read_stream(*client_, client_in_, client_in_used_ + kMaxBuffered, client_hangup_);
  listener_->counters.bytes_in += client_in_.size() - had;
  if (r == kFailed) {
    close(true);
    return false;
  }
  client_more_ = r == kFull;
  if (r == kEof) client_eof_ = true;
  return true;
}

void HttpSession::process_client_input() {
  for (;;) {
    for (;;) {
      if (phase_ == Phase::kClosed || phase_ == Phase::kClosing || phase_ == Phase::kTunnel) return;
      bool reading_head = phase_ == Phase::kIdle;
      bool reading_body = !reading_head && !request_body_done_;
      if (!reading_head && !reading_body) break;
      if (reading_body && upstream_out_.size() > kMaxBuffered) break;  // upstream is slow
      if (client_in_used_ == client_in_.size() && client_more_) {
        if (!read_client()) return;  // the buffer was full: what waited in the socket
      }
      std::string_view data(client_in_);
      data.remove_prefix(client_in_used_);
      size_t used = 0;
      http::Step step = request_parser_.feed(data, &used);
      client_in_used_ += used;
      bytes_in_ += used;
      if (step == http::Step::kNeedMore) {
        if (client_more_) continue;
        break;
      }
      if (step == http::Step::kError) {
        ++ctx_.counters.bad_requests;
        if (reading_head || !response_started_) {
          answer_error(request_parser_.error().status, request_parser_.error().reason);
        } else {
          close(true);
        }
        return;
      }
      if (step == http::Step::kHead) {
        on_request_head();
        continue;
      }
      if (step == http::Step::kBody) {
        std::string_view piece = request_parser_.body();
        if (request_framing_ == http::Framing::kChunked) {
          http::write_chunk(piece, &upstream_out_);
        } else {
          upstream_out_.append(piece);
        }
        continue;
      }
      // kDone: the request is complete. The next one waits until this response is done.
      if (reading_body) {
        if (request_framing_ == http::Framing::kChunked) {
          http::write_last_chunk(request_parser_.trailers(), &upstream_out_);
        }
        request_body_done_ = true;
        break;
      }
    }
    if (phase_ == Phase::kExchange && !upstream_out_.empty()) {
      if (!flush_upstream()) return;
      // The socket took it all: no EPOLLOUT edge will come to resume reading the body.
      if (!request_body_done_ && upstream_out_.size() <= kMaxBuffered &&
          (client_in_used_ < client_in_.size() || client_more_)) {
        continue;
      }
    }
    break;
  }
  if (client_eof_ && phase_ == Phase::kIdle) {
    // Between requests: a clean end once our answers are out. Inside a head: the client gave up.
    if (!request_parser_.idle() || client_in_used_ != client_in_.size()) {
      close(false);
      return;
    }
    phase_ = Phase::kClosing;
    arm_timer();
    flush_client();
    return;
  }
  if (client_eof_ && !request_body_done_ && phase_ != Phase::kClosed &&
      client_in_used_ == client_in_.size() && !client_more_) {
    close(true);  // the request body was cut short: the upstream must not see a complete one
  }
}

void HttpSession::on_request_head() {
  const http::RequestHead& head = request_parser_.head();
  ++ctx_.counters.requests;
  request_start_ns_ = base::monotonic_ns();
  timing_ = true;
  upstream_sent_ns_ = 0;
  state_ = listener_->current;
  const snapshot::Listener& cfg = *state_->config;
  method_ = head.method;
  client_minor_ = head.version_minor;
  client_keep_alive_ = head.keep_alive && !draining_;
  upgrade_requested_ = head.upgrade;
  request_framing_ = http::request_framing(head);
  request_body_done_ = !head.has_body();
  request_sent_any_ = response_started_ = response_done_ = false;
  logging_ = cfg.access_log && ctx_.access_log;
  if (logging_) {
    response_head_ns_ = 0;
    bytes_out_ = 0;
    log_method_.assign(head.method_text);
    log_host_.assign(head.host);
    log_path_.assign(head.path);
    log_backend_.clear();
  }
  accept_encoding_.clear();
  gzip_.reset();
  if (cfg.gzip) {
    for (const http::Header& h : head.headers) {
      if (iequals(h.name, "accept-encoding")) {
        if (!accept_encoding_.empty()) accept_encoding_ += ", ";
        accept_encoding_.append(h.value);
      }
    }
  }
  request_deadline_ms_ = ctx_.loop.now_ms() + cfg.request_timeout_ms;

  if (refused_) {
    answer_error(403, "access denied by the listener's access control list");
    return;
  }
  if (cfg.redirect_https_port != 0) {
    answer_https_redirect(head, cfg.redirect_https_port);
    return;
  }

  // Route by Host and path; the forwarding headers and the sticky cookie (l7/forwarding.h).
  target_ = route_request(cfg, head.host, head.path);
  const snapshot::HttpTarget& target = cfg.targets[target_];
  if (!target.redirect.empty()) {
    answer_redirect(302, target.redirect);
    return;
  }
  ForwardEdits& edits = edits_;
  ClientFacts facts{peer_ip_, client_tls_, client_cert_subject_, reinterpret_cast<uintptr_t>(this)};
  forward_edits(cfg, target_, head.headers, facts, &edits);
  if (logging_) log_request_id_ = edits.request_id;
  sticky_backend_ = edits.sticky_backend;
  request_head_.clear();
  std::string reached;  // an HTTP/1.0 request without Host: the upstream gets one
  if (head.host.empty()) reached = reached_authority();
  http::write_request_head(head, http::HeaderEdits{edits.remove, edits.add, reached},
                           &request_head_);
  upstream_out_ = request_head_;

  tried_.reset(target.group->backends.size());
  attempts_ = 0;
  connect_upstream();
}

std::string HttpSession::reached_authority() const {
  std::string_view sni = client_->server_name();
  if (!sni.empty() && sni.find(':') == std::string_view::npos &&
      http::detail::is_valid_authority(sni, /*allow_empty=*/false)) {
    return std::string(sni);
  }
  return local_.to_string();
}

void HttpSession::answer_https_redirect(const http::RequestHead& head, uint16_t port) {
  // The host without its port ("a.example.com:8080", "[2001:db8::1]:80"); without a Host (an
  // HTTP/1.0 request) the address the client reached.
  std::string_view host = head.host;
  if (host.starts_with("[")) {
    host = host.substr(0, host.find(']') + 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  std::string location = "https://";
  if (host.empty()) {
    location += local_.family() == AF_INET6 ? "[" + local_.ip_string() + "]" : local_.ip_string();
  } else {
    location.append(host);
  }
  if (port != 443) location += ":" + std::to_string(port);
  location.append(head.path.empty() || head.path.front() != '/' ? "/" : "");
  location.append(head.path);
  bool safe = method_ == http::Method::kGet || method_ == http::Method::kHead;
  answer_redirect(safe ? 301 : 308, location);
}

void HttpSession::answer_redirect(uint16_t status, std::string_view location) {
  // A body we would have to read and throw away: simpler and safe to close afterwards.
  if (!request_body_done_) client_keep_alive_ = false;
  client_out_ += "HTTP/1.1 " + std::to_string(status) + " " +
                 std::string(http::reason_phrase(status)) + "\r\nLocation: ";
  client_out_.append(location);
  client_out_ += "\r\nContent-Length: 0\r\n";
  client_out_ += client_keep_alive_ ? "\r\n" : "Connection: close\r\n\r\n";
  ++listener_->http.responses_by_class[3];
  observe_request_done();
  if (logging_) log_request(status);
  keep_client_ = client_keep_alive_;
  request_body_done_ = true;
  response_started_ = true;
  if (!keep_client_) {
    phase_ = Phase::kClosing;
    arm_timer();
  }
  flush_client();
}

void HttpSession::answer_error(uint16_t status, std::string_view detail) {
  if (response_started_) {
    close(true);
    return;
  }
  release_upstream(false);
  if (logging_) log_request(status);
  std::string body = std::to_string(status) + " " + std::string(http::reason_phrase(status)) +
                     "\n" + std::string(detail) + "\n";
  client_out_ += "HTTP/1.1 " + std::to_string(status) + " " +
                 std::string(http::reason_phrase(status)) +
                 "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body;
  ++listener_->http.responses_by_class[std::min<size_t>(status / 100, 5)];
  observe_request_done();
  response_started_ = true;
  keep_client_ = false;
  phase_ = Phase::kClosing;
  arm_timer();
  flush_client();
}

bool HttpSession::flush_client() {
  size_t pending = client_out_.size();
  if (pending > 0 && phase_ == Phase::kClosing && !closing_corked_) {
    // The connection's last bytes: the FIN close() sends right after joins their segment.
    net::set_cork(client_->fd(), true);
    closing_corked_ = true;
  }
  if (pending > 0 && !write_stream(*client_, client_out_)) {
    close(true);
    return false;
  }
  listener_->counters.bytes_out += pending - client_out_.size();
  if (client_out_.empty() && phase_ == Phase::kClosing) {
    close(false);  // closing sends what the cork holds, with close_notify and FIN
    return false;
  }
  if (corked_ && pending > 0) {
    corked_ = false;
    net::set_cork(client_->fd(), false);  // the ticket and this response leave together
  }
  // Room again for the upstream's bytes: read what it has been holding back.
  if (upstream_paused_ && phase_ == Phase::kExchange && client_out_.size() < kMaxBuffered) {
    upstream_paused_ = false;
    on_upstream_io(EPOLLIN);
    return phase_ != Phase::kClosed;
  }
  return true;
}

// ---- upstream side ----

void HttpSession::connect_upstream() {
  const snapshot::Listener& cfg = *state_->config;
  const snapshot::HttpTarget& target = cfg.targets[target_];
  HttpListenerState::Target& ts = state_->targets[target_];
  backend_drain_ms_ = kNoDeadline;  // a new backend: the old one's deadline is not its
  while (attempts_ < cfg.connect_attempts) {
    uint32_t index = pick_backend(target, ts, sticky_backend_, &tried_, peer_);
    if (index == balance::kNoHost) break;
    ++attempts_;
    tried_.set(index);
    const snapshot::Backend& backend = target.group->backends[index];
    backend_ = index;
    ++ts.active[index];
    base::BackendCounters& counters = *ts.backend_counters[index];
    ++counters.active;
    // A pooled connection first (only for a request that can be sent again if it turns out to
    // be dead); else a new one.
    // The connection this client's previous request used, if it goes to the same backend: no
    // epoll change at all. Otherwise it goes to the pool for others.
    if (parked_ && parked_->backend_id() == backend.id && !force_new_connection_) {
      upstream_ = parked_;
      parked_ = nullptr;
      upstream_hangup_ = false;
      upstream_reused_ = true;
      on_upstream_connected();
      return;
    }
    unpark();
    UpstreamConn* pooled = force_new_connection_ ? nullptr : ctx_.pool.take(backend.id, this);
    force_new_connection_ = false;
    if (pooled) {
      upstream_ = pooled;
      upstream_hangup_ = false;
      upstream_reused_ = true;
      on_upstream_connected();
      return;
    }
    upstream_reused_ = false;
    ++counters.connections;
    bool in_progress = false;
    auto fresh = net::connect_tcp(backend.address, &in_progress);
    if (!fresh.ok()) {
      --ts.active[index];
      --counters.active;
      ++counters.connect_failures;
      backend_ = UINT32_MAX;
      ++ctx_.counters.retries;
      if (ctx_.on_backend_failure) ctx_.on_backend_failure(cfg, backend, fresh.error().sys_errno);
      continue;
    }
    net::set_nodelay(fresh->get());
    upstream_ = ctx_.pool.adopt(std::move(*fresh), backend.id, kEvents, this);
    upstream_hangup_ = false;
    if (!upstream_) {
      release_upstream(false);
      continue;
    }
    if (!in_progress) {
      on_upstream_connected();
      return;
    }
    phase_ = Phase::kConnecting;
    arm_timer();
    return;
  }
  ++listener_->counters.dropped;  // the answer below closes the connection
  if (attempts_ == 0) {
    ++ctx_.counters.no_backend;
    answer_error(503, "no backend available");
  } else {
    ++ctx_.counters.upstream_errors;
    answer_error(502, "no backend could be reached");
  }
}

void HttpSession::upstream_failed(int err, const char* what) {
  const snapshot::Listener& cfg = *state_->config;
  const snapshot::Backend& backend = cfg.targets[target_].group->backends[backend_];
  FLOG_DEBUG("{} {}: backend {} {}: {}", cfg.lb_name, cfg.id, backend.name, what,
             std::strerror(err));
  bool reused = upstream_reused_;
  if (phase_ == Phase::kConnecting) {
    ++state_->targets[target_].backend_counters[backend_]->connect_failures;
  }
  if (!reused && ctx_.on_backend_failure) ctx_.on_backend_failure(cfg, backend, err);
  release_upstream(false);
  upstream_reused_ = false;
  // Try again (within the attempt budget) when provably nothing reached a backend (a failed
  // connect), or for a GET/HEAD without body when no byte of an answer came back (a pooled
  // connection that turned out dead, a backend that died with the request in flight). Anything
  // else may have had effects: never replayed.
  bool replayable = (method_ == http::Method::kGet || method_ == http::Method::kHead) &&
                    request_framing_ == http::Framing::kNone;
  if (!response_started_ && response_parser_.idle() && (!request_sent_any_ || replayable)) {
    ++ctx_.counters.retries;
    if (reused) {
      // A stale pooled connection says nothing about the backend: it may be tried again, on a
      // new connection, without using up an attempt.
      tried_.reset(state_->config->targets[target_].group->backends.size());
      attempts_ = attempts_ > 0 ? attempts_ - 1 : 0;
      force_new_connection_ = true;
    }
    upstream_out_ = request_head_;
    request_sent_any_ = false;
    connect_upstream();
    return;
  }
  ++ctx_.counters.upstream_errors;
  answer_error(502, what);
}

void HttpSession::on_upstream_connected() {
  phase_ = Phase::kExchange;
  upstream_sent_ns_ = base::monotonic_ns();
  response_parser_.expect(method_, upgrade_requested_);
  arm_timer();
  if (!flush_upstream()) return;
  process_client_input();  // body bytes that waited for the connection
}

bool HttpSession::flush_upstream() {
  if (upstream_out_.empty() || !upstream_) return true;
  size_t before = upstream_out_.size();
  if (!write_from(upstream_->fd(), upstream_out_)) {
    upstream_failed(errno, "send");
    return false;
  }
  if (upstream_out_.size() < before) request_sent_any_ = true;
  return true;
}

void HttpSession::on_upstream_io(uint32_t events) {
  if (phase_ == Phase::kClosed) return;
  if (!upstream_) {
    if (parked_) check_parked();
    return;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) upstream_hangup_ = true;
  if (phase_ == Phase::kTunnel) {
    relay_tunnel();
    return;
  }
  if (phase_ == Phase::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    if (int err = net::socket_error(upstream_->fd()); err != 0) {
      upstream_failed(err, "connect");
      return;
    }
    sockaddr_storage ss;  // a stale event of an earlier attempt proves nothing
    socklen_t len = sizeof ss;
    if (::getpeername(upstream_->fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
    on_upstream_connected();
    return;
  }
  if (phase_ != Phase::kExchange) return;
  if (events & EPOLLOUT) {
    if (!flush_upstream()) return;
    if (!request_body_done_) process_client_input();
    if (phase_ != Phase::kExchange) return;
  }
  ReadResult r = kDrained;
  for (;;) {
    if (client_out_.size() >= kMaxBuffered) {
      upstream_paused_ = true;  // the client is slow: leave the rest in the socket for now
      return;
    }
    if (upstream_in_used_ > 0 && upstream_in_used_ == upstream_in_.size()) {
      upstream_in_.clear();
      upstream_in_used_ = 0;
    }
    size_t had = upstream_in_.size();
    r = read_into(upstream_->fd(), upstream_in_, upstream_in_used_ + kMaxBuffered,
                  upstream_hangup_);
    if (upstream_in_.size() > had) last_activity_ms_ = ctx_.loop.now_ms();
    if (r == kFailed) {
      upstream_failed(errno, "recv");
      return;
    }
    process_upstream_input();
    if (r != kFull || phase_ != Phase::kExchange || !upstream_) break;
  }
  if (r == kEof && phase_ == Phase::kExchange && upstream_) {
    // The upstream closed: the end of a body that runs until close, or a failure.
    if (response_parser_.idle() && !response_started_) {
      upstream_failed(ECONNRESET, "closed before answering");
      return;
    }
    http::Step step = response_parser_.finish();
    if (step == http::Step::kDone) {
      // The end of a body that ran until close: re-framed for the client, it needs its end too.
      finish_gzip();
      if (response_framing_ == http::Framing::kChunked) {
        http::write_last_chunk({}, &client_out_);
      }
      response_done_ = true;
      finish_exchange();
    } else if (!response_started_) {
      ++ctx_.counters.upstream_errors;
      answer_error(502, "truncated response");
    } else {
      close(true);  // visible truncation: never a clean end for a cut body
    }
  }
}

void HttpSession::process_upstream_input() {
  while (phase_ == Phase::kExchange) {
    std::string_view data(upstream_in_);
    data.remove_prefix(upstream_in_used_);
    size_t used = 0;
    http::Step step = response_parser_.feed(data, &used);
    upstream_in_used_ += used;
    if (step == http::Step::kNeedMore) break;
    if (step == http::Step::kError) {
      FLOG_DEBUG("{} {}: bad response: {}", state_->config->lb_name, state_->config->id,
                 response_parser_.error().reason);
      ++ctx_.counters.upstream_errors;
      answer_error(502, response_parser_.error().reason);
      return;
    }
    if (step == http::Step::kHead) {
      const http::ResponseHead& head = response_parser_.head();
      http::ResponseWriteOptions options;
      options.client_version_minor = client_minor_;
      options.keep_alive = client_keep_alive_ && !draining_;
      // Sticky sessions: tell the client which backend answered (insert), or prefix the
      // backend's own cookie with its token (server).
      std::vector<http::Header> add;
      std::vector<std::string> rewritten;
      std::vector<std::string_view> remove;
      const snapshot::Listener& cfg = *state_->config;
      if (!head.informational()) {
        bool replace = false;
        sticky_response_cookies(cfg, target_, backend_, sticky_backend_, head.headers, &rewritten,
                                &replace);
        if (replace) remove.push_back("set-cookie");
        for (const std::string& v : rewritten) add.push_back({"Set-Cookie", v});
      }
      // gzip: the length is unknown once compressed (chunked, or until close for HTTP/1.0);
      // a strong ETag no longer describes these bytes.
      http::ResponseHead gzipped;
      const http::ResponseHead* out_head = &head;
      std::string weak_etag;
      if (cfg.gzip && !head.informational() && should_gzip(accept_encoding_, method_, head)) {
        gzip_ = std::make_unique<GzipEncoder>();
        if (gzip_->ok()) {
          gzipped = head;
          gzipped.content_length.reset();
          out_head = &gzipped;
          add.push_back({"Content-Encoding", "gzip"});
          add.push_back({"Vary", "Accept-Encoding"});
          for (const http::Header& hd : head.headers) {
            if (iequals(hd.name, "etag") && hd.value.starts_with("\"")) {
              weak_etag = "W/" + std::string(hd.value);
              remove.push_back("etag");
              add.push_back({"ETag", weak_etag});
            }
          }
        } else {
          gzip_.reset();
        }
      }
      if (!add.empty() || !remove.empty()) options.edits = http::HeaderEdits{remove, add, {}};
      if (!head.informational() || head.status == 101) {
        // The final answer (a 101 is the last one HTTP says about this request).
        int64_t now_ns = base::monotonic_ns();
        if (upstream_sent_ns_ != 0) {
          listener_->http.upstream_response.observe(now_ns - upstream_sent_ns_);
        }
        upstream_sent_ns_ = 0;
        if (logging_) response_head_ns_ = now_ns;
        size_t code_class = std::min<size_t>(head.status / 100, 5);
        ++listener_->http.responses_by_class[code_class];
        if (backend_ != UINT32_MAX) {
          ++state_->targets[target_].backend_counters[backend_]->responses_by_class[code_class];
        }
        if (head.status == 101) timing_ = false;  // a tunnel, not a request with a duration
      }
      if (!head.informational()) {
        response_started_ = true;
        if (logging_) {
          if (backend_ != UINT32_MAX) {
            log_backend_ = state_->config->targets[target_].group->backends[backend_].name;
          }
        }
        last_activity_ms_ = ctx_.loop.now_ms();
        arm_timer();
        response_framing_ = http::response_framing(*out_head, client_minor_);
        keep_client_ = http::response_keeps_client(*out_head, options);
      } else if (head.status == 101) {
        response_started_ = true;
        response_framing_ = http::Framing::kNone;
      }
      size_t before = client_out_.size();
      http::write_response_head(*out_head, options, &client_out_);
      bytes_out_ += client_out_.size() - before;
      continue;
    }
    if (step == http::Step::kBody) {
      std::string_view piece = response_parser_.body();
      if (gzip_) {
        gzip_out_.clear();
        gzip_->write(piece, &gzip_out_);
        piece = gzip_out_;
      }
      size_t before = client_out_.size();
      if (response_framing_ == http::Framing::kChunked) {
        http::write_chunk(piece, &client_out_);
      } else {
        client_out_.append(piece);
      }
      bytes_out_ += client_out_.size() - before;
      continue;
    }
    // kDone
    const http::ResponseHead& head = response_parser_.head();
    if (head.upgrade) {
      // A tunnel from now on: what is left on either side belongs to it.
      phase_ = Phase::kTunnel;
      client_out_.append(upstream_in_, upstream_in_used_);
      upstream_in_.clear();
      upstream_in_used_ = 0;
      upstream_out_.append(client_in_, client_in_used_);
      client_in_.clear();
      client_in_used_ = 0;
      arm_timer();  // no timeout in a tunnel, only a drain deadline
      relay_tunnel();
      return;
    }
    if (head.informational()) continue;  // 100/103: the final response follows
    size_t before = client_out_.size();
    finish_gzip();
    if (response_framing_ == http::Framing::kChunked) {
      http::write_last_chunk(response_parser_.trailers(), &client_out_);
    }
    bytes_out_ += client_out_.size() - before;
    response_done_ = true;
    finish_exchange();
    return;
  }
  flush_client();
}

void HttpSession::finish_exchange() {
  observe_request_done();
  const http::ResponseHead& head = response_parser_.head();
  if (logging_) log_request(head.status);
  bytes_in_ = 0;
  bool reusable = head.keep_alive && !head.body_until_close && request_body_done_ &&
                  upstream_in_used_ == upstream_in_.size() && upstream_out_.empty();
  upstream_in_.clear();
  upstream_in_used_ = 0;
  release_upstream(reusable);
  // A client whose request body was not read to its end cannot be read as HTTP any more.
  if (!request_body_done_) keep_client_ = false;
  state_.reset();
  if (!keep_client_ || draining_) {
    phase_ = Phase::kClosing;
    arm_timer();
    flush_client();
    return;
  }
  phase_ = Phase::kIdle;
  idle_deadline_ms_ = ctx_.loop.now_ms() + listener_->current->config->idle_timeout_ms;
  backend_drain_ms_ = kNoDeadline;  // its backend served this request only
  arm_timer();
  if (!flush_client()) return;
  process_client_input();  // a pipelined request may be waiting
}

void HttpSession::release_upstream(bool reusable) {
  if (state_ && backend_ != UINT32_MAX) {
    auto& active = state_->targets[target_].active;
    if (active[backend_] > 0) --active[backend_];
    --state_->targets[target_].backend_counters[backend_]->active;
  }
  if (upstream_) {
    if (reusable) {
      // Kept by this session for the client's next request (most go to the same backend).
      unpark();
      parked_ = upstream_;
    } else {
      ctx_.pool.close(upstream_);
    }
    upstream_ = nullptr;
  }
  backend_ = UINT32_MAX;
  upstream_out_.clear();
}

void HttpSession::log_request(uint16_t status) {
  logging_ = false;  // once per request
  AccessLog& log = *ctx_.access_log;
  const snapshot::Listener& cfg = state_ ? *state_->config : *listener_->current->config;
  int64_t now = base::monotonic_ns();
  log.begin();
  log.field("lb", cfg.lb_name);
  log.field("listener", cfg.id);
  log.field("client", peer_.to_string());
  log.field("backend", log_backend_.empty() ? std::string_view("-") : log_backend_);
  log.field("method", log_method_);
  log.field("host", log_host_);
  log.field("path", log_path_);
  log.field("status", status);
  log.field("bytes_in", bytes_in_);
  log.field("bytes_out", bytes_out_);
  log.field("duration_us", static_cast<uint64_t>((now - request_start_ns_) / 1000));
  uint64_t upstream_us =
      response_head_ns_ ? static_cast<uint64_t>((response_head_ns_ - request_start_ns_) / 1000) : 0;
  log.field("upstream_us", upstream_us);
  log.field("request_id", log_request_id_);
  log.end();
  bytes_in_ = 0;
}

void HttpSession::observe_request_done() {
  if (!timing_) return;
  timing_ = false;
  listener_->http.request_duration.observe(base::monotonic_ns() - request_start_ns_);
}

void HttpSession::finish_gzip() {
  if (!gzip_) return;
  gzip_out_.clear();
  gzip_->finish(&gzip_out_);
  gzip_.reset();
  if (response_framing_ == http::Framing::kChunked) {
    http::write_chunk(gzip_out_, &client_out_);
  } else {
    client_out_.append(gzip_out_);
  }
}

void HttpSession::unpark() {
  if (parked_) ctx_.pool.put(parked_);
  parked_ = nullptr;
}

void HttpSession::check_parked() {
  // Readiness on a parked connection: the backend closed it, or sent bytes nobody asked for. A
  // spurious wake-up (nothing to read) keeps it.
  if (UpstreamPool::still_idle(*parked_)) return;
  ctx_.pool.close(parked_);
  parked_ = nullptr;
}

void HttpSession::relay_tunnel() {
  // Raw bytes both ways until either side ends; no HTTP any more.
  auto ended = [](ReadResult r) { return r == kEof || r == kFailed; };
  base::ListenerCounters& counters = listener_->counters;
  auto write_client = [&] {
    size_t pending = client_out_.size();
    bool ok = write_stream(*client_, client_out_);
    counters.bytes_out += pending - client_out_.size();
    return ok;
  };
  bool done = false;
  for (int round = 0; round < 64 && !done; ++round) {  // bounded: other sessions get a turn
    size_t had = upstream_out_.size();
    ReadResult from_client = read_stream(*client_, upstream_out_, kMaxBuffered, true);
    counters.bytes_in += upstream_out_.size() - had;
    ReadResult from_upstream = read_into(upstream_->fd(), client_out_, kMaxBuffered, true);
    done = ended(from_client) || ended(from_upstream) ||
           !write_from(upstream_->fd(), upstream_out_) || !write_client();
    if (from_client != kFull && from_upstream != kFull) break;
  }
  if (done) {
    // One side ended: deliver what is buffered as best we can, then close both.
    write_client();
    write_from(upstream_->fd(), upstream_out_);
    close(false);
  }
}

// ---- timers ----

void HttpSession::arm_timer() {
  const snapshot::Listener& cfg = state_ ? *state_->config : *listener_->current->config;
  int64_t now = ctx_.loop.now_ms();
  int64_t at = kNoDeadline;
  switch (phase_) {
    case Phase::kIdle:
      at = idle_deadline_ms_;
      break;
    case Phase::kConnecting:
      at = std::min(now + cfg.connect_timeout_ms, request_deadline_ms_);
      break;
    case Phase::kExchange:
      // Before the response head: the request timeout. Then: that long without a byte.
      at = response_started_ ? last_activity_ms_ + cfg.request_timeout_ms : request_deadline_ms_;
      break;
    case Phase::kClosing:
      timer_.arm_at(now + kClosingGraceMs);
      return;
    case Phase::kTunnel:
      break;
    case Phase::kClosed:
      timer_.cancel();
      return;
  }
  if (!draining_) at = std::min(at, drain_at());  // a configuration change's drain deadline
  if (at == kNoDeadline) {
    timer_.cancel();
  } else {
    timer_.arm_at(at);
  }
}

void HttpSession::on_timer(void* self) {
  auto* s = static_cast<HttpSession*>(self);
  if (!s->draining_ && s->phase_ != Phase::kClosing && s->phase_ != Phase::kClosed &&
      s->ctx_.loop.now_ms() >= s->drain_at()) {
    s->drain_deadline_passed();
    return;
  }
  switch (s->phase_) {
    case Phase::kIdle:
      // Idle keep-alive connection, or a head that did not arrive in time (slow client).
      if (s->request_parser_.idle() && s->client_in_used_ == s->client_in_.size()) {
        s->close(false);
      } else {
        s->answer_error(408, "request head not received in time");
      }
      return;
    case Phase::kConnecting:
      if (s->ctx_.loop.now_ms() >= s->request_deadline_ms_) {
        ++s->ctx_.counters.timeouts;
        s->answer_error(504, "no backend answered in time");
      } else {
        s->upstream_failed(ETIMEDOUT, "connect");
      }
      return;
    case Phase::kExchange:
      if (s->response_started_ &&
          s->ctx_.loop.now_ms() < s->last_activity_ms_ + s->state_->config->request_timeout_ms) {
        s->arm_timer();  // bytes moved since: look again later
        return;
      }
      ++s->ctx_.counters.timeouts;
      if (s->response_started_) {
        s->close(true);  // the body stopped coming: visible truncation
      } else {
        s->answer_error(504, "the backend did not answer in time");
      }
      return;
    case Phase::kClosing:
      s->close(true);
      return;
    case Phase::kTunnel:
    case Phase::kClosed:
      return;
  }
}

}  // namespace fulcrum::l7
