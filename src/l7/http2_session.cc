#include "l7/http2_session.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "base/clock.h"
#include "base/log.h"
#include "http/serialize.h"
#include "l7/forwarding.h"

namespace fulcrum::l7 {

namespace {
constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
constexpr size_t kReadChunk = 16 * 1024;
// Response bytes of one stream waiting for the client's window above which its upstream is not
// read; reading resumes below half of it.
constexpr size_t kMaxQueued = 256 * 1024;
// Request body bytes of one stream not yet written upstream above which the client's window is
// not given back.
constexpr size_t kMaxUpstreamOut = 64 * 1024;
// Frames produced per write round.
constexpr size_t kMaxClientOut = 256 * 1024;
// Finished streams kept for reuse per connection, and the largest buffer such a spare keeps.
constexpr size_t kSpareStreams = 16;
constexpr size_t kMaxSpareBuffer = 16 * 1024;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

}  // namespace

struct Http2Session::H2Stream final : UpstreamOwner {
  enum class Phase : uint8_t { kConnecting, kExchange, kDone };
  void on_upstream_io(uint32_t events) override {
    if (!gone) session->on_upstream_io(*this, events);
  }
  // As new, for the next stream; what the buffers hold allocated is kept (bounded).
  void reuse() {
    session = nullptr;
    id = 0;
    phase = Phase::kConnecting;
    gone = false;
    request.clear();
    fields.clear();
    edits.clear();
    state.reset();
    target = 0;
    backend = UINT32_MAX;
    attempts = 0;
    method = http::Method::kGet;
    framing = http::Framing::kNone;
    base::clear_bounded(&request_head, kMaxSpareBuffer);
    base::clear_bounded(&upstream_out, kMaxSpareBuffer);
    base::clear_bounded(&upstream_in, kMaxSpareBuffer);
    upstream_in_used = 0;
    parser.reset();
    upstream = nullptr;
    unacked = 0;
    request_done = request_sent_any = response_started = reused = force_new = false;
    hangup = paused = false;
    timing = true;
    request_start_ns = upstream_sent_ns = response_head_ns = 0;
    bytes_in = bytes_out = 0;
    log_backend.clear();
    request_deadline_ms = last_activity_ms = 0;
  }

  Http2Session* session = nullptr;
  int32_t id = 0;
  Phase phase = Phase::kConnecting;
  bool gone = false;  // forgotten: waiting for deletion
  http::H2Request request;
  std::vector<http::Header> fields;
  ForwardEdits edits;
  std::shared_ptr<HttpListenerState> state;
  size_t target = 0;
  uint32_t backend = UINT32_MAX;
  balance::HostMask tried;
  uint32_t attempts = 0;
  http::Method method = http::Method::kGet;
  http::Framing framing = http::Framing::kNone;
  std::string request_head;  // kept until the response head (for a retry)
  std::string upstream_out;
  std::string upstream_in;
  size_t upstream_in_used = 0;
  http::ResponseParser parser;
  UpstreamConn* upstream = nullptr;
  size_t unacked = 0;  // request body bytes received, not yet credited to the client
  bool request_done = false;
  bool request_sent_any = false;
  bool response_started = false;
  bool reused = false;
  bool force_new = false;
  bool hangup = false;
  bool paused = false;
  bool timing = true;
  int64_t request_start_ns = 0;
  int64_t upstream_sent_ns = 0;
  int64_t response_head_ns = 0;
  uint64_t bytes_in = 0;   // request body bytes received
  uint64_t bytes_out = 0;  // response body bytes sent on
  std::string log_backend;
  int64_t request_deadline_ms = 0;
  int64_t last_activity_ms = 0;
};

Http2Session::Http2Session(HttpContext& ctx, std::shared_ptr<HttpListenerRuntime> listener,
                           std::unique_ptr<net::Stream> client, const net::SocketAddress& peer,
                           const net::SocketAddress& local)
    : ctx_(ctx),
      listener_(std::move(listener)),
      peer_(peer),
      local_(local),
      peer_ip_(peer.ip_string()),
      client_(std::move(client)),
      timer_(ctx.loop, &Http2Session::on_timer, this),
      codec_(this, http::H2Limits{}),
      spare_streams_(kSpareStreams) {
  side_.session = this;
  ctx_.sessions.add(this);
  ++listener_->counters.active;
}

Http2Session::~Http2Session() = default;

void Http2Session::on_batch_end() {
  pump();
  if (closed_) return;
  for (std::unique_ptr<H2Stream>& s : retired_) spare_streams_.give(std::move(s));
  retired_.clear();
}

Http2Session::H2Stream* Http2Session::new_stream() {
  H2Stream* s = spare_streams_.take().release();
  s->reuse();
  return s;
}

void Http2Session::Side::on_io(uint32_t events) {
  session->on_client_io(events);
}

void Http2Session::start(HttpSession::ClientInfo info) {
  refused_ = info.refused;
  client_tls_ = info.tls;
  cert_subject_ = std::move(info.cert_subject);
  if (!ctx_.loop.modify(client_->fd(), kEvents, &side_).ok()) {
    close(true);
    return;
  }
  idle_deadline_ms_ = ctx_.loop.now_ms() + listener_->current->config->idle_timeout_ms;
  last_client_io_ms_ = ctx_.loop.now_ms();
  if (listener_->removed_ms >= 0) {  // removed during this client's TLS handshake
    listener_drain_ms_ = listener_->removed_ms + listener_->current->config->drain_timeout_ms;
  }
  on_client_io(EPOLLIN | EPOLLOUT);
}

void Http2Session::drain() {
  if (closed_ || draining_) return;
  draining_ = true;
  codec_.shutdown();
  schedule();
}

void Http2Session::apply_generation(int64_t now_ms) {
  if (closed_ || draining_) return;
  const snapshot::Listener& current = *listener_->current->config;
  bool listener_alive = listener_->removed_ms < 0;
  bool left = false;
  if (listener_alive) {
    for (auto& [id, s] : streams_) {
      if (s->phase == H2Stream::Phase::kExchange && s->state && s->backend != UINT32_MAX &&
          backend_left(current, *s->state->config->targets[s->target].group, s->backend)) {
        left = true;
        break;
      }
    }
  }
  if (!listener_alive) {
    listener_drain_ms_ = std::min(listener_drain_ms_, now_ms + current.drain_timeout_ms);
  } else if (left) {
    backend_drain_ms_ = std::min(backend_drain_ms_, now_ms + current.drain_timeout_ms);
  } else {
    backend_drain_ms_ = HttpSession::kNoDeadline;  // an early wake-up of the timer is harmless
    return;
  }
  int64_t at = drain_at();
  if (!timer_.armed() || at < timer_.deadline_ms()) timer_.arm_at(at);
}

void Http2Session::close(bool reset) {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  std::vector<H2Stream*> all;
  for (auto& [id, s] : streams_) all.push_back(s);
  for (H2Stream* s : all) forget(*s);
  retired_.clear();  // nothing runs on them any more: the session ends
  if (reset) {
    client_->close_with_reset();
  } else {
    client_->shutdown();
    client_->close();
  }
  --listener_->counters.active;
  ctx_.sessions.remove(this);
  ctx_.loop.defer_delete(std::unique_ptr<net::Deferred>(this));
}

Http2Session::H2Stream* Http2Session::find(int32_t id) {
  H2Stream** s = streams_.find(id);
  return s ? *s : nullptr;
}

// ---- client side ----

void Http2Session::on_client_io(uint32_t events) {
  if (closed_) return;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hangup_ = true;
  char chunk[kReadChunk];
  bool eof = false;
  for (;;) {
    net::IoResult r = client_->read(chunk, sizeof chunk);
    if (r.status == net::IoStatus::kOk) {
      listener_->counters.bytes_in += r.bytes;
      last_client_io_ms_ = ctx_.loop.now_ms();
      if (!codec_.feed(std::string_view(chunk, r.bytes))) {
        // A connection error: nghttp2 queued its GOAWAY; send it, then close.
        pump();
        if (!closed_) close(false);
        return;
      }
      if (closed_) return;
      if (!r.more && !hangup_) break;
      continue;
    }
    if (r.status == net::IoStatus::kBlocked) break;
    eof = true;
    break;
  }
  if (eof) {
    close(hangup_);
    return;
  }
  schedule();
}

void Http2Session::pump() {
  if (closed_ || pumping_) return;
  pumping_ = true;
  for (int round = 0; round < 16; ++round) {
    bool progress = false;
    // Frames out, while the socket takes them.
    for (;;) {
      if (client_out_.size() < kMaxClientOut && !codec_.produce(&client_out_, kMaxClientOut)) {
        pumping_ = false;
        close(true);
        return;
      }
      if (client_out_.empty()) break;
      size_t done = 0;
      bool failed = false;
      while (done < client_out_.size()) {
        net::IoResult r = client_->write(client_out_.data() + done, client_out_.size() - done);
        if (r.status == net::IoStatus::kOk) {
          done += r.bytes;
          continue;
        }
        failed = r.status != net::IoStatus::kBlocked;
        break;
      }
      listener_->counters.bytes_out += done;
      if (done > 0) last_client_io_ms_ = ctx_.loop.now_ms();
      client_out_.erase(0, done);
      if (failed) {
        pumping_ = false;
        close(true);
        return;
      }
      if (!client_out_.empty()) break;  // the next EPOLLOUT
    }
    if (closed_) break;
    // Upstreams held back for the client's window: read on where it opened up again.
    std::vector<H2Stream*> resume;
    for (auto& [id, s] : streams_) {
      if (s->paused && codec_.queued(id) < kMaxQueued / 2) resume.push_back(s);
    }
    for (H2Stream* s : resume) {
      if (s->gone) continue;
      s->paused = false;
      on_upstream_io(*s, EPOLLIN);
      progress = true;
    }
    if (!progress || closed_) break;
  }
  pumping_ = false;
  if (closed_) return;
  if (!codec_.wants_read() && !codec_.wants_write() && client_out_.empty()) {
    close(false);  // GOAWAY exchanged and no stream left, or a connection error sent
    return;
  }
  if (draining_ && streams_.empty() && codec_.open_streams() == 0 && client_out_.empty()) {
    close(false);
    return;
  }
  arm_timer();
}

// ---- requests ----

void Http2Session::on_h2_request(int32_t id, http::H2Request& request) {
  ++ctx_.counters.requests;
  H2Stream* s = new_stream();
  s->session = this;
  s->id = id;
  std::swap(s->request, request);  // the codec's buffers and ours trade places
  s->request_start_ns = base::monotonic_ns();
  s->state = listener_->current;
  streams_[id] = s;
  const snapshot::Listener& cfg = *s->state->config;
  http::H2Request& r = s->request;
  s->method = http::method_from_text(r.method);
  s->request_done = r.end_stream;
  s->request_deadline_ms = ctx_.loop.now_ms() + cfg.request_timeout_ms;
  if (refused_) {
    answer(*s, 403, "access denied by the listener's access control list");
    return;
  }
  if (cfg.redirect_https_port != 0) {
    answer(*s, 301, "", "https://" + r.authority + r.path);  // already https: not expected
    return;
  }
  s->target = route_request(cfg, r.authority, r.path);
  const snapshot::HttpTarget& target = cfg.targets[s->target];
  if (!target.redirect.empty()) {
    answer(*s, 302, "", target.redirect);
    return;
  }
  s->fields.reserve(r.fields.size());
  for (const auto& [name, value] : r.fields) s->fields.push_back({name, value});
  http::RequestHead head;
  head.method = s->method;
  head.method_text = r.method;
  head.target = r.path;
  head.path = r.path;
  head.version_minor = 1;
  head.headers = s->fields;
  head.host = r.authority;
  head.content_length = r.content_length;
  // A body of unknown length (no Content-Length, no END_STREAM on the head) goes chunked.
  head.chunked = !r.content_length && !r.end_stream;
  s->framing = http::request_framing(head);
  ClientFacts facts{peer_ip_, client_tls_, cert_subject_, reinterpret_cast<uintptr_t>(s)};
  forward_edits(cfg, s->target, s->fields, facts, &s->edits);
  http::write_request_head(head, http::HeaderEdits{s->edits.remove, s->edits.add, {}},
                           &s->request_head);
  s->upstream_out = s->request_head;
  s->tried.reset(target.group->backends.size());
  connect_upstream(*s);
}

void Http2Session::on_h2_data(int32_t id, std::string_view data) {
  H2Stream* s = find(id);
  if (!s || s->phase == H2Stream::Phase::kDone) {
    codec_.consumed(id, data.size());  // answered already: the rest of the body is dropped
    return;
  }
  s->unacked += data.size();
  s->bytes_in += data.size();
  if (s->framing == http::Framing::kChunked) {
    http::write_chunk(data, &s->upstream_out);
  } else {
    s->upstream_out.append(data);
  }
  if (s->phase == H2Stream::Phase::kExchange) flush_upstream(*s);
}

void Http2Session::on_h2_request_end(int32_t id) {
  H2Stream* s = find(id);
  if (!s || s->request_done) return;
  s->request_done = true;
  if (s->phase == H2Stream::Phase::kDone) return;
  if (s->framing == http::Framing::kChunked) http::write_last_chunk({}, &s->upstream_out);
  if (s->phase == H2Stream::Phase::kExchange) flush_upstream(*s);
}

void Http2Session::on_h2_stream_closed(int32_t id, uint32_t) {
  if (H2Stream* s = find(id)) forget(*s);
}

void Http2Session::forget(H2Stream& s) {
  if (s.gone) return;
  s.gone = true;
  // Reset by the client or by us before the response was complete: that upstream connection
  // is in the middle of an exchange.
  release_upstream(s, false);
  if (s.unacked > 0 && !closed_) codec_.consumed(s.id, s.unacked);
  streams_.erase(s.id);
  retired_.emplace_back(&s);
}

void Http2Session::answer(H2Stream& s, uint16_t status, std::string_view detail,
                          std::string_view location) {
  if (s.response_started) {
    codec_.reset(s.id, http::kH2InternalError);
    release_upstream(s, false);
    s.phase = H2Stream::Phase::kDone;
    return;
  }
  release_upstream(s, false);
  std::string body;
  if (location.empty()) {
    body = std::to_string(status) + " " + std::string(http::reason_phrase(status)) + "\n" +
           std::string(detail) + "\n";
  }
  std::string length = std::to_string(body.size());
  std::vector<http::Header> fields;
  if (!location.empty()) {
    fields.push_back({"location", location});
  } else {
    fields.push_back({"content-type", "text/plain"});
  }
  fields.push_back({"content-length", length});
  bool head_only = s.method == http::Method::kHead || body.empty();
  codec_.respond(s.id, status, fields, head_only);
  if (!head_only) codec_.send_data(s.id, body, true);
  ++listener_->http.responses_by_class[std::min<size_t>(status / 100, 5)];
  s.response_started = true;
  s.phase = H2Stream::Phase::kDone;
  s.bytes_out += body.size();
  observe_done(s, status);
  if (s.unacked > 0) {
    codec_.consumed(s.id, s.unacked);
    s.unacked = 0;
  }
}

void Http2Session::observe_done(H2Stream& s, uint16_t status) {
  if (!s.timing) return;
  s.timing = false;
  int64_t now = base::monotonic_ns();
  listener_->http.request_duration.observe(now - s.request_start_ns);
  if (!ctx_.access_log || !s.state->config->access_log) return;
  const snapshot::Listener& cfg = *s.state->config;
  AccessLog& log = *ctx_.access_log;
  log.begin();
  log.field("lb", cfg.lb_name);
  log.field("listener", cfg.id);
  log.field("client", peer_.to_string());
  log.field("backend", s.log_backend.empty() ? std::string_view("-") : s.log_backend);
  log.field("method", s.request.method);
  log.field("host", s.request.authority);
  log.field("path", s.request.path);
  log.field("status", status);
  log.field("bytes_in", s.bytes_in);
  log.field("bytes_out", s.bytes_out);
  log.field("duration_us", static_cast<uint64_t>((now - s.request_start_ns) / 1000));
  uint64_t upstream_us =
      s.response_head_ns ? static_cast<uint64_t>((s.response_head_ns - s.request_start_ns) / 1000)
                         : 0;
  log.field("upstream_us", upstream_us);
  log.field("request_id", s.edits.request_id.empty() ? std::string_view("-")
                                                     : std::string_view(s.edits.request_id));
  log.end();
}

// ---- upstream side ----

void Http2Session::connect_upstream(H2Stream& s) {
  const snapshot::Listener& cfg = *s.state->config;
  const snapshot::HttpTarget& target = cfg.targets[s.target];
  HttpListenerState::Target& ts = s.state->targets[s.target];
  while (s.attempts < cfg.connect_attempts) {
    uint32_t index = pick_backend(target, ts, s.edits.sticky_backend, &s.tried, peer_);
    if (index == balance::kNoHost) break;
    ++s.attempts;
    s.tried.set(index);
    const snapshot::Backend& backend = target.group->backends[index];
    s.backend = index;
    ++ts.active[index];
    base::BackendCounters& counters = *ts.backend_counters[index];
    ++counters.active;
    UpstreamConn* pooled = s.force_new ? nullptr : ctx_.pool.take(backend.id, &s);
    s.force_new = false;
    s.hangup = false;
    if (pooled) {
      s.upstream = pooled;
      s.reused = true;
      on_upstream_connected(s);
      return;
    }
    s.reused = false;
    ++counters.connections;
    bool in_progress = false;
    auto fresh = net::connect_tcp(backend.address, &in_progress);
    if (!fresh.ok()) {
      --ts.active[index];
      --counters.active;
      ++counters.connect_failures;
      s.backend = UINT32_MAX;
      ++ctx_.counters.retries;
      if (ctx_.on_backend_failure) ctx_.on_backend_failure(cfg, backend, fresh.error().sys_errno);
      continue;
    }
    net::set_nodelay(fresh->get());
    s.upstream = ctx_.pool.adopt(std::move(*fresh), backend.id, kEvents, &s);
    if (!s.upstream) {
      release_upstream(s, false);
      continue;
    }
    if (!in_progress) {
      on_upstream_connected(s);
      return;
    }
    s.phase = H2Stream::Phase::kConnecting;
    s.last_activity_ms = ctx_.loop.now_ms();  // the connect's own timeout counts from here
    return;
  }
  if (s.attempts == 0) {
    ++ctx_.counters.no_backend;
    answer(s, 503, "no backend available");
  } else {
    ++ctx_.counters.upstream_errors;
    answer(s, 502, "no backend could be reached");
  }
}

void Http2Session::on_upstream_connected(H2Stream& s) {
  s.phase = H2Stream::Phase::kExchange;
  s.upstream_sent_ns = base::monotonic_ns();
  s.parser.expect(s.method, false);
  flush_upstream(s);
}

bool Http2Session::flush_upstream(H2Stream& s) {
  if (!s.upstream) return true;
  size_t done = 0;
  while (done < s.upstream_out.size()) {
    ssize_t n = ::send(s.upstream->fd(), s.upstream_out.data() + done, s.upstream_out.size() - done,
                       MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    upstream_failed(s, errno, "send");
    return false;
  }
  if (done > 0) s.request_sent_any = true;
  s.upstream_out.erase(0, done);
  // The body moved on: the client may send more.
  if (s.unacked > 0 && s.upstream_out.size() < kMaxUpstreamOut) {
    codec_.consumed(s.id, s.unacked);
    s.unacked = 0;
  }
  return true;
}

void Http2Session::on_upstream_io(H2Stream& s, uint32_t events) {
  if (closed_ || s.gone || !s.upstream) return;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s.hangup = true;
  if (s.phase == H2Stream::Phase::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    if (int err = net::socket_error(s.upstream->fd()); err != 0) {
      upstream_failed(s, err, "connect");
      schedule();
      return;
    }
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (::getpeername(s.upstream->fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
    on_upstream_connected(s);
    schedule();
    return;
  }
  if (s.phase != H2Stream::Phase::kExchange) return;
  if (events & EPOLLOUT) {
    if (!flush_upstream(s)) {
      schedule();
      return;
    }
  }
  char chunk[kReadChunk];
  bool eof = false;
  while (!s.gone && s.phase == H2Stream::Phase::kExchange && s.upstream) {
    if (codec_.queued(s.id) >= kMaxQueued) {
      s.paused = true;  // the client's window is closed: leave the rest in the socket
      break;
    }
    ssize_t n = ::recv(s.upstream->fd(), chunk, sizeof chunk, 0);
    if (n > 0) {
      s.last_activity_ms = ctx_.loop.now_ms();
      if (s.upstream_in_used == s.upstream_in.size()) {
        s.upstream_in.clear();
        s.upstream_in_used = 0;
      }
      s.upstream_in.append(chunk, static_cast<size_t>(n));
      process_upstream_input(s);
      if (static_cast<size_t>(n) < sizeof chunk && !s.hangup) break;
      continue;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    upstream_failed(s, errno, "recv");
    break;
  }
  if (eof && !s.gone && s.phase == H2Stream::Phase::kExchange && s.upstream) {
    if (s.parser.idle() && !s.response_started) {
      upstream_failed(s, ECONNRESET, "closed before answering");
    } else if (s.parser.finish() == http::Step::kDone) {
      codec_.send_data(s.id, {}, true);
      response_done(s);
    } else {
      ++ctx_.counters.upstream_errors;
      answer(s, 502, "truncated response");
    }
  }
  schedule();
}

void Http2Session::process_upstream_input(H2Stream& s) {
  while (s.phase == H2Stream::Phase::kExchange) {
    std::string_view data(s.upstream_in);
    data.remove_prefix(s.upstream_in_used);
    size_t used = 0;
    http::Step step = s.parser.feed(data, &used);
    s.upstream_in_used += used;
    if (step == http::Step::kNeedMore) return;
    if (step == http::Step::kError) {
      ++ctx_.counters.upstream_errors;
      answer(s, 502, s.parser.error().reason);
      return;
    }
    if (step == http::Step::kHead) {
      const http::ResponseHead& head = s.parser.head();
      if (head.informational()) continue;  // 100/103: the final response follows
      const snapshot::Listener& cfg = *s.state->config;
      std::vector<std::string>& set_cookies = set_cookies_;
      set_cookies.clear();
      bool replace = false;
      sticky_response_cookies(cfg, s.target, s.backend, s.edits.sticky_backend, head.headers,
                              &set_cookies, &replace);
      std::vector<http::Header>& fields = response_fields_;
      fields.clear();
      for (const http::Header& h : head.headers) {
        if (http::is_hop_by_hop(h.name) || iequals(h.name, "content-length")) continue;
        if (replace && iequals(h.name, "set-cookie")) continue;
        fields.push_back(h);
      }
      char length_text[24];
      std::string_view length;
      if (head.content_length) {
        auto end =
            std::to_chars(length_text, length_text + sizeof length_text, *head.content_length).ptr;
        length = std::string_view(length_text, static_cast<size_t>(end - length_text));
        fields.push_back({"content-length", length});
      }
      for (const std::string& c : set_cookies) fields.push_back({"set-cookie", c});
      int64_t now_ns = base::monotonic_ns();
      if (s.upstream_sent_ns != 0) {
        listener_->http.upstream_response.observe(now_ns - s.upstream_sent_ns);
      }
      size_t code_class = std::min<size_t>(head.status / 100, 5);
      ++listener_->http.responses_by_class[code_class];
      if (s.backend != UINT32_MAX) {
        ++s.state->targets[s.target].backend_counters[s.backend]->responses_by_class[code_class];
      }
      s.response_started = true;
      s.response_head_ns = now_ns;
      if (s.backend != UINT32_MAX)
        s.log_backend = cfg.targets[s.target].group->backends[s.backend].name;
      s.last_activity_ms = ctx_.loop.now_ms();
      codec_.respond(s.id, head.status, fields, head.no_body);
      continue;
    }
    if (step == http::Step::kBody) {
      s.bytes_out += s.parser.body().size();
      codec_.send_data(s.id, s.parser.body(), false);
      continue;
    }
    // kDone
    if (!s.parser.head().no_body) codec_.send_data(s.id, {}, true);
    response_done(s);
    return;
  }
}

void Http2Session::response_done(H2Stream& s) {
  const http::ResponseHead& head = s.parser.head();
  observe_done(s, head.status);
  bool reusable = head.keep_alive && !head.body_until_close && s.request_done &&
                  s.upstream_in_used == s.upstream_in.size() && s.upstream_out.empty();
  release_upstream(s, reusable);
  s.phase = H2Stream::Phase::kDone;
  if (s.unacked > 0) {
    codec_.consumed(s.id, s.unacked);
    s.unacked = 0;
  }
}

void Http2Session::upstream_failed(H2Stream& s, int err, const char* what) {
  const snapshot::Listener& cfg = *s.state->config;
  const snapshot::Backend& backend = cfg.targets[s.target].group->backends[s.backend];
  FLOG_DEBUG("{} {}: backend {} {}: {}", cfg.lb_name, cfg.id, backend.name, what,
             std::strerror(err));
  bool reused = s.reused;
  if (s.phase == H2Stream::Phase::kConnecting) {
    ++s.state->targets[s.target].backend_counters[s.backend]->connect_failures;
  }
  if (!reused && ctx_.on_backend_failure) ctx_.on_backend_failure(cfg, backend, err);
  release_upstream(s, false);
  s.reused = false;
  // As HttpSession: again only when nothing reached a backend, or for a GET/HEAD without body
  // that got no byte of an answer.
  bool replayable = (s.method == http::Method::kGet || s.method == http::Method::kHead) &&
                    s.framing == http::Framing::kNone;
  if (!s.response_started && s.parser.idle() && (!s.request_sent_any || replayable) &&
      (s.request_done || !s.request_sent_any)) {
    ++ctx_.counters.retries;
    if (reused) {
      s.tried.reset(cfg.targets[s.target].group->backends.size());
      s.attempts = s.attempts > 0 ? s.attempts - 1 : 0;
      s.force_new = true;
    }
    if (!s.request_sent_any || s.framing == http::Framing::kNone) {
      s.upstream_out = s.request_head;
      s.request_sent_any = false;
      s.upstream_in.clear();
      s.upstream_in_used = 0;
      connect_upstream(s);
      return;
    }
  }
  ++ctx_.counters.upstream_errors;
  answer(s, 502, what);
}

void Http2Session::release_upstream(H2Stream& s, bool reusable) {
  if (s.state && s.backend != UINT32_MAX) {
    auto& active = s.state->targets[s.target].active;
    if (active[s.backend] > 0) --active[s.backend];
    --s.state->targets[s.target].backend_counters[s.backend]->active;
  }
  if (s.upstream) {
    if (reusable) {
      ctx_.pool.put(s.upstream);
    } else {
      ctx_.pool.close(s.upstream);
    }
    s.upstream = nullptr;
  }
  s.backend = UINT32_MAX;
  s.paused = false;
}

// ---- timers ----

void Http2Session::arm_timer() {
  if (closed_) return;
  const snapshot::Listener& cfg = *listener_->current->config;
  int64_t now = ctx_.loop.now_ms();
  int64_t deadline = INT64_MAX;
  for (auto& [id, s] : streams_) {
    const snapshot::Listener& scfg = *s->state->config;
    switch (s->phase) {
      case H2Stream::Phase::kConnecting:
        deadline = std::min(deadline, std::min(s->last_activity_ms + scfg.connect_timeout_ms,
                                               s->request_deadline_ms));
        break;
      case H2Stream::Phase::kExchange:
        deadline =
            std::min(deadline, s->response_started ? s->last_activity_ms + scfg.request_timeout_ms
                                                   : s->request_deadline_ms);
        break;
      case H2Stream::Phase::kDone:
        break;
    }
  }
  if (streams_.empty()) {
    deadline = idle_deadline_ms_;
  } else {
    idle_deadline_ms_ = now + cfg.idle_timeout_ms;  // idle from the last stream on
    // Streams answered but waiting for a client that reads nothing: idle_timeout without a
    // byte either way ends the connection.
    if (deadline == INT64_MAX) deadline = last_client_io_ms_ + cfg.idle_timeout_ms;
  }
  if (streams_.empty()) backend_drain_ms_ = HttpSession::kNoDeadline;
  if (!draining_) deadline = std::min(deadline, drain_at());  // a configuration change's
  if (deadline != INT64_MAX) {
    timer_.arm_at(deadline);
  } else {
    timer_.cancel();
  }
}

void Http2Session::on_timer(void* self) {
  auto* h = static_cast<Http2Session*>(self);
  if (h->closed_) return;
  int64_t now = h->ctx_.loop.now_ms();
  if (!h->draining_ && now >= h->drain_at()) {
    // The listener was removed, or a stream's backend left, drain_timeout ago: GOAWAY; the
    // streams in flight finish, then the connection closes.
    h->listener_drain_ms_ = h->backend_drain_ms_ = HttpSession::kNoDeadline;
    h->drain();
    return;
  }
  if (h->streams_.empty()) {
    if (now >= h->idle_deadline_ms_) {
      h->codec_.terminate(http::kH2NoError);  // idle: GOAWAY, then close
      h->pump();
      if (!h->closed_) h->close(false);
      return;
    }
    h->schedule();
    return;
  }
  bool waiting = true;  // every stream answered, only the client's reading is awaited
  for (auto& [id, s] : h->streams_) waiting = waiting && s->phase == H2Stream::Phase::kDone;
  if (waiting && now >= h->last_client_io_ms_ + h->listener_->current->config->idle_timeout_ms) {
    h->close(true);
    return;
  }
  std::vector<H2Stream*> all;
  for (auto& [id, s] : h->streams_) all.push_back(s);
  for (H2Stream* s : all) {
    if (s->gone) continue;
    const snapshot::Listener& cfg = *s->state->config;
    if (s->phase == H2Stream::Phase::kConnecting) {
      if (now >= s->request_deadline_ms) {
        ++h->ctx_.counters.timeouts;
        h->answer(*s, 504, "no backend answered in time");
      } else if (s->upstream && now >= s->last_activity_ms + cfg.connect_timeout_ms) {
        h->upstream_failed(*s, ETIMEDOUT, "connect");
      }
    } else if (s->phase == H2Stream::Phase::kExchange) {
      int64_t due = s->response_started ? s->last_activity_ms + cfg.request_timeout_ms
                                        : s->request_deadline_ms;
      if (now >= due) {
        ++h->ctx_.counters.timeouts;
        h->answer(*s, 504, "the backend did not answer in time");
      }
    }
  }
  h->schedule();
}

}  // namespace fulcrum::l7
