#include "server/worker.h"

#include <pthread.h>

#include <cstring>

#include "base/log.h"
#include "l4/tcp_listener.h"
#include "l4/tcp_session.h"
#include "l4/udp_listener.h"
#include "l7/http2_session.h"
#include "l7/http_listener.h"
#include "l7/http_session.h"
#include "l7/tls_handshake.h"

namespace fulcrum::server {

namespace {
constexpr int64_t kDrainTickMs = 100;  // how often a draining worker looks at its connections
// Passive health reports: at most one per backend and listener per second from each worker (the
// first one ejects; the next snapshot stops the traffic that would report again).
constexpr int64_t kReportIntervalMs = 1000;
constexpr size_t kMaxReportKeys = 4096;
}  // namespace

// HTTP and HTTPS listeners are both l7::HttpListener (HTTPS adds the TLS handshake).
static bool is_http(const snapshot::Listener& l) {
  return l.protocol == snapshot::Protocol::kHttp || l.protocol == snapshot::Protocol::kHttps;
}

std::string listener_key(const snapshot::Listener& l) {
  const char* transport = l.protocol == snapshot::Protocol::kUdp ? "udp" : "tcp";
  return std::string(transport) + " " + l.bind.to_string();
}

base::Result<std::unique_ptr<Worker>> Worker::create(uint32_t index, FailureReport report,
                                                     AccessSubmit access) {
  auto loop = net::EventLoop::create();
  if (!loop.ok()) return loop.take_error();
  return std::unique_ptr<Worker>(
      new Worker(index, std::move(*loop), std::move(report), std::move(access)));
}

Worker::Worker(uint32_t index, std::unique_ptr<net::EventLoop> loop, FailureReport report,
               AccessSubmit access)
    : index_(index),
      loop_(std::move(loop)),
      sessions_(std::make_unique<l4::SessionRegistry>()),
      ctx_(*loop_),
      http_ctx_(std::make_unique<l7::HttpContext>(*loop_)),
      udp_ctx_(std::make_unique<l4::UdpContext>(*loop_)),
      report_(std::move(report)) {
  ctx_.sessions = sessions_.get();
  if (access) http_ctx_->access_log = std::make_unique<l7::AccessLog>(*loop_, std::move(access));
  if (report_) {
    ctx_.on_backend_failure = [this](const snapshot::Listener& l, const snapshot::Backend& b,
                                     int error) { on_backend_failure(l, b, error); };
    http_ctx_->on_backend_failure = ctx_.on_backend_failure;
    udp_ctx_->on_backend_failure = ctx_.on_backend_failure;
  }
}

void Worker::on_backend_failure(const snapshot::Listener& l, const snapshot::Backend& b,
                                int error) {
  if (!l.health_check.enabled) return;  // nothing would bring it back: no passive ejection
  std::string key = snapshot::health_key(l.lb_name, l.id, b.name);
  int64_t now = loop_->now_ms();
  auto [it, fresh] = last_report_ms_.try_emplace(key, now);
  if (!fresh) {
    if (now - it->second < kReportIntervalMs) return;
    it->second = now;
  }
  if (last_report_ms_.size() > kMaxReportKeys) last_report_ms_.clear();  // bound the memory
  report_(std::move(key), error ? std::strerror(error) : "connect failed");
}

Worker::~Worker() {
  join();
  // Order matters: listeners and sessions use the loop's timers.
  listeners_.clear();
  http_listeners_.clear();
  udp_listeners_.clear();
  sessions_->close_all();
  l7::close_handshakes(*http_ctx_);
  http_ctx_->sessions.close_all();
  drain_timer_.reset();
  http_ctx_.reset();  // its pool holds a timer and sockets of the loop
  loop_.reset();
}

void Worker::start() {
  thread_ = std::thread([this] {
    std::string name = "fulcrum-w" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.c_str());
    loop_->run();
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::apply(std::shared_ptr<const snapshot::Snapshot> snap,
                   std::vector<SocketHandoff> sockets, std::function<void(uint64_t)> done) {
  auto handoff = std::make_shared<std::vector<SocketHandoff>>(std::move(sockets));
  loop_->post([this, snap = std::move(snap), handoff, done = std::move(done)]() mutable {
    std::map<std::string, net::UniqueFd> fresh;
    for (auto& h : *handoff) fresh.emplace(h.key, std::move(h.fd));
    // A socket whose listener changes protocol (tcp <-> http on the same address) moves over.
    for (const auto& l : snap->listeners) {
      if (!l->running) continue;
      std::string key = listener_key(*l);
      if (is_http(*l)) {
        if (auto it = listeners_.find(key); it != listeners_.end()) {
          fresh[key] = it->second->release_socket();
          listeners_.erase(it);
        }
      } else if (auto it = http_listeners_.find(key); it != http_listeners_.end()) {
        fresh[key] = it->second->release_socket();
        http_listeners_.erase(it);
      }
    }
    std::map<std::string, std::unique_ptr<l4::TcpListener>> next;
    std::map<std::string, std::unique_ptr<l7::HttpListener>> next_http;
    // UDP flows end with their listener: their replies must leave from its socket.
    std::map<std::string, std::unique_ptr<l4::UdpListener>> next_udp;
    for (const auto& l : snap->listeners) {
      if (!l->running) continue;
      std::string key = listener_key(*l);
      if (is_http(*l)) {
        if (auto it = http_listeners_.find(key); it != http_listeners_.end()) {
          it->second->update(l);
          next_http.emplace(key, std::move(it->second));
          http_listeners_.erase(it);
        } else if (auto f = fresh.find(key); f != fresh.end()) {
          next_http.emplace(
              key, std::make_unique<l7::HttpListener>(*http_ctx_, std::move(f->second), l));
        } else {
          FLOG_ERROR("worker {}: no socket for listener {}", index_, key);
        }
        continue;
      }
      if (l->protocol == snapshot::Protocol::kUdp) {
        if (auto it = udp_listeners_.find(key); it != udp_listeners_.end()) {
          it->second->update(l);
          next_udp.emplace(key, std::move(it->second));
          udp_listeners_.erase(it);
        } else if (auto f = fresh.find(key); f != fresh.end()) {
          next_udp.emplace(key,
                           std::make_unique<l4::UdpListener>(*udp_ctx_, std::move(f->second), l));
        } else {
          FLOG_ERROR("worker {}: no socket for listener {}", index_, key);
        }
        continue;
      }
      if (l->protocol != snapshot::Protocol::kTcp) continue;
      if (auto it = listeners_.find(key); it != listeners_.end()) {
        it->second->update(l);
        next.emplace(key, std::move(it->second));
        listeners_.erase(it);
      } else if (auto f = fresh.find(key); f != fresh.end()) {
        next.emplace(key, std::make_unique<l4::TcpListener>(ctx_, std::move(f->second), l));
      } else {
        FLOG_ERROR("worker {}: no socket for listener {}", index_, key);
      }
    }
    listeners_.swap(next);  // listeners left in `next` are gone: their sockets close now
    next.clear();
    http_listeners_.swap(next_http);
    next_http.clear();
    udp_listeners_.swap(next_udp);
    next_udp.clear();
    apply_drain_deadlines();
    apply_http_drain_deadlines();
    snapshot_ = std::move(snap);
    done(snapshot_->generation);
  });
}

// A connection whose backend left the configuration (removed, weight 0) or whose listener is gone
// keeps running for the listener's drain_timeout, then ends; one whose backend is back is kept.
void Worker::apply_drain_deadlines() {
  int64_t now = loop_->now_ms();
  sessions_->for_each([&](l4::TcpSession& s) {
    auto id = s.backend_id();
    if (!id) return;  // still connecting: it picks from its own generation and stays with it
    auto it = listeners_.find(listener_key(s.listener()));
    if (it == listeners_.end()) {
      s.drain_by(now + s.listener().drain_timeout_ms);
      return;
    }
    const snapshot::Listener& current = it->second->config();
    const snapshot::ServerGroup& group = *current.group;
    auto b = group.index_by_id.find(*id);
    if (b == group.index_by_id.end() || group.backends[b->second].weight == 0) {
      s.drain_by(now + current.drain_timeout_ms);
    } else {
      s.cancel_drain();
    }
  });
}

// HTTP: the same rules per request (HTTP/1.1, a tunnel after 101) or stream (HTTP/2), ending the
// connection the graceful HTTP way at the deadline (l7::HttpSession::apply_generation).
void Worker::apply_http_drain_deadlines() {
  int64_t now = loop_->now_ms();
  http_ctx_->sessions.for_each([&](auto& s) { s.apply_generation(now); });
}

void Worker::drain(int64_t deadline_ms, std::function<void()> drained) {
  loop_->post([this, deadline_ms, drained = std::move(drained)]() mutable {
    if (drain_done_) return;
    listeners_.clear();  // stop accepting; established connections go on
    http_listeners_.clear();
    udp_listeners_.clear();  // UDP has nothing to finish: its flows end now
    http_ctx_->draining = true;
    l7::close_handshakes(*http_ctx_);  // not a request yet: nothing to finish
    http_ctx_->sessions.drain_all();   // idle keep-alive clients close now, busy ones after
    drain_deadline_ms_ = deadline_ms;
    drained_ = std::move(drained);
    drain_timer_ = std::make_unique<net::Timer>(*loop_, &Worker::on_drain_tick, this);
    check_drained();
  });
}

void Worker::on_drain_tick(void* self) {
  static_cast<Worker*>(self)->check_drained();
}

void Worker::check_drained() {
  size_t open = sessions_->size() + http_ctx_->sessions.size();
  FLOG_DEBUG("worker {}: drain check: {} connections, {} ms left", index_, open,
             drain_deadline_ms_ - loop_->now_ms());
  if (open > 0 && loop_->now_ms() < drain_deadline_ms_) {
    drain_timer_->arm_in(kDrainTickMs);
    return;
  }
  if (open > 0) {
    FLOG_WARN("worker {}: drain deadline passed, closing {} connections", index_, open);
    sessions_->close_all();
    http_ctx_->sessions.close_all();
  }
  drain_done_ = true;
  drain_timer_->cancel();
  if (drained_) drained_();
  loop_->stop();
}

bool Worker::sample_metrics(std::function<void(metrics::WorkerSample)> reply) {
  return loop_->try_post([this, reply = std::move(reply)] {
    metrics::WorkerSample sample;
    sample.listeners.reserve(listeners_.size() + udp_listeners_.size() + http_listeners_.size());
    auto add_backends = [](const base::BackendCounterTable& table, metrics::ListenerSample& out) {
      out.backends.reserve(table.size());
      table.for_each([&](const base::BackendCounters& c) {
        out.backends.push_back(metrics::BackendSample::from(c));
      });
    };
    for (const auto& [key, l] : listeners_) {
      metrics::ListenerSample& s = sample.listeners.emplace_back();
      s.lb = l->config().lb_name;
      s.listener = l->config().id;
      s.counters = l->runtime().counters;
      add_backends(l->runtime().backends, s);
    }
    // UDP in the same families: a flow is a connection; datagrams of new clients that got no
    // flow (ACL, no backend, table full) are dropped connections.
    for (const auto& [key, l] : udp_listeners_) {
      const l4::UdpCounters& c = l->counters();
      metrics::ListenerSample& s = sample.listeners.emplace_back();
      s.lb = l->config().lb_name;
      s.listener = l->config().id;
      s.has_packets = true;
      s.counters.connections = c.flows_created;
      s.counters.active = l->flows();
      s.counters.dropped = c.acl_denied + c.no_backend + c.flows_refused_full;
      s.counters.acl_denied = c.acl_denied;
      s.counters.flow_table_full = c.flows_refused_full;
      s.counters.bytes_in = c.bytes_in;
      s.counters.bytes_out = c.bytes_out;
      s.counters.packets_in = c.packets_in;
      s.counters.packets_out = c.packets_out;
    }
    for (const auto& [key, l] : http_listeners_) {
      const l7::HttpListenerRuntime& rt = l->runtime();
      metrics::ListenerSample& s = sample.listeners.emplace_back();
      s.lb = l->config().lb_name;
      s.listener = l->config().id;
      s.http = true;
      s.tls = l->config().tls != nullptr;
      s.counters = rt.counters;
      if (s.tls) s.tls_counters = rt.tls;
      for (size_t i = 0; i < s.responses_by_class.size(); ++i) {
        s.responses_by_class[i] = rt.http.responses_by_class[i];
      }
      s.request_duration = rt.http.request_duration;
      s.upstream_response = rt.http.upstream_response;
      add_backends(rt.backends, s);
    }
    reply(std::move(sample));
  });
}

void Worker::read_counters(std::function<void(const l4::Counters&)> reply) {
  loop_->post([this, reply = std::move(reply)] { reply(ctx_.counters); });
}

}  // namespace fulcrum::server
