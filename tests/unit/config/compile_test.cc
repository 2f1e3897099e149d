#include "config/compile.h"

#include <gtest/gtest.h>

#include <string>

#include "config/validate.h"

namespace fulcrum::config {
namespace {

using Access = snapshot::AccessControl::Type;

// Load balancer "web" with listeners tcp:80, udp:53 and http:8080 and the ACLs "office"
// (127.0.0.2 and 10.0.0.0/8) and "nobody" (no entry).
Config acl_config() {
  Config c;
  LoadBalancer lb;
  lb.name = "web";
  lb.address = "127.0.0.1";
  ServerGroup app;
  app.name = "app";
  app.backends = {Backend{"127.0.0.1", 9001, 100, "", ""}};
  lb.server_groups = {app};
  for (auto [p, port] :
       {std::pair{Protocol::kTcp, 80}, {Protocol::kUdp, 53}, {Protocol::kHttp, 8080}}) {
    Listener l = default_listener(p);
    l.port = static_cast<uint16_t>(port);
    l.server_group = "app";
    lb.listeners.push_back(l);
  }
  c.loadbalancers = {lb};
  c.acls = {Acl{"office", {AclEntry{"127.0.0.2", "a host"}, AclEntry{"10.0.0.0/8", "office"}}},
            Acl{"nobody", {}}};
  return c;
}

std::shared_ptr<const snapshot::Snapshot> compiled(const Config& c) {
  EXPECT_TRUE(validate(c).ok()) << validate(c).error().to_string();
  auto out = compile(c, 1);
  EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().to_string());
  return out.ok() ? out->snapshot : nullptr;
}

net::SocketAddress addr(const char* ip) {
  return *net::SocketAddress::from_ip_port(ip, 5000);
}

TEST(CompileAcl, NoAclAllowsEveryone) {
  auto snap = compiled(acl_config());
  ASSERT_TRUE(snap);
  for (const auto& l : snap->listeners) {
    EXPECT_EQ(l->access.type, Access::kNone) << l->id;
    EXPECT_TRUE(l->access.allows(addr("192.0.2.1")));
  }
}

TEST(CompileAcl, WhiteAndBlackListsOnEveryProtocol) {
  Config c = acl_config();
  for (Listener& l : c.loadbalancers[0].listeners) l.acl = AclRef{AclType::kWhite, "office"};
  auto snap = compiled(c);
  ASSERT_TRUE(snap);
  for (const auto& l : snap->listeners) {
    EXPECT_EQ(l->access.type, Access::kWhite) << l->id;
    EXPECT_EQ(l->access.acl, "office");
    EXPECT_TRUE(l->access.allows(addr("127.0.0.2"))) << l->id;
    EXPECT_TRUE(l->access.allows(addr("::ffff:10.9.8.7"))) << l->id;
    EXPECT_FALSE(l->access.allows(addr("127.0.0.3"))) << l->id;
  }
  // One matcher per ACL, shared by the listeners that name it.
  EXPECT_EQ(snap->listeners[0]->access.matcher, snap->listeners[2]->access.matcher);

  for (Listener& l : c.loadbalancers[0].listeners) l.acl = AclRef{AclType::kBlack, "office"};
  snap = compiled(c);
  ASSERT_TRUE(snap);
  for (const auto& l : snap->listeners) {
    EXPECT_EQ(l->access.type, Access::kBlack) << l->id;
    EXPECT_FALSE(l->access.allows(addr("127.0.0.2"))) << l->id;
    EXPECT_TRUE(l->access.allows(addr("127.0.0.3"))) << l->id;
  }
}

// PRODUCT.md §2: an empty white list drops everything on L4 and allows everything on L7.
TEST(CompileAcl, EmptyWhiteListRefusesAllOnL4AndAllowsAllOnL7) {
  Config c = acl_config();
  for (Listener& l : c.loadbalancers[0].listeners) l.acl = AclRef{AclType::kWhite, "nobody"};
  auto snap = compiled(c);
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->listeners.size(), 3u);
  EXPECT_EQ(snap->listeners[0]->access.type, Access::kWhite);  // tcp
  EXPECT_FALSE(snap->listeners[0]->access.allows(addr("127.0.0.1")));
  EXPECT_EQ(snap->listeners[1]->access.type, Access::kWhite);  // udp
  EXPECT_FALSE(snap->listeners[1]->access.allows(addr("::1")));
  EXPECT_EQ(snap->listeners[2]->access.type, Access::kNone);  // http
  EXPECT_TRUE(snap->listeners[2]->access.allows(addr("127.0.0.1")));

  for (Listener& l : c.loadbalancers[0].listeners) l.acl = AclRef{AclType::kBlack, "nobody"};
  snap = compiled(c);
  ASSERT_TRUE(snap);
  for (const auto& l : snap->listeners) EXPECT_TRUE(l->access.allows(addr("127.0.0.1")));
}

// Valid in the model, not served by this build: refused with the field, never silently ignored.
TEST(CompileRefuses, BandwidthLimitsOfLoadBalancersAndListeners) {
  Config c = acl_config();
  c.loadbalancers[0].bandwidth_mbps = 100;
  ASSERT_TRUE(validate(c).ok());
  auto out = compile(c, 1);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().to_string(),
            "loadbalancers[0].bandwidth_mbps: bandwidth limits are not enforced by this version; "
            "use -1");

  c = acl_config();
  c.loadbalancers[0].listeners[1].bandwidth_mbps = 10;
  ASSERT_TRUE(validate(c).ok());
  out = compile(c, 1);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().to_string(),
            "loadbalancers[0].listeners[1].bandwidth_mbps: bandwidth limits are not enforced by "
            "this version; use -1");

  c = acl_config();
  c.loadbalancers[0].bandwidth_mbps = -1;
  EXPECT_TRUE(compiled(c));
}

}  // namespace
}  // namespace fulcrum::config
