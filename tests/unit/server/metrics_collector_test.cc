// Collection end to end inside one process: real workers, real listening sockets on loopback and
// a backend port that refuses connections (bound, never listening), so every number is known.
#include "server/metrics_collector.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "config/compile.h"
#include "config/yaml.h"
#include "net/socket.h"

namespace fulcrum::server {
namespace {

uint16_t port_of(int fd) {
  auto a = net::local_address(fd);
  EXPECT_TRUE(a.ok());
  return a->port();
}

// Reads until the peer closes (or resets); returns what came.
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

int connect_blocking(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto addr = net::SocketAddress::parse("127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(addr.has_value());
  EXPECT_EQ(::connect(fd, addr->sa(), addr->len()), 0);
  return fd;
}

class MetricsCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint32_t i = 0; i < 2; ++i) {
      auto w = Worker::create(i);
      ASSERT_TRUE(w.ok());
      workers_.push_back(std::move(*w));
      workers_.back()->start();
    }
    // A port that refuses: bound, not listening.
    refusing_ = ::socket(AF_INET, SOCK_STREAM, 0);
    auto any = net::SocketAddress::parse("127.0.0.1:0");
    ASSERT_EQ(::bind(refusing_, any->sa(), any->len()), 0);
    uint16_t backend_port = port_of(refusing_);
    // One SO_REUSEPORT socket per worker and listener, on ports the kernel picked.
    for (int l = 0; l < 2; ++l) {
      auto first = net::listen_tcp(*any, true, 64);
      ASSERT_TRUE(first.ok());
      ports_[l] = port_of(first->get());
      auto second = net::listen_tcp(
          *net::SocketAddress::parse("127.0.0.1:" + std::to_string(ports_[l])), true, 64);
      ASSERT_TRUE(second.ok());
      fds_[l][0] = std::move(*first);
      fds_[l][1] = std::move(*second);
    }
    std::string yaml =
        "loadbalancers:\n"
        "  - name: t\n"
        "    address: 127.0.0.1\n"
        "    server_groups:\n"
        "      - name: g\n"
        "        backends:\n"
        "          - {address: 127.0.0.1, port: " +
        std::to_string(backend_port) +
        "}\n"
        "    listeners:\n"
        "      - {protocol: tcp, port: " +
        std::to_string(ports_[0]) +
        ", server_group: g, health_check: {enabled: false}}\n"
        "      - {protocol: http, port: " +
        std::to_string(ports_[1]) + ", server_group: g, health_check: {enabled: false}}\n";
    auto cfg = config::decode_yaml(yaml, ".");
    ASSERT_TRUE(cfg.ok()) << cfg.error().to_string();
    auto compiled = config::compile(*cfg, 1);
    ASSERT_TRUE(compiled.ok()) << compiled.error().to_string();
    snap_ = compiled->snapshot;
    std::mutex mu;
    std::condition_variable cv;
    size_t acked = 0;
    for (size_t w = 0; w < workers_.size(); ++w) {
      std::vector<SocketHandoff> handoff;
      for (int l = 0; l < 2; ++l) {
        handoff.push_back(
            {listener_key(*snap_->listeners[static_cast<size_t>(l)]), std::move(fds_[l][w])});
      }
      workers_[w]->apply(snap_, std::move(handoff), [&](uint64_t) {
        std::lock_guard lock(mu);
        ++acked;
        cv.notify_all();
      });
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return acked == workers_.size(); });
  }

  void TearDown() override {
    for (auto& w : workers_) w->drain(0, [] {});
    for (auto& w : workers_) w->join();
    workers_.clear();
    ::close(refusing_);
  }

  // Runs one collection on a fresh control loop (a loop runs once); every answer has arrived when
  // `done` runs, so the loop can go afterwards.
  std::string collect_text() {
    auto loop = net::EventLoop::create();
    EXPECT_TRUE(loop.ok());
    std::string text;
    collect(workers_, **loop, snap_, nullptr, [&](std::string t) {
      text = std::move(t);
      (*loop)->stop();
    });
    (*loop)->run();
    return text;
  }

  static bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
  }

  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const snapshot::Snapshot> snap_;
  int refusing_ = -1;
  uint16_t ports_[2] = {};
  net::UniqueFd fds_[2][2];
};

TEST_F(MetricsCollectorTest, CountsWhatTheWorkersSawAndSurvivesAStoppedWorker) {
  std::string before = collect_text();
  std::string tcp = "lb=\"t\",listener=\"tcp:" + std::to_string(ports_[0]) + "\"";
  std::string http = "lb=\"t\",listener=\"http:" + std::to_string(ports_[1]) + "\"";
  EXPECT_TRUE(has_line(before, "fulcrum_workers 2")) << before;
  EXPECT_TRUE(has_line(before, "fulcrum_config_generation 1")) << before;
  EXPECT_TRUE(has_line(before, "fulcrum_listener_connections_total{" + tcp + "} 0")) << before;
  EXPECT_TRUE(has_line(before, "fulcrum_backend_up{" + tcp + ",server_group=\"g\",backend=" +
                                   "\"127.0.0.1:" + std::to_string(port_of(refusing_)) + "\"} 1"))
      << before;

  // TCP: the only backend refuses, so the client is reset and the connection counts as dropped.
  int c = connect_blocking(ports_[0]);
  read_all(c);
  ::close(c);
  // HTTP: the same backend; the client gets Fulcrum's 502.
  c = connect_blocking(ports_[1]);
  std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(c, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string answer = read_all(c);
  ::close(c);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 502")) << answer;

  std::string text = collect_text();
  std::string backend =
      ",server_group=\"g\",backend=\"127.0.0.1:" + std::to_string(port_of(refusing_)) + "\"";
  EXPECT_TRUE(has_line(text, "fulcrum_listener_connections_total{" + tcp + "} 1")) << text;
  EXPECT_TRUE(has_line(text, "fulcrum_listener_active_connections{" + tcp + "} 0")) << text;
  EXPECT_TRUE(has_line(text, "fulcrum_listener_dropped_connections_total{" + tcp + "} 1")) << text;
  EXPECT_TRUE(has_line(text, "fulcrum_backend_connections_total{" + tcp + backend + "} 1")) << text;
  EXPECT_TRUE(has_line(text, "fulcrum_backend_connect_failures_total{" + tcp + backend + "} 1"))
      << text;
  EXPECT_TRUE(has_line(text, "fulcrum_backend_active_connections{" + tcp + backend + "} 0"))
      << text;
  EXPECT_TRUE(has_line(text, "fulcrum_listener_connections_total{" + http + "} 1")) << text;
  EXPECT_TRUE(has_line(text, "fulcrum_listener_active_connections{" + http + "} 0")) << text;
  EXPECT_TRUE(has_line(text, "fulcrum_listener_dropped_connections_total{" + http + "} 1")) << text;
  EXPECT_TRUE(has_line(
      text, "fulcrum_listener_bytes_in_total{" + http + "} " + std::to_string(request.size())))
      << text;
  EXPECT_TRUE(has_line(
      text, "fulcrum_listener_bytes_out_total{" + http + "} " + std::to_string(answer.size())))
      << text;
  EXPECT_TRUE(has_line(text, "fulcrum_http_requests_total{" + http + ",code_class=\"5xx\"} 1"))
      << text;
  EXPECT_TRUE(has_line(text, "fulcrum_http_request_duration_seconds_count{" + http + "} 1"))
      << text;
  EXPECT_TRUE(has_line(text, "fulcrum_http_upstream_response_seconds_count{" + http + "} 0"))
      << text;
  EXPECT_TRUE(has_line(text, "fulcrum_backend_connect_failures_total{" + http + backend + "} 1"))
      << text;

  // A worker whose loop has stopped cannot answer; the collection must not wait for it.
  workers_[1]->drain(0, [] {});
  workers_[1]->join();
  std::string after = collect_text();
  EXPECT_TRUE(has_line(after, "fulcrum_workers 2")) << after;
  EXPECT_NE(after.find("fulcrum_build_info{version=\"0.1.0\"} 1"), std::string::npos);
}

TEST_F(MetricsCollectorTest, BackendHealthFollowsTheSnapshot) {
  auto health = backend_health(*snap_);
  ASSERT_EQ(health.size(), 2u);  // one per listener: both send to group g
  for (const auto& h : health) {
    EXPECT_EQ(h.lb, "t");
    EXPECT_EQ(h.server_group, "g");
    EXPECT_EQ(h.status, metrics::BackendStatus::kUnchecked);
  }
}

}  // namespace
}  // namespace fulcrum::server
