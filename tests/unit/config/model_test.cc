#include "config/model.h"

#include <gtest/gtest.h>

namespace fulcrum::config {
namespace {

TEST(Model, EnumNamesRoundTrip) {
  for (auto s :
       {Scheduler::kWrr, Scheduler::kRr, Scheduler::kWlc, Scheduler::kSch, Scheduler::kTch}) {
    EXPECT_EQ(parse_scheduler(to_string(s)), s);
  }
  for (auto p : {Protocol::kTcp, Protocol::kUdp, Protocol::kHttp, Protocol::kHttps}) {
    EXPECT_EQ(parse_protocol(to_string(p)), p);
  }
  for (auto p : {ProxyProtocol::kNone, ProxyProtocol::kV1, ProxyProtocol::kV2}) {
    EXPECT_EQ(parse_proxy_protocol(to_string(p)), p);
  }
  EXPECT_EQ(to_string(AllUnhealthy::kFailOpen), "fail_open");
  EXPECT_EQ(parse_all_unhealthy("fail_closed"), AllUnhealthy::kFailClosed);
  EXPECT_EQ(to_string(AclType::kBlack), "black");
  EXPECT_EQ(parse_acl_type("white"), AclType::kWhite);
  EXPECT_EQ(to_string(ListenerStatus::kStopped), "stopped");
  EXPECT_EQ(parse_listener_status("running"), ListenerStatus::kRunning);
}

TEST(Model, ParseIsExactAndCaseSensitive) {
  EXPECT_FALSE(parse_protocol("TCP"));
  EXPECT_FALSE(parse_protocol("tcp "));
  EXPECT_FALSE(parse_scheduler(""));
  EXPECT_FALSE(parse_proxy_protocol("v3"));
}

TEST(Model, ListenerId) {
  Listener l = default_listener(Protocol::kUdp);
  l.port = 53;
  EXPECT_EQ(l.id(), "udp:53");
  l.protocol = Protocol::kHttps;
  l.port = 443;
  EXPECT_EQ(l.id(), "https:443");
}

TEST(Model, DefaultsDependOnProtocol) {
  Listener tcp = default_listener(Protocol::kTcp);
  EXPECT_EQ(tcp.idle_timeout_ms, 900'000);
  EXPECT_EQ(tcp.health_check.type, "tcp");
  EXPECT_EQ(tcp.health_check.interval_ms, 2'000);
  EXPECT_EQ(tcp.health_check.timeout_ms, 5'000);

  Listener udp = default_listener(Protocol::kUdp);
  EXPECT_EQ(udp.idle_timeout_ms, 90'000);
  EXPECT_EQ(udp.health_check.type, "udp");
  EXPECT_EQ(udp.health_check.interval_ms, 5'000);
  EXPECT_EQ(udp.health_check.timeout_ms, 10'000);

  for (Protocol p : {Protocol::kHttp, Protocol::kHttps}) {
    Listener l = default_listener(p);
    EXPECT_EQ(l.idle_timeout_ms, 15'000);
    EXPECT_EQ(l.health_check.type, "http");
    EXPECT_EQ(l.health_check.method, "HEAD");
    EXPECT_EQ(l.health_check.uri, "/");
    EXPECT_EQ(l.health_check.http_codes, (std::vector<std::string>{"2xx", "3xx"}));
  }
}

TEST(Model, CommonDefaults) {
  Listener l = default_listener(Protocol::kTcp);
  EXPECT_EQ(l.status, ListenerStatus::kRunning);
  EXPECT_EQ(l.scheduler, Scheduler::kWrr);
  EXPECT_EQ(l.bandwidth_mbps, -1);
  EXPECT_EQ(l.drain_timeout_ms, 300'000);
  EXPECT_EQ(l.all_unhealthy, AllUnhealthy::kFailClosed);
  EXPECT_EQ(l.persistence_timeout_ms, 0);
  EXPECT_EQ(l.connect_timeout_ms, 5'000);
  EXPECT_EQ(l.proxy_protocol, ProxyProtocol::kNone);
  EXPECT_EQ(l.request_timeout_ms, 60'000);
  EXPECT_TRUE(l.gzip);
  EXPECT_TRUE(l.http2);
  EXPECT_FALSE(l.access_log);
  EXPECT_EQ(l.tls_policy, "tls_1_2");
  EXPECT_EQ(l.health_check.healthy_threshold, 3u);
  EXPECT_EQ(l.health_check.unhealthy_threshold, 3u);
  EXPECT_TRUE(l.health_check.enabled);

  LoadBalancer lb;
  EXPECT_EQ(lb.address_type, "intranet");
  EXPECT_EQ(lb.status, "active");
  EXPECT_EQ(lb.bandwidth_mbps, -1);
  EXPECT_EQ(lb.charge_type, "pay_by_traffic");
  EXPECT_EQ(Backend{}.weight, 100u);
  EXPECT_EQ(Certificate{}.type, "server");
}

}  // namespace
}  // namespace fulcrum::config
