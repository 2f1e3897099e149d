#include "health/monitor.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/hash.h"
#include "base/log.h"
#include "health/state.h"
#include "net/socket.h"

namespace fulcrum::health {

namespace {
// An HTTP check reads at most this much looking for the status line; longer is a failure.
constexpr size_t kMaxStatusLine = 1024;
// Each interval is stretched or shrunk by up to 1/kJitterDivisor (±10 %) so that checks started
// together drift apart.
constexpr int64_t kJitterDivisor = 10;
}  // namespace

// One (listener, backend) pair: its schedule, the check in flight, and its health state.
class Probe final : public net::IoHandler, public net::Deferred {
 public:
  Probe(Monitor& owner, std::string key, std::string label, Monitor::CheckCounts counts,
        net::SocketAddress target, snapshot::HealthCheck check, std::string host)
      : owner_(owner),
        key_(std::move(key)),
        label_(std::move(label)),
        counts_(std::move(counts)),
        target_(target),
        check_(std::move(check)),
        host_(std::move(host)),
        rng_(base::hash_string(key_) | 1),
        timer_(owner.loop_, &Probe::on_timer, this) {
    // The first check comes at a random point of the first interval.
    timer_.arm_in(static_cast<int64_t>(next_random() % static_cast<uint64_t>(check_.interval_ms)));
  }
  ~Probe() override { abort_check(); }

  bool same_target(const net::SocketAddress& target, const snapshot::HealthCheck& check) const {
    return target_ == target && check_ == check;
  }
  const std::string& key() const { return key_; }
  const std::string& label() const { return label_; }
  const BackendHealth& state() const { return state_; }
  const Monitor::CheckCounts& counts() const { return counts_; }

  void stop() {
    abort_check();
    timer_.cancel();
  }

  bool passive_failure(const std::string& error) {
    return state_.on_passive_failure(owner_.loop_.now_ms(), "traffic: " + error);
  }

  void on_io(uint32_t events) override {
    if (check_.type == snapshot::HealthCheck::Type::kUdp) {
      if (phase_ == Phase::kReading) read_udp_reply();
      return;
    }
    if (phase_ == Phase::kConnecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      if (int err = net::socket_error(fd_.get()); err != 0) {
        finish(false, std::string("connect: ") + std::strerror(err));
        return;
      }
      if (check_.type == snapshot::HealthCheck::Type::kTcp) {
        finish(true);
        return;
      }
      send_request();
      return;
    }
    if (phase_ == Phase::kReading) read_status();
  }

 private:
  enum class Phase : uint8_t { kIdle, kConnecting, kReading };

  uint64_t next_random() {  // xorshift64: jitter only, no quality needed
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  static void on_timer(void* self) {
    auto* p = static_cast<Probe*>(self);
    if (p->phase_ == Phase::kIdle) {
      p->start_check();
    } else if (p->check_.type == snapshot::HealthCheck::Type::kUdp && p->check_.expect.empty()) {
      p->finish(true);  // no ICMP port-unreachable within the timeout
    } else {
      p->finish(false, "timeout after " + std::to_string(p->check_.timeout_ms) + " ms");
    }
  }

  void start_check() {
    ++owner_.checks_started_;
    if (check_.type == snapshot::HealthCheck::Type::kUdp) {
      start_udp_check();
      return;
    }
    bool in_progress = false;
    auto fd = net::connect_tcp(target_, &in_progress);
    if (!fd.ok()) {
      finish(false, "connect: " + fd.error().message);
      return;
    }
    fd_ = std::move(*fd);
    if (!owner_.loop_.add(fd_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP, this).ok()) {
      finish(false, "epoll registration failed");
      return;
    }
    phase_ = Phase::kConnecting;
    timer_.arm_in(check_.timeout_ms);
    if (!in_progress) on_io(EPOLLOUT);
  }

  void send_request() {
    std::string request = check_.method + " " + check_.uri + " HTTP/1.1\r\nHost: " + host_ +
                          "\r\nUser-Agent: fulcrum-health-check\r\nConnection: close\r\n\r\n";
    // A few hundred bytes always fit in a fresh socket's send buffer.
    ssize_t n = ::send(fd_.get(), request.data(), request.size(), MSG_NOSIGNAL);
    if (n != static_cast<ssize_t>(request.size())) {
      finish(false, std::string("send: ") + (n < 0 ? std::strerror(errno) : "short write"));
      return;
    }
    phase_ = Phase::kReading;
    response_.clear();
    read_status();
  }

  // UDP: one datagram (`request`, possibly empty) on a connected socket; the kernel reports an
  // ICMP port-unreachable from the target as ECONNREFUSED on it.
  void start_udp_check() {
    auto fd = net::connect_udp(target_);
    if (!fd.ok()) {
      finish(false, "socket: " + fd.error().message);
      return;
    }
    fd_ = std::move(*fd);
    if (!owner_.loop_.add(fd_.get(), EPOLLIN, this).ok()) {
      finish(false, "epoll registration failed");
      return;
    }
    ssize_t n = ::send(fd_.get(), check_.request.data(), check_.request.size(), 0);
    if (n < 0) {
      finish(false, errno == ECONNREFUSED ? std::string("ICMP port unreachable")
                                          : std::string("send: ") + std::strerror(errno));
      return;
    }
    phase_ = Phase::kReading;
    timer_.arm_in(check_.timeout_ms);
  }

  // A reply passes when it contains `expect` (any reply when `expect` is empty); ECONNREFUSED
  // (ICMP port-unreachable) fails at once.
  void read_udp_reply() {
    char buf[2048];
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n >= 0) {
        std::string_view reply(buf, static_cast<size_t>(n));
        if (check_.expect.empty() || reply.find(check_.expect) != std::string_view::npos) {
          finish(true);
        } else {
          finish(false, "reply does not contain the expected text");
        }
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      finish(false, errno == ECONNREFUSED ? std::string("ICMP port unreachable")
                                          : std::string("recv: ") + std::strerror(errno));
      return;
    }
  }

  // Only the status line matters: "HTTP/1.x NNN ...". The rest is not read.
  void read_status() {
    char buf[512];
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) {
        response_.append(buf, static_cast<size_t>(n));
        size_t eol = response_.find("\r\n");
        if (eol != std::string::npos) {
          judge_status_line(std::string_view(response_).substr(0, eol));
          return;
        }
        if (response_.size() > kMaxStatusLine) {
          finish(false, "no status line in the first 1024 bytes");
          return;
        }
        continue;
      }
      if (n == 0) {
        finish(false, "closed before the status line");
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        finish(false, std::string("recv: ") + std::strerror(errno));
      }
      return;
    }
  }

  void judge_status_line(std::string_view line) {
    bool well_formed = line.size() >= 12 && line.substr(0, 7) == "HTTP/1." && line[8] == ' ' &&
                       std::all_of(line.begin() + 9, line.begin() + 12,
                                   [](char c) { return c >= '0' && c <= '9'; });
    if (!well_formed) {
      finish(false, "malformed status line");
      return;
    }
    unsigned code_class = static_cast<unsigned>(line[9] - '0');
    bool ok = code_class < 32 && (check_.http_code_classes & (1u << code_class)) != 0;
    finish(ok, ok ? std::string() : "status " + std::string(line.substr(9, 3)));
  }

  void abort_check() {
    if (fd_) {
      owner_.loop_.remove(fd_.get());
      net::set_linger_reset(fd_.get());  // no TIME_WAIT per check on either side
      fd_.reset();
    }
    phase_ = Phase::kIdle;
  }

  void finish(bool ok, std::string error = {}) {
    abort_check();
    ++(ok ? counts_.successes : counts_.failures);
    Thresholds t{check_.healthy_threshold, check_.unhealthy_threshold};
    snapshot::Health before = state_.status();
    if (state_.on_check(ok, owner_.loop_.now_ms(), t, error)) {
      FLOG_INFO("health: {} {} -> {}{}{}", label_, snapshot::to_string(before),
                snapshot::to_string(state_.status()), ok ? "" : ": ", error);
      owner_.changed(*this);
    } else if (!ok) {
      FLOG_DEBUG("health: {} check failed: {}", label_, error);
    }
    int64_t jitter_span = check_.interval_ms / kJitterDivisor;
    int64_t jitter =
        jitter_span > 0
            ? static_cast<int64_t>(next_random() % static_cast<uint64_t>(2 * jitter_span + 1)) -
                  jitter_span
            : 0;
    timer_.arm_in(check_.interval_ms + jitter);
  }

  Monitor& owner_;
  std::string key_;
  std::string label_;  // "lb tcp:8000 backend 127.0.0.1:9001"
  Monitor::CheckCounts counts_;
  net::SocketAddress target_;
  snapshot::HealthCheck check_;
  std::string host_;
  uint64_t rng_;
  net::Timer timer_;  // next check while idle, the check's timeout while one is in flight
  net::UniqueFd fd_;
  Phase phase_ = Phase::kIdle;
  std::string response_;
  BackendHealth state_;
};

Monitor::Monitor(net::EventLoop& loop, std::function<void()> on_change)
    : loop_(loop), on_change_(std::move(on_change)), flush_timer_(loop, &Monitor::on_flush, this) {}

Monitor::~Monitor() = default;

void Monitor::update(const snapshot::Snapshot& snap) {
  std::map<std::string, std::unique_ptr<Probe>> next;
  for (const auto& l : snap.listeners) {
    if (!l->running || !l->health_check.enabled) continue;
    // Every group the listener sends to: its default group and those of its forwarding rules.
    std::vector<const snapshot::Backend*> backends;
    for (const auto& b : l->group->backends) backends.push_back(&b);
    for (const auto& t : l->targets) {
      if (t.group && t.group != l->group) {
        for (const auto& b : t.group->backends) backends.push_back(&b);
      }
    }
    for (const snapshot::Backend* bp : backends) {
      const snapshot::Backend& b = *bp;
      std::string key = snapshot::health_key(l->lb_name, l->id, b.name);
      net::SocketAddress target =
          l->health_check.port ? b.address.with_port(l->health_check.port) : b.address;
      if (next.contains(key)) continue;  // the same backend in two groups: one check
      auto it = probes_.find(key);
      if (it != probes_.end() && it->second->same_target(target, l->health_check)) {
        next.emplace(key, std::move(it->second));
        probes_.erase(it);
        continue;
      }
      std::string host =
          l->health_check.domain.empty() ? b.address.ip_string() : l->health_check.domain;
      std::string label = l->lb_name + " " + l->id + " backend " + b.name;
      CheckCounts counts{l->lb_name, l->id, b.name, 0, 0};
      next.emplace(key, std::make_unique<Probe>(*this, key, std::move(label), std::move(counts),
                                                target, l->health_check, std::move(host)));
    }
  }
  // What is left is gone. Its events may still be queued in this batch: destroy it after.
  for (auto& [key, probe] : probes_) {
    probe->stop();
    loop_.defer_delete(std::move(probe));
  }
  probes_ = std::move(next);
  snapshot::HealthTable table;
  for (const auto& [key, probe] : probes_) table.emplace(key, probe->state().status());
  table_ = std::move(table);
}

std::vector<Monitor::CheckCounts> Monitor::check_counts() const {
  std::vector<CheckCounts> out;
  out.reserve(probes_.size());
  for (const auto& [key, probe] : probes_) out.push_back(probe->counts());
  return out;
}

void Monitor::report_failure(const std::string& key, const std::string& error) {
  auto it = probes_.find(key);
  if (it == probes_.end()) return;
  if (it->second->passive_failure(error)) {
    FLOG_INFO("health: {} ejected by traffic: {}", it->second->label(), error);
    changed(*it->second);
  }
}

void Monitor::changed(const Probe& probe) {
  table_[probe.key()] = probe.state().status();
  if (!flush_timer_.armed()) flush_timer_.arm_in(0);
}

void Monitor::on_flush(void* self) {
  auto* m = static_cast<Monitor*>(self);
  if (m->on_change_) m->on_change_();
}

}  // namespace fulcrum::health
