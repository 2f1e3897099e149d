#include "server/server.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "api/api.h"
#include "api/http_server.h"
#include "api/tokens.h"
#include "base/clock.h"
#include "base/log.h"
#include "config/compile.h"
#include "config/json.h"
#include "config/yaml.h"
#include "health/monitor.h"
#include "net/socket.h"
#include "server/metrics_collector.h"
#include "store/store.h"

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
  ticket_timer_.reset();
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
  started_unix_ms_ = base::wall_ms();
  auto loop = net::EventLoop::create();
  if (!loop.ok()) return loop.take_error();
  control_loop_ = std::move(*loop);
  monitor_ = std::make_unique<health::Monitor>(*control_loop_, [this] { republish_health(); });
  ticket_timer_ = std::make_unique<net::Timer>(*control_loop_, &Server::on_ticket_rotation, this);
  ticket_timer_->arm_in(tls::kTicketRotationS * 1000);
  if (auto st = open_store(); !st.ok()) return st;
  config::Config file_config;
  if (!options_.config_path.empty()) {
    auto loaded = config::load_yaml_file(options_.config_path);
    if (!loaded.ok()) return loaded.take_error();
    file_config = std::move(*loaded);
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
  // What the store holds runs first; a --config file then replaces it (and is stored), so that
  // the file is the truth at start, as an operator expects.
  config::Config stored = std::move(config_);
  config_ = config::Config{};
  if (auto st = publish(stored); !st.ok()) {
    return base::Error::config(st.error().field,
                               "the stored configuration cannot run: " + st.error().message);
  }
  if (!options_.config_path.empty()) {
    api::ApplyOutcome out = apply(file_config, /*dry_run=*/false);
    if (out.refusal != api::Refusal::kNone) return out.error;
  }
  if (auto st = start_api(); !st.ok()) return st;
  ready_ = true;
  return {};
}

base::Status Server::open_store() {
  if (options_.store != "sqlite") {
    return base::Error::config("--store", "only the embedded sqlite store is in this build");
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return base::Error::system(
        ec.value(), "cannot create the data directory " + options_.data_dir + ": " + ec.message());
  }
  ::chmod(options_.data_dir.c_str(), 0700);
  auto opened = store::open_sqlite(options_.data_dir + "/fulcrum.db");
  if (!opened.ok()) return opened.take_error();
  store_ = std::move(*opened);
  auto all = store_->range("/fulcrum/");
  if (!all.ok()) return all.take_error();
  std::map<std::string, std::string> kvs;
  for (auto& kv : all->kvs) kvs.emplace(std::move(kv.key), std::move(kv.value));
  revision_ = all->revision;
  if (!kvs.empty()) {
    auto cfg = config::from_store(kvs);
    if (!cfg.ok()) {
      return base::Error::internal("the store " + store_->describe() +
                                   " holds an invalid configuration: " + cfg.error().to_string());
    }
    config_ = std::move(*cfg);
  }
  FLOG_INFO("store {} at revision {}: {} load balancers", store_->describe(), revision_,
            config_.loadbalancers.size());
  return {};
}

base::Status Server::start_api() {
  if (options_.admin == "off") return {};
  auto address = net::SocketAddress::parse(options_.admin);
  if (!address) return base::Error::config("--admin", "must be IP:PORT or off");
  auto tokens = api::load_or_create_tokens(options_.data_dir, options_.token_file);
  if (!tokens.ok()) return tokens.take_error();
  std::string token_path = tokens->admin_path;
  api_ = std::make_unique<api::Api>(*this, std::move(*tokens));
  auto server = api::HttpServer::start(*control_loop_, *address, api::ServerLimits{},
                                       [this](api::Request r, api::Respond respond) {
                                         api_->handle(std::move(r), std::move(respond));
                                       });
  if (!server.ok()) {
    return base::Error::config(
        "--admin", "cannot listen on " + options_.admin + ": " + server.error().message);
  }
  api_server_ = std::move(*server);
  std::string url = "http://" + api_server_->bound().to_string();
  // fulcrumctl (and the tests) find the API of a local fulcrumd here.
  std::string url_path = options_.data_dir + "/admin.url";
  std::string tmp = url_path + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fprintf(f, "%s\n", url.c_str());
    std::fclose(f);
    std::rename(tmp.c_str(), url_path.c_str());
  }
  FLOG_INFO("admin API on {} (admin token in {})", url, token_path);
  return {};
}

void Server::on_ticket_rotation(void* self) {
  auto* server = static_cast<Server*>(self);
  server->tls_.tickets->rotate();
  FLOG_DEBUG("tls: session ticket keys rotated");
  server->ticket_timer_->arm_in(tls::kTicketRotationS * 1000);
}

base::Result<Server::Prepared> Server::prepare(const config::Config& config) {
  auto compiled =
      config::compile(config, generation_ + 1, &monitor_->table(), sticky_secret_, &tls_);
  if (!compiled.ok()) return compiled.take_error();
  Prepared p;
  p.snap = compiled->snapshot;
  const auto& snap = p.snap;

  // Bind what is new before touching anything, so a port in use refuses the whole change.
  for (size_t i = 0; i < snap->listeners.size(); ++i) {
    const snapshot::Listener& l = *snap->listeners[i];
    if (!l.running) continue;
    p.max_drain = std::max(p.max_drain, l.drain_timeout_ms);
    std::string key = listener_key(l);
    if (auto it = bound_.find(key); it != bound_.end()) {
      p.next_bound.emplace(key, it->second);
      continue;
    }
    std::vector<net::UniqueFd> fds;
    for (size_t w = 0; w < workers_.size(); ++w) {
      auto fd = l.protocol == snapshot::Protocol::kUdp
                    ? net::bind_udp(l.bind, /*reuseport=*/true, kUdpSocketBuffer)
                    : net::listen_tcp(l.bind, /*reuseport=*/true, kListenBacklog);
      if (!fd.ok()) {
        base::Error e = base::Error::config(
            compiled->listener_paths[i] + ".port",
            "cannot listen on " + l.bind.to_string() + ": " + std::strerror(fd.error().sys_errno));
        e.sys_errno = fd.error().sys_errno;
        return e;
      }
      fds.push_back(std::move(*fd));
    }
    p.next_bound.emplace(key, fds[0].get());
    p.fresh.emplace(key, std::move(fds));
  }
  return p;
}

void Server::activate(Prepared p, const config::Config& config, bool announce) {
  const auto& snap = p.snap;
  for (const auto& l : snap->listeners) {
    if (!l->running || l->persistence_timeout_ms <= 0) continue;
    // Same client IP -> same worker, so each worker's persistence table is authoritative.
    std::string key = listener_key(*l);
    auto st = net::steer_reuseport_by_source_ip(p.next_bound[key], l->bind.family(),
                                                static_cast<uint32_t>(workers_.size()));
    if (!st.ok()) FLOG_WARN("listener {}: {}", key, st.error().message);
  }
  Latch acked(workers_.size());
  for (size_t w = 0; w < workers_.size(); ++w) {
    std::vector<SocketHandoff> handoff;
    for (auto& [key, fds] : p.fresh) handoff.push_back({key, std::move(fds[w])});
    workers_[w]->apply(snap, std::move(handoff), [&acked](uint64_t) { acked.count_down(); });
  }
  if (!acked.wait_ms(kPublishWaitMs)) {
    // Not reached in a healthy process: a worker loop is stuck. Fatal by design.
    FLOG_ERROR("generation {} was not acknowledged by every worker in {} ms", snap->generation,
               kPublishWaitMs);
    std::abort();
  }
  bound_ = std::move(p.next_bound);
  generation_ = snap->generation;
  snapshot_ = snap;
  max_drain_timeout_ms_ = p.max_drain;
  config_ = config;
  monitor_->update(*snap);
  FLOG_INFO("generation {} active on {} workers: {} listeners", generation_, workers_.size(),
            bound_.size());
  for (const auto& l : snap->listeners) {
    if (!l->running) continue;
    if (announce) {
      if (l->redirect_https_port != 0) {
        FLOG_INFO("listening {} {} {} -> redirect to https port {}", l->lb_name, l->id,
                  l->bind.to_string(), l->redirect_https_port);
      } else {
        FLOG_INFO("listening {} {} {} -> group {} ({} backends, {})", l->lb_name, l->id,
                  l->bind.to_string(), l->group->name, l->group->backends.size(),
                  balance::scheduler_name(l->scheduler));
      }
    }
    for (size_t i = 0; i < l->group->backends.size(); ++i) {
      const auto& b = l->group->backends[i];
      FLOG_DEBUG("  {} {} backend {}: {}", l->lb_name, l->id, b.name,
                 snapshot::backend_status(b.weight, l->health[i]));
    }
  }
}

base::Status Server::publish(const config::Config& config, bool announce) {
  auto p = prepare(config);
  if (!p.ok()) return p.take_error();
  activate(std::move(*p), config, announce);
  return {};
}

api::ApplyOutcome Server::apply(const config::Config& next, bool dry_run) {
  api::ApplyOutcome out;
  if (draining_) {
    out.refusal = api::Refusal::kUnavailable;
    out.error = base::Error::internal("the node is shutting down");
    return out;
  }
  auto p = prepare(next);
  if (!p.ok()) {
    out.error = p.take_error();
    if (out.error.sys_errno == EADDRINUSE) {
      out.refusal = api::Refusal::kConflict;
    } else if (out.error.sys_errno != 0) {
      // e.g. an address this host does not have, a certificate that cannot be used
      out.refusal = api::Refusal::kInvalid;
    } else {
      out.refusal = api::Refusal::kUnsupported;  // valid, but this build cannot serve it
    }
    return out;
  }
  if (dry_run) {
    out.revision = revision_;
    out.generation = generation_;
    return out;  // the fresh sockets close here
  }
  // The store write is the commit point: durable before any worker or client hears of it.
  const auto before = config::to_store(config_);
  const auto after = config::to_store(next);
  std::vector<store::Op> ops;
  for (const auto& [key, value] : after) {
    auto it = before.find(key);
    if (it == before.end() || it->second != value) ops.push_back(store::Op::put(key, value));
  }
  for (const auto& [key, value] : before) {
    if (!after.count(key)) ops.push_back(store::Op::del(key));
  }
  if (!ops.empty()) {
    auto rev = store_->txn(ops, revision_);
    if (!rev.ok()) {
      out.refusal = api::Refusal::kUnavailable;
      out.error = rev.take_error();
      FLOG_ERROR("store write refused, nothing changed: {}", out.error.message);
      return out;
    }
    revision_ = *rev;
  }
  activate(std::move(*p), next, /*announce=*/true);
  out.revision = revision_;
  out.generation = generation_;
  return out;
}

api::NodeStatus Server::status() const {
  api::NodeStatus s;
  s.node = options_.node;
  s.zone = options_.zone;
  s.store = store_ ? store_->describe() : "";
  s.revision = revision_;
  s.generation = generation_;
  s.workers = static_cast<uint32_t>(workers_.size());
  s.started_unix_ms = started_unix_ms_;
  return s;
}

base::Status Server::reload() {
  if (options_.config_path.empty()) return {};
  auto loaded = config::load_yaml_file(options_.config_path);
  if (!loaded.ok()) return loaded.take_error();
  api::ApplyOutcome out = apply(*loaded, /*dry_run=*/false);
  if (out.refusal != api::Refusal::kNone) return out.error;
  return {};
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

void Server::render_metrics(std::function<void(std::string)> done) {
  collect(workers_, *control_loop_, snapshot_, monitor_.get(), std::move(done));
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
