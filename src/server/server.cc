#include "server/server.h"

#include <signal.h>
#include <poll.h>
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
#include "net/socket.h"

namespace fulcrum::server {

namespace {
constexpr int kListenBacklog = 4096;
constexpr int64_t kPublishWaitMs = 5000;  // a worker that does not ack by then is stuck

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
}

Server::~Server() {
  // On a failed start (or any exit that did not go through run()), close everything at once.
  if (drained_workers_.load() < workers_.size()) {
    for (auto& w : workers_) w->drain(0, [] {});
  }
  for (auto& w : workers_) w->join();
}

base::Status Server::check(const std::string& config_path) {
  auto loaded = config::load_yaml_file(config_path);
  if (!loaded.ok()) return loaded.take_error();
  auto compiled = config::compile(*loaded, 1);
  if (!compiled.ok()) return compiled.take_error();
  return {};
}

base::Status Server::start() {
  config::Config cfg;
  if (!options_.config_path.empty()) {
    auto loaded = config::load_yaml_file(options_.config_path);
    if (!loaded.ok()) return loaded.take_error();
    cfg = std::move(*loaded);
  }
  for (uint32_t i = 0; i < options_.workers; ++i) {
    auto w = Worker::create(i);
    if (!w.ok()) return w.take_error();
    workers_.push_back(std::move(*w));
  }
  for (auto& w : workers_) w->start();
  return publish(cfg);
}

base::Status Server::publish(const config::Config& config) {
  auto compiled = config::compile(config, generation_ + 1);
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
        auto fd = net::listen_tcp(l.bind, /*reuseport=*/true, kListenBacklog);
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
  FLOG_INFO("generation {} active on {} workers: {} listeners", generation_, workers_.size(),
            bound_.size());
  for (const auto& l : snap->listeners) {
    if (l->running) {
      FLOG_INFO("listening {} {} {} -> group {} ({} backends, {})", l->lb_name, l->id,
                l->bind.to_string(), l->group->name, l->group->backends.size(),
                balance::scheduler_name(l->scheduler));
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

int Server::run() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) {
    FLOG_ERROR("signalfd: {}", std::strerror(errno));
    return 1;
  }
  bool draining = false;
  while (!draining || drained_workers_.load() < workers_.size()) {
    pollfd p{sfd, POLLIN, 0};
    // While draining, look at the workers every 100 ms; otherwise only signals wake us.
    if (::poll(&p, 1, draining ? 100 : -1) <= 0) continue;
    signalfd_siginfo info{};
    if (::read(sfd, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    if (info.ssi_signo == SIGHUP) {
      FLOG_INFO("SIGHUP: reloading {}", options_.config_path);
      if (draining) continue;
      if (auto st = reload(); !st.ok()) {
        FLOG_ERROR("reload refused, generation {} keeps running: {}", generation_,
                   st.error().to_string());
      }
      continue;
    }
    // SIGTERM drains gracefully; SIGINT, or a second signal while draining, closes at once.
    bool graceful = info.ssi_signo == SIGTERM && !draining;
    draining = true;
    drain(graceful);
  }
  for (auto& w : workers_) w->join();
  ::close(sfd);
  FLOG_INFO("stopped");
  return 0;
}

}  // namespace fulcrum::server
