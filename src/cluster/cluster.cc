#include "cluster/cluster.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/clock.h"
#include "base/log.h"
#include "net/event_loop.h"
#include "store/etcd_store.h"

namespace fulcrum::cluster {

using json = nlohmann::json;

namespace {

constexpr int64_t kRotationCheckMs = 60000;
constexpr int64_t kTicketRotationMs = 3600 * 1000;

std::string tickets_value(const Secrets& s) {
  return json{{"current", store::base64_encode(s.ticket_current)},
              {"previous", store::base64_encode(s.ticket_previous)},
              {"rotated_ms", s.rotated_ms}}
      .dump();
}

std::string sticky_value(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

json record_json(const NodeRecord& r) {
  return {{"name", r.name},
          {"zone", r.zone},
          {"admin", r.admin},
          {"revision", r.revision},
          {"generation", r.generation},
          {"last_seen_ms", r.last_seen_ms},
          {"started_ms", r.started_ms}};
}

// Syncs a file and the directory entry that names it.
base::Status write_durably(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return base::Error::system(errno, "cannot write " + tmp);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n <= 0) {
      ::close(fd);
      return base::Error::system(errno, "cannot write " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return base::Error::system(errno, "cannot sync " + tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return base::Error::system(errno, "cannot rename " + tmp);
  }
  std::string dir =
      path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace

std::optional<Secrets> secrets_of(const KeyMap& kvs) {
  auto sticky = kvs.find(kStickyKey);
  auto tickets = kvs.find(kTicketsKey);
  if (sticky == kvs.end() || tickets == kvs.end()) return std::nullopt;
  Secrets s;
  try {
    s.sticky = std::stoull(sticky->second, nullptr, 16);
  } catch (...) {
    return std::nullopt;
  }
  json t = json::parse(tickets->second, nullptr, false);
  if (!t.is_object() || !t.contains("current") || !t["current"].is_string() ||
      !t.contains("previous") || !t["previous"].is_string()) {
    return std::nullopt;
  }
  auto cur = store::base64_decode(t["current"].get<std::string>());
  auto prev = store::base64_decode(t["previous"].get<std::string>());
  if (!cur.ok() || !prev.ok() || cur->size() != 80 || prev->size() != 80) return std::nullopt;
  s.ticket_current = std::move(*cur);
  s.ticket_previous = std::move(*prev);
  s.rotated_ms = t.value("rotated_ms", int64_t{0});
  return s;
}

base::Status save_cache(const std::string& path, const Cache& cache) {
  json doc = {{"format", "fulcrum-last-known-good/1"},
              {"revision", cache.revision},
              {"config", cache.config}};
  if (cache.secrets) {
    doc["secrets"] = {{"sticky", sticky_value(cache.secrets->sticky)},
                      {"tickets", tickets_value(*cache.secrets)}};
  }
  return write_durably(path, doc.dump());
}

base::Result<std::optional<Cache>> load_cache(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::optional<Cache>();
    return base::Error::system(errno, "cannot read " + path);
  }
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, false);
  if (!doc.is_object() || doc.value("format", "") != "fulcrum-last-known-good/1" ||
      !doc.contains("config") || !doc["config"].is_object()) {
    return base::Error::internal(path + " is not a Fulcrum last-known-good file");
  }
  Cache c;
  c.revision = doc.value("revision", int64_t{0});
  for (auto& [k, v] : doc["config"].items()) {
    if (!v.is_string()) return base::Error::internal(path + ": bad value for " + k);
    c.config.emplace(k, v.get<std::string>());
  }
  if (doc.contains("secrets") && doc["secrets"].is_object()) {
    KeyMap kvs{{kStickyKey, doc["secrets"].value("sticky", "")},
               {kTicketsKey, doc["secrets"].value("tickets", "")}};
    c.secrets = secrets_of(kvs);
  }
  return std::optional<Cache>(std::move(c));
}

Cluster::Cluster(net::EventLoop& loop, store::EtcdStore& store, NodeRecord self)
    : loop_(loop), store_(store), self_(std::move(self)) {
  follower_ =
      std::make_unique<Follower>(loop_, store_, kClusterPrefix, "",
                                 [this](const KeyMap& kvs, int64_t) { on_cluster_change(kvs); });
  heartbeat_ = std::make_unique<net::Timer>(loop_, &Cluster::on_heartbeat, this);
  rotation_ = std::make_unique<net::Timer>(loop_, &Cluster::on_rotation, this);
}

Cluster::~Cluster() = default;

base::Result<Secrets> Cluster::load_secrets_sync(uint64_t fresh_sticky,
                                                 const std::string& fresh_ticket) {
  using store::Compare;
  Secrets fresh;
  fresh.sticky = fresh_sticky;
  fresh.ticket_current = fresh_ticket;
  fresh.ticket_previous = fresh_ticket;
  fresh.rotated_ms = base::wall_ms();
  auto created = store_.txn_if_sync(
      {Compare{kStickyKey, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}}},
      {store::Op::put(kStickyKey, sticky_value(fresh_sticky))});
  if (!created.ok()) return created.take_error();
  auto tickets = store_.txn_if_sync(
      {Compare{kTicketsKey, Compare::Target::kCreateRevision, Compare::Result::kEqual, 0, {}}},
      {store::Op::put(kTicketsKey, tickets_value(fresh))});
  if (!tickets.ok()) return tickets.take_error();
  auto all = store_.range(std::string(kClusterPrefix) + "secrets/");
  if (!all.ok()) return all.take_error();
  KeyMap kvs;
  for (auto& kv : all->kvs) kvs.emplace(kv.key, kv.value);
  auto s = secrets_of(kvs);
  if (!s) return base::Error::internal("the shared secrets in etcd are malformed");
  tickets_seen_ = kvs[kTicketsKey];
  return *s;
}

void Cluster::start(SecretsFn on_tickets, std::function<std::string()> fresh_ticket) {
  on_tickets_ = std::move(on_tickets);
  fresh_ticket_ = std::move(fresh_ticket);
  self_.started_ms = self_.started_ms ? self_.started_ms : base::wall_ms();
  // Read first, then watch from the revision read: a watch from the beginning would replay every
  // node record etcd's history still holds.
  follower_->begin();
  register_node();
  heartbeat_->arm_in(kHeartbeatMs);
  rotation_->arm_in(kRotationCheckMs);
}

void Cluster::register_node() {
  if (registering_ || left_) return;
  registering_ = true;
  store_.grant_lease(kLeaseTtlS, [this](base::Result<int64_t> lease) {
    if (!lease.ok()) {
      registering_ = false;
      FLOG_DEBUG("cluster: cannot register yet: {}", lease.error().message);
      return;
    }
    int64_t id = *lease;
    json alive = {{"started_ms", self_.started_ms}, {"pid", static_cast<int64_t>(::getpid())}};
    store::Op put = store::Op::put(std::string(kAlivePrefix) + self_.name, alive.dump());
    put.lease = id;
    store_.txn_async({put}, -1, [this, id](base::Result<int64_t> r) {
      registering_ = false;
      if (!r.ok()) {
        FLOG_WARN("cluster: cannot register node {}: {}", self_.name, r.error().message);
        return;
      }
      lease_ = id;
      alive_revision_ = *r;
      FLOG_INFO("cluster: node {} (zone {}) registered, lease {:x}", self_.name,
                self_.zone.empty() ? "-" : self_.zone, static_cast<uint64_t>(id));
      record_dirty_ = true;
      write_record();
    });
  });
}

void Cluster::write_record() {
  self_.last_seen_ms = base::wall_ms();
  record_written_ms_ = base::monotonic_ms();
  record_dirty_ = false;
  store_.txn_async(
      {store::Op::put(std::string(kNodesPrefix) + self_.name, record_json(self_).dump())}, -1,
      [this](base::Result<int64_t> r) {
        if (!r.ok()) record_dirty_ = true;
      });
}

void Cluster::serving(int64_t revision, uint64_t generation) {
  if (self_.revision == revision && self_.generation == generation) return;
  self_.revision = revision;
  self_.generation = generation;
  if (lease_ != 0 && !left_) write_record();
}

void Cluster::on_heartbeat(void* arg) {
  auto* self = static_cast<Cluster*>(arg);
  self->heartbeat_->arm_in(kHeartbeatMs);
  if (self->left_) return;
  if (self->lease_ == 0) {
    self->register_node();
    return;
  }
  self->store_.keep_alive(self->lease_, [self, lease = self->lease_](base::Result<int64_t> ttl) {
    if (!ttl.ok()) return;  // etcd unreachable: try again at the next beat
    if (*ttl <= 0 && self->lease_ == lease) {
      FLOG_WARN("cluster: lease of node {} is gone; registering again", self->self_.name);
      self->lease_ = 0;
      self->register_node();
    }
  });
  if (self->record_dirty_ || base::monotonic_ms() - self->record_written_ms_ >= kRecordMs) {
    self->write_record();
  }
}

void Cluster::on_cluster_change(const KeyMap& kvs) {
  // Our own alive key vanished while we hold the lease (expired while etcd was away, or revoked
  // early): register again.
  if (lease_ != 0 && !registering_ && !left_ && follower_->revision() >= alive_revision_ &&
      !kvs.count(std::string(kAlivePrefix) + self_.name)) {
    FLOG_WARN("cluster: alive key of node {} is gone; registering again", self_.name);
    lease_ = 0;
    register_node();
  }
  auto t = kvs.find(kTicketsKey);
  if (t != kvs.end() && t->second != tickets_seen_) {
    if (auto s = secrets_of(kvs)) {
      tickets_seen_ = t->second;
      if (on_tickets_) on_tickets_(*s);
    }
  }
}

void Cluster::on_rotation(void* arg) {
  auto* self = static_cast<Cluster*>(arg);
  self->rotation_->arm_in(kRotationCheckMs);
  self->maybe_rotate();
}

void Cluster::maybe_rotate() {
  auto s = secrets_of(follower_->kvs());
  if (!s || !fresh_ticket_) return;
  if (base::wall_ms() - s->rotated_ms < kTicketRotationMs) return;
  Secrets next = *s;
  next.ticket_previous = s->ticket_current;
  next.ticket_current = fresh_ticket_();
  next.rotated_ms = base::wall_ms();
  using store::Compare;
  auto seen = follower_->kvs().find(kTicketsKey)->second;
  // One writer: the compare on the value seen lets exactly one node's rotation through.
  store_.txn_if({Compare{kTicketsKey, Compare::Target::kValue, Compare::Result::kEqual, 0, seen}},
                {store::Op::put(kTicketsKey, tickets_value(next))},
                [](base::Result<std::optional<int64_t>> r) {
                  if (r.ok() && *r) FLOG_INFO("cluster: TLS ticket keys rotated");
                });
}

std::vector<NodeRecord> Cluster::nodes() const {
  std::vector<NodeRecord> out;
  const KeyMap& kvs = follower_->kvs();
  bool self_seen = false;
  for (auto it = kvs.lower_bound(kNodesPrefix);
       it != kvs.end() && it->first.rfind(kNodesPrefix, 0) == 0; ++it) {
    json j = json::parse(it->second, nullptr, false);
    if (!j.is_object()) continue;
    NodeRecord r;
    r.name = it->first.substr(std::string(kNodesPrefix).size());
    r.zone = j.value("zone", "");
    r.admin = j.value("admin", "");
    r.revision = j.value("revision", int64_t{0});
    r.generation = j.value("generation", uint64_t{0});
    r.last_seen_ms = j.value("last_seen_ms", int64_t{0});
    r.started_ms = j.value("started_ms", int64_t{0});
    r.up = kvs.count(std::string(kAlivePrefix) + r.name) > 0;
    if (r.name == self_.name) {
      self_seen = true;
      r.revision = self_.revision;
      r.generation = self_.generation;
      r.last_seen_ms = base::wall_ms();
      r.up = lease_ != 0 && r.up;
    }
    out.push_back(std::move(r));
  }
  if (!self_seen) {
    NodeRecord me = self_;
    me.up = lease_ != 0;
    me.last_seen_ms = base::wall_ms();
    out.insert(out.begin(), me);
  }
  return out;
}

void Cluster::forget(const std::string& name, std::function<void(base::Status, int)> done) {
  const KeyMap& kvs = follower_->kvs();
  if (!kvs.count(std::string(kNodesPrefix) + name)) {
    return done(base::Error::config("node", "node '" + name + "' not found"), 404);
  }
  if (kvs.count(std::string(kAlivePrefix) + name) || name == self_.name) {
    return done(base::Error::config("node", "node '" + name + "' is up: stop it first"), 409);
  }
  store_.txn_async({store::Op::del(std::string(kNodesPrefix) + name)}, -1,
                   [done = std::move(done)](base::Result<int64_t> r) {
                     if (!r.ok()) return done(r.take_error(), 503);
                     done({}, 204);
                   });
}

void Cluster::leave() {
  left_ = true;
  if (lease_ != 0) store_.revoke(lease_, [](base::Status) {});
}

}  // namespace fulcrum::cluster
