#include "server/server.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
#include "config/compile.h"
#include "config/yaml.h"
#include "health/monitor.h"
#include "net/socket.h"

namespace fulcrum::server {

namespace {
constexpr int kListenBacklog = 4096;
// Receive and send buffer of each worker's UDP listening socket: room for bursts of a few
// thousand datagrams while the worker is busy.
constexpr int kUdpSocketBuffer = 4 << 20;
constexpr int64_t kPublishWaitMs = 5000;  // a worker that does not ack by then is stuck
constexpr int64_t kDrainPollMs = 100;     // how often the control loop looks at draining workers

// Counts acknowledgements from worker threads. [any]
class Latch {
 public:
  explicit Latch(size_t n) : left_(n) {}
  void count_down() {
    std::lock_guard lock(mu_);
    if (left_ > 0 && --left_ == 0) cv_.notify_all();
  }
  bool wait_ms(int64_t ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t left_;
};
}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {
  if (options_.workers == 0) {
    options_.workers = std::max(1u, std::thread::hardware_concurrency());
  }
  signal_handler_.server = this;
  // The key of sticky-session tokens: one per process, the same for every generation.
  if (::getrandom(&sticky_secret_, sizeof sticky_secret_, 0) != sizeof sticky_secret_) {
    sticky_secret_ = static_cast<uint64_t>(base::monotonic_ns()) ^ static_cast<uint64_t>(getpid());
  }
}

Server::~Server() {
  // On a failed start (or any exit that did not go through run()), close everything at once.
  if (drained_workers_.load() < workers_.size()) {
    for (auto& w : workers_) w->drain(0, [] {});
  }
  for (auto& w : workers_) w->join();
  drain_poll_.reset();
  monitor_.reset();
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

base::Status Server::check(const std::string& config_path) {
  auto loaded = config::load_yaml_file(config_path);
  if (!loaded.ok()) return loaded.take_error();
  auto compiled = config::compile(*loaded, 1);
  if (!compiled.ok()) return compiled.take_error();
  return {};
}

base::Status Server::start() {
  auto loop = net::EventLoop::create();
  if (!loop.ok()) return loop.take_error();
  control_loop_ = std::move(*loop);
  monitor_ = std::make_unique<health::Monitor>(*control_loop_, [this] { republish_health(); });
  config::Config cfg;
  if (!options_.config_path.empty()) {
    auto loaded = config::load_yaml_file(options_.config_path);
    if (!loaded.ok()) return loaded.take_error();
    cfg = std::move(*loaded);
  }
  // Failures seen by real traffic reach the health monitor on the control loop (rate-limited by
  // each worker; this is never per request).
  auto report = [this](std::string key, std::string error) {
    control_loop_->post([this, key = std::move(key), error = std::move(error)] {
      monitor_->report_failure(key, error);
    });
  };
  auto writer = AccessLogWriter::open(options_.access_log);
  if (!writer.ok()) return writer.take_error();
  access_log_ = std::move(*writer);
  auto access = [this](std::string batch) { access_log_->submit(std::move(batch)); };
  for (uint32_t i = 0; i < options_.workers; ++i) {
    auto w = Worker::create(i, report, access);
    if (!w.ok()) return w.take_error();
    workers_.push_back(std::move(*w));
  }
  for (auto& w : workers_) w->start();
  return publish(cfg);
}

base::Status Server::publish(const config::Config& config, bool announce) {
  auto compiled = config::compile(config, generation_ + 1, &monitor_->table(), sticky_secret_);
  if (!compiled.ok()) return compiled.take_error();
  const auto& snap = compiled->snapshot;

  // Bind what is new before touching anything, so a port in use refuses the whole change.
  std::map<std::string, std::vector<net::UniqueFd>> fresh;
  std::map<std::string, int> next_bound;
  int64_t max_drain = 0;
  for (size_t i = 0; i < snap->listeners.size(); ++i) {
    const snapshot::Listener& l = *snap->listeners[i];
    if (!l.running) continue;
    max_drain = std::max(max_drain, l.drain_timeout_ms);
    std::string key = listener_key(l);
    if (auto it = bound_.find(key); it != bound_.end()) {
      next_bound.emplace(key, it->second);
    } else {
      std::vector<net::UniqueFd> fds;
      for (size_t w = 0; w < workers_.size(); ++w) {
        auto fd = l.protocol == snapshot::Protocol::kUdp
                      ? net::bind_udp(l.bind, /*reuseport=*/true, kUdpSocketBuffer)
                      : net::listen_tcp(l.bind, /*reuseport=*/true, kListenBacklog);
        if (!fd.ok()) {
          return base::Error::config(compiled->listener_paths[i] + ".port",
                                     "cannot listen on " + l.bind.to_string() + ": " +
                                         std::strerror(fd.error().sys_errno));
        }
        fds.push_back(std::move(*fd));
      }
      next_bound.emplace(key, fds[0].get());
      fresh.emplace(key, std::move(fds));
    }
    if (l.persistence_timeout_ms > 0) {
      // Same client IP -> same worker, so each worker's persistence table is authoritative.
      auto st = net::steer_reuseport_by_source_ip(next_bound[key], l.bind.family(),
                                                  static_cast<uint32_t>(workers_.size()));
      if (!st.ok()) FLOG_WARN("listener {}: {}", key, st.error().message);
    }
  }

  Latch acked(workers_.size());
  for (size_t w = 0; w < workers_.size(); ++w) {
    std::vector<SocketHandoff> handoff;
    for (auto& [key, fds] : fresh) handoff.push_back({key, std::move(fds[w])});
    workers_[w]->apply(snap, std::move(handoff), [&acked](uint64_t) { acked.count_down(); });
  }
  if (!acked.wait_ms(kPublishWaitMs)) {
    // Not reached in a healthy process: a worker loop is stuck. Fatal by design.
    FLOG_ERROR("generation {} was not acknowledged by every worker in {} ms", snap->generation,
               kPublishWaitMs);
    std::abort();
  }
  bound_ = std::move(next_bound);
  generation_ = snap->generation;
  max_drain_timeout_ms_ = max_drain;
  config_ = config;
  monitor_->update(*snap);
  FLOG_INFO("generation {} active on {} workers: {} listeners", generation_, workers_.size(),
            bound_.size());
  for (const auto& l : snap->listeners) {
    if (!l->running) continue;
    if (announce) {
      FLOG_INFO("listening {} {} {} -> group {} ({} backends, {})", l->lb_name, l->id,
                l->bind.to_string(), l->group->name, l->group->backends.size(),
                balance::scheduler_name(l->scheduler));
    }
    for (size_t i = 0; i < l->group->backends.size(); ++i) {
      const auto& b = l->group->backends[i];
      FLOG_DEBUG("  {} {} backend {}: {}", l->lb_name, l->id, b.name,
                 snapshot::backend_status(b.weight, l->health[i]));
    }
  }
  return {};
}

base::Status Server::reload() {
  if (options_.config_path.empty()) return {};
  auto loaded = config::load_yaml_file(options_.config_path);
  if (!loaded.ok()) return loaded.take_error();
  return publish(*loaded);
}

void Server::drain(bool graceful) {
  int64_t deadline = base::monotonic_ms() + (graceful ? max_drain_timeout_ms_ : 0);
  FLOG_INFO("{} drain: stop accepting, wait for connections up to {} ms",
            graceful ? "graceful" : "fast", graceful ? max_drain_timeout_ms_ : 0);
  for (auto& w : workers_) {
    w->drain(deadline, [this] { drained_workers_.fetch_add(1); });
  }
}

void Server::republish_health() {
  if (draining_) return;
  if (auto st = publish(config_, /*announce=*/false); !st.ok()) {
    FLOG_ERROR("health update not published: {}", st.error().to_string());
  }
}

void Server::on_signal() {
  for (;;) {
    signalfd_siginfo info{};
    if (::read(signal_fd_, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) return;
    if (info.ssi_signo == SIGHUP) {
      FLOG_INFO("SIGHUP: reloading {}", options_.config_path);
      if (draining_) continue;
      if (auto st = reload(); !st.ok()) {
        FLOG_ERROR("reload refused, generation {} keeps running: {}", generation_,
                   st.error().to_string());
      }
      continue;
    }
    // SIGTERM drains gracefully; SIGINT, or a second signal while draining, closes at once.
    bool graceful = info.ssi_signo == SIGTERM && !draining_;
    draining_ = true;
    drain(graceful);
    if (!drain_poll_) {
      drain_poll_ = std::make_unique<net::Timer>(*control_loop_, &Server::on_drain_poll, this);
      drain_poll_->arm_in(kDrainPollMs);
    }
  }
}

void Server::on_drain_poll(void* self) {
  auto* s = static_cast<Server*>(self);
  if (s->drained_workers_.load() < s->workers_.size()) {
    s->drain_poll_->arm_in(kDrainPollMs);
    return;
  }
  s->control_loop_->stop();
}

int Server::run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) {
    FLOG_ERROR("signalfd: {}", std::strerror(errno));
    return 1;
  }
  if (auto st = control_loop_->add(signal_fd_, EPOLLIN, &signal_handler_); !st.ok()) {
    FLOG_ERROR("signalfd: {}", st.error().message);
    return 1;
  }
  control_loop_->run();
  for (auto& w : workers_) w->join();
  FLOG_INFO("stopped");
  return 0;
}

}  // namespace fulcrum::server
