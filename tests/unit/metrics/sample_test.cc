#include "metrics/sample.h"

#include <gtest/gtest.h>

namespace fulcrum::metrics {
namespace {

ListenerSample listener(std::string lb, std::string id, uint64_t connections) {
  ListenerSample s;
  s.lb = std::move(lb);
  s.listener = std::move(id);
  s.counters.connections = connections;
  s.counters.active = 1;
  return s;
}

BackendSample backend(std::string group, std::string name, uint64_t connections) {
  BackendSample b;
  b.server_group = std::move(group);
  b.backend = std::move(name);
  b.connections = connections;
  b.active = 1;
  return b;
}

TEST(Aggregate, SumsListenersAndBackendsAcrossWorkersInKeyOrder) {
  WorkerSample w0, w1;
  ListenerSample a0 = listener("shop", "http:8080", 3);
  a0.http = true;
  a0.responses_by_class[2] = 5;
  a0.request_duration.observe(1'000'000);
  a0.backends = {backend("web", "127.0.0.1:9002", 2), backend("web", "127.0.0.1:9001", 1)};
  ListenerSample a1 = listener("shop", "http:8080", 4);
  a1.http = true;
  a1.responses_by_class[2] = 1;
  a1.responses_by_class[5] = 2;
  a1.request_duration.observe(2'000'000);
  a1.backends = {backend("web", "127.0.0.1:9001", 10), backend("api", "127.0.0.1:9001", 7)};
  w0.listeners = {a0, listener("shop", "tcp:8000", 1)};
  w1.listeners = {listener("blog", "tcp:8000", 9), a1};

  std::vector<ListenerSample> out = aggregate({w0, w1});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].lb, "blog");
  EXPECT_EQ(out[1].listener, "http:8080");
  EXPECT_EQ(out[2].listener, "tcp:8000");

  const ListenerSample& http = out[1];
  EXPECT_TRUE(http.http);
  EXPECT_EQ(http.counters.connections, 7u);
  EXPECT_EQ(http.counters.active, 2u);
  EXPECT_EQ(http.responses_by_class[2], 6u);
  EXPECT_EQ(http.responses_by_class[5], 2u);
  EXPECT_EQ(http.request_duration.count(), 2u);
  EXPECT_EQ(http.request_duration.sum_ns, 3'000'000u);
  ASSERT_EQ(http.backends.size(), 3u);
  EXPECT_EQ(http.backends[0].server_group, "api");
  EXPECT_EQ(http.backends[1].backend, "127.0.0.1:9001");
  EXPECT_EQ(http.backends[1].connections, 11u);
  EXPECT_EQ(http.backends[1].active, 2u);
  EXPECT_EQ(http.backends[2].backend, "127.0.0.1:9002");
  EXPECT_FALSE(out[2].http);
}

TEST(Aggregate, SumsTlsCountersOfHttpsListeners) {
  WorkerSample w0, w1;
  ListenerSample a0 = listener("shop", "https:443", 1);
  a0.tls = true;
  a0.tls_counters.full = 2;
  a0.tls_counters.count_failure(base::TlsFailure::kTimeout);
  a0.tls_counters.alpn[static_cast<size_t>(base::TlsAlpn::kH2)] = 2;
  ListenerSample a1 = listener("shop", "https:443", 1);
  a1.tls = true;
  a1.tls_counters.resumed = 3;
  a1.tls_counters.count_failure(base::TlsFailure::kTimeout);
  a1.tls_counters.versions[static_cast<size_t>(base::TlsVersion::kTls1_3)] = 3;
  a1.tls_counters.sni_unmatched = 1;
  w0.listeners = {a0};
  w1.listeners = {a1};
  std::vector<ListenerSample> out = aggregate({w0, w1});
  ASSERT_EQ(out.size(), 1u);
  const base::TlsCounters& c = out[0].tls_counters;
  EXPECT_TRUE(out[0].tls);
  EXPECT_EQ(c.full, 2u);
  EXPECT_EQ(c.resumed, 3u);
  EXPECT_EQ(c.failures[static_cast<size_t>(base::TlsFailure::kTimeout)], 2u);
  EXPECT_EQ(c.failed(), 2u);
  EXPECT_EQ(c.alpn[static_cast<size_t>(base::TlsAlpn::kH2)], 2u);
  EXPECT_EQ(c.versions[static_cast<size_t>(base::TlsVersion::kTls1_3)], 3u);
  EXPECT_EQ(c.sni_unmatched, 1u);
}

TEST(Aggregate, NoWorkersNoListeners) {
  EXPECT_TRUE(aggregate({}).empty());
  EXPECT_TRUE(aggregate({WorkerSample{}, WorkerSample{}}).empty());
}

TEST(BackendSample, FromCopiesTheCounters) {
  base::BackendCounters c;
  c.group = "web";
  c.backend = "[::1]:80";
  c.connections = 4;
  c.active = 2;
  c.connect_failures = 1;
  c.responses_by_class[4] = 3;
  BackendSample s = BackendSample::from(c);
  EXPECT_EQ(s.server_group, "web");
  EXPECT_EQ(s.backend, "[::1]:80");
  EXPECT_EQ(s.connections, 4u);
  EXPECT_EQ(s.active, 2u);
  EXPECT_EQ(s.connect_failures, 1u);
  EXPECT_EQ(s.responses_by_class[4], 3u);
}

}  // namespace
}  // namespace fulcrum::metrics
