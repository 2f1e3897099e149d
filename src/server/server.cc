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
#include <tuple>

#include "api/api.h"
#include "api/http_server.h"
#include "api/tokens.h"
#include "base/clock.h"
#include "base/log.h"
#include "cluster/changes.h"
#include "cluster/cluster.h"
#include "cluster/follower.h"
#include "config/compile.h"
#include "config/json.h"
#include "config/yaml.h"
#include "health/monitor.h"
#include "net/socket.h"
#include "server/metrics_collector.h"
#include "store/etcd_store.h"
#include "store/store.h"

namespace fulcrum::server {

namespace {
constexpr int kListenBacklog = 4096;
// Receive and send buffer of each worker's UDP listening socket: room for bursts of a few
// thousand datagrams while the worker is busy.
constexpr int kUdpSocketBuffer = 4 << 20;
constexpr int64_t kPublishWaitMs = 5000;  // a worker that does not ack by then is stuck
constexpr int64_t kDrainPollMs = 100;     // how often the control loop looks at draining workers
constexpr int kMaxChangeAttempts = 64;    // conflicting writes of other nodes before giving up
constexpr int64_t kStoreCheckMs = 1000;   // cluster mode: is etcd back after a start from cache?

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
    if (options_.config_path.empty()) {
      return base::Error::config(st.error().field,
                                 "the stored configuration cannot run: " + st.error().message +
                                     " (start with --config FILE to replace it)");
    }
    // The file replaces it below (and the store's keys are diffed against it); this is the way
    // out of a store that an older version accepted and this one refuses.
    FLOG_WARN("the stored configuration cannot run ({}); {} replaces it", st.error().to_string(),
              options_.config_path);
    config_ = std::move(stored);
  }
  if (!options_.config_path.empty()) {
    api::ApplyOutcome out = apply(file_config, /*dry_run=*/false);
    if (out.refusal != api::Refusal::kNone) return out.error;
  }
  if (auto st = start_api(); !st.ok()) return st;
  if (etcd_) start_cluster();
  ready_ = true;
  return {};
}

namespace {
// The data directory, private to the daemon's user.
base::Status make_data_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return base::Error::system(ec.value(),
                               "cannot create the data directory " + dir + ": " + ec.message());
  }
  ::chmod(dir.c_str(), 0700);
  return {};
}
}  // namespace

// The configuration the store's keys hold becomes config_ (not running yet).
base::Status Server::load_stored(const std::map<std::string, std::string>& kvs) {
  if (kvs.empty()) return {};
  auto cfg = config::from_store(kvs);
  if (!cfg.ok()) {
    return base::Error::internal("the store " + store_->describe() +
                                 " holds an invalid configuration: " + cfg.error().to_string());
  }
  config_ = std::move(*cfg);
  return {};
}

base::Status Server::open_store() {
  if (options_.store.rfind("etcd://", 0) == 0) return open_etcd();
  if (options_.store != "sqlite") {
    return base::Error::config("--store", "must be sqlite or etcd://HOST:PORT[,HOST:PORT...]");
  }
  if (auto st = make_data_dir(options_.data_dir); !st.ok()) return st;
  auto opened = store::open_sqlite(options_.data_dir + "/fulcrum.db");
  if (!opened.ok()) return opened.take_error();
  store_ = std::move(*opened);
  auto all = store_->range("/fulcrum/");
  if (!all.ok()) return all.take_error();
  std::map<std::string, std::string> kvs;
  for (auto& kv : all->kvs) kvs.emplace(std::move(kv.key), std::move(kv.value));
  revision_ = all->revision;
  if (auto st = load_stored(kvs); !st.ok()) return st;
  FLOG_INFO("store {} at revision {}: {} load balancers", store_->describe(), revision_,
            config_.loadbalancers.size());
  return {};
}

namespace {

base::Result<std::string> read_secret_file(const std::string& path, const char* flag) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return base::Error::config(flag, "cannot read " + path + ": " + std::strerror(errno));
  char buf[4096];
  size_t n = std::fread(buf, 1, sizeof buf, f);
  std::fclose(f);
  std::string text(buf, n);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) return base::Error::config(flag, path + " is empty");
  return text;
}

}  // namespace

// Cluster mode. The configuration is read from etcd, waiting up to etcd_start_wait_ms for it;
// when etcd cannot be reached the last known good configuration of this node's data dir runs
// instead (and the follower catches up once etcd answers). Shared secrets likewise.
base::Status Server::open_etcd() {
  auto endpoints = store::parse_etcd_endpoints(options_.store);
  if (!endpoints.ok()) return base::Error::config("--store", endpoints.error().message);
  store::EtcdOptions eo;
  eo.endpoints = std::move(*endpoints);
  eo.cacert = options_.etcd_cacert;
  eo.cert = options_.etcd_cert;
  eo.key = options_.etcd_key;
  eo.user = options_.etcd_user;
  if (!options_.etcd_user.empty()) {
    if (options_.etcd_password_file.empty()) {
      return base::Error::config("--etcd-password-file", "required with --etcd-user");
    }
    auto pw = read_secret_file(options_.etcd_password_file, "--etcd-password-file");
    if (!pw.ok()) return pw.take_error();
    eo.password = std::move(*pw);
  }
  if (auto st = make_data_dir(options_.data_dir); !st.ok()) return st;
  cache_path_ = options_.data_dir + "/cluster-cache.json";
  auto opened = store::EtcdStore::open(*control_loop_, std::move(eo));
  if (!opened.ok()) return base::Error::config("--store", opened.error().message);
  etcd_ = opened->get();
  store_ = std::move(*opened);

  // Read the configuration, retrying until the deadline.
  int64_t deadline = base::monotonic_ms() + options_.etcd_start_wait_ms;
  base::Result<store::RangeResult> all = base::Error::internal("not read");
  for (;;) {
    all = store_->range("/fulcrum/");
    if (all.ok()) break;
    const std::string& why = all.error().message;
    // etcd answered and refused (credentials, TLS): waiting does not help.
    bool refused = why.find("refused") != std::string::npos &&
                   why.find("Connection refused") == std::string::npos &&
                   why.find("Failed to connect") == std::string::npos;
    if (refused || base::monotonic_ms() >= deadline) break;
    FLOG_INFO("waiting for etcd at {}: {}", store_->describe(), why);
    ::usleep(500 * 1000);
  }
  tls::TicketKey fresh_ticket = tls::TicketKey::random();
  cluster::NodeRecord self;
  self.name = options_.node;
  self.zone = options_.zone;
  self.started_ms = started_unix_ms_;
  cluster_ = std::make_unique<cluster::Cluster>(*control_loop_, *etcd_, self);
  std::map<std::string, std::string> kvs;
  std::optional<cluster::Secrets> secrets;
  int64_t read_revision = 0;
  if (all.ok()) {
    read_revision = all->revision;
    std::tie(kvs, revision_) =
        cluster::Follower::split(std::move(*all), store::EtcdOptions{}.guard_key);
    auto loaded = cluster_->load_secrets_sync(sticky_secret_, fresh_ticket.to_bytes());
    if (!loaded.ok()) {
      return base::Error::config(
          "--store", "cannot read the shared secrets from etcd: " + loaded.error().message);
    }
    secrets = *loaded;
    FLOG_INFO("store {} at revision {}", store_->describe(), revision_);
  } else {
    const std::string& why = all.error().message;
    if (why.find("authentication failed") != std::string::npos ||
        why.find("invalid auth token") != std::string::npos ||
        why.find("permission denied") != std::string::npos) {
      return base::Error::config(options_.etcd_user.empty() ? "--store" : "--etcd-user",
                                 "etcd refused this node: " + why);
    }
    auto cache = cluster::load_cache(cache_path_);
    if (!cache.ok()) return base::Error::config("--store", cache.error().message);
    if (!*cache) {
      return base::Error::config(
          "--store", "cannot reach etcd at " + store_->describe().substr(5) + " (waited " +
                         std::to_string(options_.etcd_start_wait_ms / 1000) +
                         " s): " + all.error().message + "; and there is no last known good " +
                         "configuration in " + cache_path_);
    }
    kvs = std::move((*cache)->config);
    revision_ = (*cache)->revision;
    read_revision = revision_;
    secrets = (*cache)->secrets;
    config_source_ = "cache";
    FLOG_WARN(
        "etcd unreachable ({}): serving the last known good configuration (revision {}) from {}",
        all.error().message, revision_, cache_path_);
  }
  if (secrets) {
    sticky_secret_ = secrets->sticky;
    tls_.tickets->install(tls::TicketKey::from_bytes(secrets->ticket_current),
                          tls::TicketKey::from_bytes(secrets->ticket_previous));
  }
  if (auto st = load_stored(kvs); !st.ok()) return st;
  follower_ = std::make_unique<cluster::Follower>(
      *control_loop_, *store_, "/fulcrum/", store::EtcdOptions{}.guard_key,
      [this](const cluster::KeyMap& keys, int64_t rev) { follow(keys, rev); });
  follower_->start(std::move(kvs), revision_, read_revision);
  FLOG_INFO("cluster mode: node {} zone {}, {} load balancers", options_.node,
            options_.zone.empty() ? "-" : options_.zone, config_.loadbalancers.size());
  return {};
}

void Server::start_cluster() {
  cluster_->set_admin(api_server_ ? "http://" + api_server_->bound().to_string() : "");
  cluster_->start(
      [this](const cluster::Secrets& s) {
        tls_.tickets->install(tls::TicketKey::from_bytes(s.ticket_current),
                              tls::TicketKey::from_bytes(s.ticket_previous));
        if (s.sticky != sticky_secret_) {
          sticky_secret_ = s.sticky;
          republish_health();
        }
        FLOG_INFO("cluster: shared TLS ticket keys installed");
        save_cache();
      },
      [] { return tls::TicketKey::random().to_bytes(); });
  cluster_->serving(revision_, generation_);
  save_cache();
  store_check_ = std::make_unique<net::Timer>(*control_loop_, &Server::on_store_check, this);
  store_check_->arm_in(kStoreCheckMs);
}

void Server::on_store_check(void* self) {
  auto* s = static_cast<Server*>(self);
  s->store_check_->arm_in(kStoreCheckMs);
  if (s->config_source_ == "cache" && s->store_->reachable()) {
    s->config_source_ = "store";
    FLOG_INFO("store: etcd reachable again; following from revision {}", s->revision_);
  }
}

void Server::save_cache() {
  if (!follower_ || !cluster_) return;
  cluster::Cache c;
  c.config = follower_->kvs();
  c.revision = follower_->revision();
  c.secrets = cluster::secrets_of(cluster_->cluster_kvs());
  if (!c.secrets) {
    cluster::Secrets mine;
    mine.sticky = sticky_secret_;
    mine.ticket_current = tls_.tickets->current().to_bytes();
    mine.ticket_previous = mine.ticket_current;
    c.secrets = mine;
  }
  if (auto st = cluster::save_cache(cache_path_, c); !st.ok()) {
    FLOG_WARN("cannot save the last known good configuration: {}", st.error().message);
  }
}

void Server::follow(const std::map<std::string, std::string>& kvs, int64_t revision) {
  if (draining_) return;
  if (kvs == config::to_store(config_)) {  // a re-read that found what already runs
    revision_ = std::max(revision_, revision);
    if (cluster_) cluster_->serving(revision_, generation_);
    return;
  }
  auto cfg = config::from_store(kvs);
  if (!cfg.ok()) {
    FLOG_ERROR("store revision {} holds an invalid configuration, generation {} keeps running: {}",
               revision, generation_, cfg.error().to_string());
    return;
  }
  if (auto st = publish(*cfg); !st.ok()) {
    FLOG_ERROR("store revision {} cannot run on this node, generation {} keeps running: {}",
               revision, generation_, st.error().to_string());
    return;
  }
  revision_ = revision;
  FLOG_INFO("store revision {} applied (generation {})", revision_, generation_);
  if (cluster_) cluster_->serving(revision_, generation_);
  save_cache();
}

std::vector<api::NodeView> Server::nodes() const {
  std::vector<api::NodeView> out;
  if (!cluster_) {
    api::NodeView me;
    me.name = options_.node;
    me.zone = options_.zone;
    me.admin = api_server_ ? "http://" + api_server_->bound().to_string() : "";
    me.up = true;
    me.revision = revision_;
    me.generation = generation_;
    me.last_seen_unix_ms = base::wall_ms();
    out.push_back(me);
    return out;
  }
  for (const auto& r : cluster_->nodes()) {
    out.push_back(
        api::NodeView{r.name, r.zone, r.admin, r.up, r.revision, r.generation, r.last_seen_ms});
  }
  std::sort(out.begin(), out.end(),
            [](const api::NodeView& a, const api::NodeView& b) { return a.name < b.name; });
  return out;
}

void Server::forget_node(const std::string& name,
                         std::function<void(int status, base::Error error)> done) {
  if (!cluster_) {
    if (name == options_.node) {
      return done(409, base::Error::config("node", "node '" + name + "' is this node"));
    }
    return done(404, base::Error::config("node", "node '" + name + "' not found"));
  }
  cluster_->forget(name, [done = std::move(done)](base::Status st, int status) {
    done(status, st.ok() ? base::Error{} : st.error());
  });
}

base::Status Server::start_api() {
  if (options_.admin == "off") return {};
  auto address = net::SocketAddress::parse(options_.admin);
  if (!address) return base::Error::config("--admin", "must be IP:PORT or off");
  auto tokens = api::load_or_create_tokens(options_.data_dir, options_.token_file,
                                           options_.reader_token_file);
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

namespace {

// A refusal of prepare(): which answer it gets.
api::ApplyOutcome refused_by_prepare(base::Error e) {
  api::ApplyOutcome out;
  out.error = std::move(e);
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

api::ApplyOutcome unavailable(std::string message) {
  api::ApplyOutcome out;
  out.refusal = api::Refusal::kUnavailable;
  out.error = base::Error::internal(std::move(message));
  return out;
}

}  // namespace

std::map<std::string, std::string> Server::stored_keys() const {
  return follower_ ? follower_->kvs() : config::to_store(config_);
}

// Start-up only (the --config file): blocking store call, nothing else runs yet.
api::ApplyOutcome Server::apply(const config::Config& next, bool dry_run) {
  api::ApplyOutcome out;
  auto p = prepare(next);
  if (!p.ok()) return refused_by_prepare(p.take_error());
  if (dry_run) {
    out.revision = revision_;
    out.generation = generation_;
    return out;  // the fresh sockets close here
  }
  // The store write is the commit point: durable before any worker or client hears of it.
  std::vector<store::Op> ops = cluster::diff(stored_keys(), config::to_store(next));
  if (!ops.empty()) {
    int64_t base = follower_ ? follower_->revision() : revision_;
    auto rev = store_->txn(ops, base);
    if (!rev.ok()) {
      FLOG_ERROR("store write refused, nothing changed: {}", rev.error().message);
      return unavailable(rev.error().message);
    }
    revision_ = *rev;
    if (follower_) follower_->committed(ops, *rev);
  }
  activate(std::move(*p), next, /*announce=*/true);
  out.revision = revision_;
  out.generation = generation_;
  return out;
}

struct Server::Change {
  api::Edit edit;
  bool dry_run = false;
  api::EditKind kind = api::EditKind::kResource;
  std::function<void(api::ApplyOutcome)> done;
  int attempts = 0;
  // kDocument: the keys the document changes, against the store copy it was first applied to.
  bool have_base = false;
  std::map<std::string, std::string> base_keys;
  std::map<std::string, std::string> target_keys;
};

void Server::change(api::Edit edit, bool dry_run, api::EditKind kind,
                    std::function<void(api::ApplyOutcome)> done) {
  auto c = std::make_unique<Change>();
  c->edit = std::move(edit);
  c->dry_run = dry_run;
  c->kind = kind;
  c->done = std::move(done);
  changes_.push_back(std::move(c));
  if (!changing_) run_change();
}

// The change at the head of the queue: edit, prepare, commit (asynchronously), activate.
void Server::run_change() {
  if (changes_.empty()) {
    changing_ = false;
    return;
  }
  changing_ = true;
  Change& c = *changes_.front();
  if (draining_) return finish_change(unavailable("the node is shutting down"));
  // The edit starts from the store's copy: normally the running document, but not when the last
  // revision another node wrote could not run here (its listener's port is taken on this host).
  std::optional<config::Config> stored;
  if (follower_ && follower_->revision() != revision_) {
    auto decoded = config::from_store(follower_->kvs());
    if (decoded.ok()) stored = std::move(*decoded);
  }
  std::optional<config::Config> next = c.edit(stored ? *stored : config_);
  if (!next) {
    api::ApplyOutcome out;
    out.edit_refused = true;
    return finish_change(std::move(out));
  }
  std::map<std::string, std::string> before = stored_keys();
  std::map<std::string, std::string> after = config::to_store(*next);
  // Run the document in the store's order (lists sorted by key), as every other node and every
  // restart will: GET /v1/config is then the same everywhere.
  if (auto canonical = config::from_store(after); canonical.ok()) *next = std::move(*canonical);
  if (c.kind == api::EditKind::kDocument && !c.have_base) {
    c.have_base = true;
    c.base_keys = before;
    c.target_keys = after;
  }
  auto p = prepare(*next);
  if (!p.ok()) return finish_change(refused_by_prepare(p.take_error()));
  if (c.dry_run) {
    api::ApplyOutcome out;
    out.revision = revision_;
    out.generation = generation_;
    return finish_change(std::move(out));  // the fresh sockets close here
  }
  std::vector<store::Op> ops = cluster::diff(before, after);
  if (ops.empty()) {
    // Nothing to store; the running generation may still differ (a refused follow): run it.
    activate(std::move(*p), *next, /*announce=*/false);
    api::ApplyOutcome out;
    out.revision = revision_;
    out.generation = generation_;
    return finish_change(std::move(out));
  }
  int64_t base = follower_ ? follower_->revision() : revision_;
  writing_ = true;
  if (follower_) follower_->hold();
  auto prepared = std::make_shared<Prepared>(std::move(*p));
  auto next_config = std::make_shared<config::Config>(std::move(*next));
  store_->txn_async(
      ops, base, [this, ops, prepared, next_config](base::Result<int64_t> rev) mutable {
        writing_ = false;
        if (rev.ok()) {
          committed(*rev, ops, std::move(*prepared), *next_config);
          return;
        }
        prepared.reset();  // the fresh sockets close
        if (follower_) follower_->release();
        bool conflict = rev.error().message == store::kConflictMessage;
        if (conflict && follower_ && changes_.front()->attempts < kMaxChangeAttempts) {
          ++changes_.front()->attempts;
          retry_change();
        } else if (conflict) {
          api::ApplyOutcome out;
          out.refusal = api::Refusal::kConflict;
          out.error =
              base::Error::internal("the configuration kept changing under this write; try again");
          finish_change(std::move(out));
        } else {
          FLOG_ERROR("store write refused, nothing changed: {}", rev.error().message);
          finish_change(unavailable(rev.error().message));
        }
        if (health_pending_) republish_health();
      });
}

void Server::committed(int64_t revision, const std::vector<store::Op>& ops, Prepared p,
                       const config::Config& next) {
  revision_ = revision;
  if (follower_) follower_->committed(ops, revision);
  activate(std::move(p), next, /*announce=*/true);
  if (cluster_) cluster_->serving(revision_, generation_);
  save_cache();
  api::ApplyOutcome out;
  out.revision = revision_;
  out.generation = generation_;
  finish_change(std::move(out));
  if (follower_) follower_->release();  // later changes of other nodes run now
  if (health_pending_) republish_health();
}

// Another node's write got in first: read the store again (which also runs what it holds), then
// run the change on the fresher document. A whole document is replayed key by key when none of
// the keys it changes was changed meanwhile; otherwise it is refused, naming the first such key.
void Server::retry_change() {
  follower_->refresh([this](base::Status st) {
    if (!st.ok()) return finish_change(unavailable(st.error().message));
    Change& c = *changes_.front();
    if (c.kind == api::EditKind::kDocument && c.have_base) {
      auto merged = cluster::replay(c.base_keys, c.target_keys, follower_->kvs());
      if (!merged.ok()) {
        api::ApplyOutcome out;
        out.refusal = api::Refusal::kConflict;
        out.error = merged.take_error();
        return finish_change(std::move(out));
      }
      auto rebased = config::from_store(*merged);
      if (!rebased.ok()) {
        api::ApplyOutcome out;
        out.refusal = api::Refusal::kConflict;
        out.error = base::Error::internal("cannot apply onto what another writer changed: " +
                                          rebased.error().to_string());
        return finish_change(std::move(out));
      }
      c.edit = [doc = std::move(*rebased)](const config::Config&) {
        return std::optional<config::Config>(doc);
      };
      c.base_keys = follower_->kvs();
      c.target_keys = std::move(*merged);
    }
    run_change();
  });
}

void Server::finish_change(api::ApplyOutcome out) {
  std::unique_ptr<Change> c = std::move(changes_.front());
  changes_.pop_front();
  // The next change runs from the loop, not from inside this one's callbacks.
  control_loop_->post([this] { run_change(); });
  c->done(std::move(out));
}

api::NodeStatus Server::status() const {
  api::NodeStatus s;
  s.node = options_.node;
  s.zone = options_.zone;
  if (store_) {
    s.store.kind = store_->kind();
    s.store.endpoints = store_->endpoints();
    s.store.reachable = store_->reachable();
  }
  s.config_source = config_source_;
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
  change([doc = std::move(*loaded)](const config::Config&) { return std::optional(doc); },
         /*dry_run=*/false, api::EditKind::kDocument,
         [this](api::ApplyOutcome out) {
           if (out.refusal != api::Refusal::kNone) {
             FLOG_ERROR("reload refused, generation {} keeps running: {}", generation_,
                        out.error.to_string());
           }
         });
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
  if (writing_) {
    health_pending_ = true;  // after the write: its prepared generation carries older health
    return;
  }
  health_pending_ = false;
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
    if (!draining_ && cluster_) cluster_->leave();  // shown down at once
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
  metrics::StoreSample store;
  store.revision = revision_;
  store.reachable = !store_ || store_->reachable();
  store.nodes_up = store.nodes_down = 0;
  for (const api::NodeView& n : nodes()) ++(n.up ? store.nodes_up : store.nodes_down);
  collect(workers_, *control_loop_, snapshot_, monitor_.get(), store, std::move(done));
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
