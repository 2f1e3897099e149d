#include "views.h"

#include <gtest/gtest.h>

namespace fulcrum::ctl {
namespace {

const Json kLb = Json::parse(R"({
  "name": "web", "address": "127.0.0.1", "address_type": "intranet", "status": "active",
  "bandwidth_mbps": -1, "charge_type": "pay_by_traffic",
  "server_groups": [
    {"name": "app", "backends": [
      {"address": "127.0.0.1", "port": 9001, "weight": 100},
      {"address": "::1", "port": 9002, "weight": 50, "zone": "z1", "description": "spare"}]},
    {"name": "empty", "backends": []}],
  "listeners": [
    {"protocol": "http", "port": 8080, "server_group": "app", "status": "running",
     "scheduler": "wrr", "rules": [
       {"name": "api", "domain": "api.example.com", "path": "/v1", "server_group": "app"},
       {"name": "old", "path": "/old", "redirect": "https://example.com/"}]},
    {"protocol": "tcp", "port": 5000, "server_group": "app", "status": "stopped",
     "scheduler": "sch"}]
})");

const Json kHealth = Json::parse(R"({"loadbalancer": "web", "listeners": [
  {"listener": "http:8080", "status": "running", "server_groups": [
    {"server_group": "app", "backends": [
      {"backend": "127.0.0.1:9001", "weight": 100, "status": "healthy"},
      {"backend": "[::1]:9002", "weight": 50, "status": "unhealthy"}]}]}]})");

TEST(Views, LoadBalancers) {
  EXPECT_EQ(loadbalancers_table(Json::array({kLb})),
            "NAME   ADDRESS     TYPE       STATUS   LISTENERS            GROUPS\n"
            "web    127.0.0.1   intranet   active   http:8080,tcp:5000   app,empty\n");
}

TEST(Views, ListenersGroupsBackendsRules) {
  EXPECT_EQ(listeners_table(kLb["listeners"]),
            "LISTENER    STATUS    GROUP   SCHEDULER   RULES\n"
            "http:8080   running   app     wrr         2\n"
            "tcp:5000    stopped   app     sch         -\n");
  EXPECT_EQ(servergroups_table(kLb["server_groups"]),
            "NAME    BACKENDS   ADDRESSES\n"
            "app     2          127.0.0.1:9001,[::1]:9002\n"
            "empty   0          -\n");
  EXPECT_EQ(backends_table(kLb["server_groups"][0]["backends"]),
            "ADDRESS     PORT   WEIGHT   ZONE   DESCRIPTION\n"
            "127.0.0.1   9001   100      -      -\n"
            "::1         9002   50       z1     spare\n");
  EXPECT_EQ(rules_table(kLb["listeners"][0]["rules"]),
            "NAME   DOMAIN            PATH   TARGET\n"
            "api    api.example.com   /v1    app\n"
            "old    -                 /old   redirect https://example.com/\n");
}

TEST(Views, CertificatesAndAcls) {
  Json certs = Json::parse(R"([{"name": "web", "type": "server",
    "cert": "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n"}])");
  EXPECT_EQ(certificates_table(certs), "NAME   TYPE     CHAIN\nweb    server   2\n");
  Json acls = Json::parse(R"([{"name": "office", "entries": [
    {"cidr": "10.0.0.0/8", "comment": "a"}, {"cidr": "192.168.0.0/16"}]}])");
  EXPECT_EQ(acls_table(acls),
            "NAME     ENTRIES   CIDRS\noffice   2         10.0.0.0/8,192.168.0.0/16\n");
}

TEST(Views, Health) {
  EXPECT_EQ(health_table(kHealth),
            "LISTENER    GROUP   BACKEND          STATUS      WEIGHT\n"
            "http:8080   app     127.0.0.1:9001   healthy     100\n"
            "http:8080   app     [::1]:9002       unhealthy   50\n");
}

TEST(Views, DescribeHasEverySection) {
  std::string text = describe_loadbalancer(kLb, kHealth);
  for (const char* want :
       {"Name:           web\n", "Address:        127.0.0.1\n", "Bandwidth:      unlimited\n",
        "\nListeners:\n  LISTENER", "\nServer groups:\n  NAME", "\nHealth:\n  LISTENER",
        "  http:8080   app     127.0.0.1:9001   healthy"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
  std::string limited =
      describe_loadbalancer(Json::parse(R"({"name": "x", "bandwidth_mbps": 100})"), Json::object());
  EXPECT_NE(
      limited.find("Bandwidth:      100 Mbit/s (not enforced: this version refuses limits)\n"),
      std::string::npos)
      << limited;
  std::string bare = describe_loadbalancer(Json::parse(R"({"name": "x"})"), Json::object());
  EXPECT_NE(bare.find("Listeners:\n  (none)\n"), std::string::npos) << bare;
  EXPECT_NE(bare.find("Health:\n  (no running listener)\n"), std::string::npos) << bare;
}

TEST(Views, Explain) {
  std::string text = explain_text(Json::parse(R"({"loadbalancer": "web", "listener": "http:8080",
    "listener_status": "running", "client": "10.0.0.1:4000", "scheduler": "wrr", "host": "",
    "path": "/", "rule": null, "server_group": "app", "backend": "127.0.0.1:9001",
    "backend_status": "healthy", "reason": "first pick"})"));
  EXPECT_NE(text.find("Rule:           (none: the listener's default group)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("Backend:        127.0.0.1:9001 (healthy)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Reason:         first pick\n"), std::string::npos) << text;
  std::string redirect = explain_text(Json::parse(
      R"({"listener": "http:80", "host": "a", "path": "/old", "rule": "old",
          "redirect": "https://x/"})"));
  EXPECT_NE(redirect.find("Redirect:       https://x/\n"), std::string::npos) << redirect;
  EXPECT_EQ(redirect.find("Backend"), std::string::npos);
}

TEST(Views, Apply) {
  EXPECT_EQ(apply_text(Json::parse(R"({"dry_run": false, "changes": [
      {"op": "create", "key": "/fulcrum/lb/web"}, {"op": "update", "key": "/fulcrum/acl/a"},
      {"op": "delete", "key": "/fulcrum/certificate/c"}], "revision": 7, "generation": 3})")),
            "+ create /fulcrum/lb/web\n~ update /fulcrum/acl/a\n- delete /fulcrum/certificate/c\n"
            "applied: revision 7, generation 3\n");
  EXPECT_EQ(apply_text(Json::parse(R"({"dry_run": true, "changes": [
      {"op": "create", "key": "/fulcrum/lb/web"}], "revision": 7, "generation": 3})")),
            "+ create /fulcrum/lb/web\ndry run: valid, nothing was changed (revision 7)\n");
  EXPECT_EQ(apply_text(Json::parse(R"({"dry_run": false, "changes": [], "revision": 7})")),
            "no changes (revision 7)\n");
}

TEST(Views, StatusAndCells) {
  std::string text = status_text(Json::parse(R"({"node": "n1", "zone": "", "ready": true,
                                               "revision": 4})"));
  EXPECT_NE(text.find("Node:           n1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Zone:           -\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Ready:          true\n"), std::string::npos) << text;
  EXPECT_EQ(cell(Json::parse(R"({"a": 1.5})"), "a"), "1.5");
  EXPECT_EQ(cell(Json::parse(R"({"a": null})"), "a"), "");
  EXPECT_EQ(cell(Json::array(), "a"), "");
}

TEST(Views, StatusStoreObjectOfClusterMode) {
  std::string text = status_text(Json::parse(R"({"node": "n1", "zone": "zone-a",
    "store": {"kind": "etcd", "endpoints": ["http://127.0.0.1:23791", "http://127.0.0.1:23792"],
              "revision": 42, "reachable": false},
    "config_source": "cache", "revision": 40, "generation": 7, "ready": true})"));
  EXPECT_EQ(text,
            "Node:           n1\n"
            "Zone:           zone-a\n"
            "Store:          etcd\n"
            "Endpoints:      http://127.0.0.1:23791,http://127.0.0.1:23792\n"
            "Store revision: 42\n"
            "Reachable:      false\n"
            "Config source:  cache\n"
            "Revision:       40\n"
            "Generation:     7\n"
            "Workers:        -\n"
            "Ready:          true\n"
            "Started (ms):   -\n");
  std::string sqlite = status_text(Json::parse(R"({"node": "n1",
    "store": {"kind": "sqlite", "endpoints": ["fulcrum-data/fulcrum.db"], "revision": 3,
              "reachable": true}, "config_source": "store"})"));
  EXPECT_NE(sqlite.find("Store:          sqlite\nStore file:     fulcrum-data/fulcrum.db\n"
                        "Store revision: 3\nReachable:      true\nConfig source:  store\n"),
            std::string::npos)
      << sqlite;
}

TEST(Views, StatusStoreStringOfOlderServers) {
  std::string text = status_text(Json::parse(R"({"node": "lb-1", "store":
    "sqlite:fulcrum-data/fulcrum.db", "revision": 6})"));
  EXPECT_NE(text.find("Store:          sqlite:fulcrum-data/fulcrum.db\nRevision:       6\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("Endpoints"), std::string::npos) << text;
  EXPECT_EQ(text.find("Config source"), std::string::npos) << text;
  // An empty store object (a partial answer) still prints every line, with "-".
  std::string bare = status_text(Json::parse(R"({"store": {}})"));
  EXPECT_NE(bare.find("Store:          -\nEndpoints:      -\nStore revision: -\n"
                      "Reachable:      -\n"),
            std::string::npos)
      << bare;
}

const Json kNodes = Json::parse(R"([
  {"name": "n1", "zone": "zone-a", "admin": "http://127.0.0.1:9911", "state": "up",
   "revision": 12, "generation": 5, "last_seen": "2025-06-01T10:00:00Z",
   "last_seen_unix_ms": 1748772000000},
  {"name": "n3", "zone": "", "admin": "http://127.0.0.1:9913", "state": "down",
   "revision": 9, "generation": 3, "last_seen_unix_ms": 1748771880500}])");

TEST(Views, NodesTable) {
  EXPECT_EQ(nodes_table(kNodes),
            "NAME   ZONE     STATE   REVISION   GENERATION   LAST-SEEN              ADMIN\n"
            "n1     zone-a   up      12         5            2025-06-01T10:00:00Z   "
            "http://127.0.0.1:9911\n"
            "n3     -        down    9          3            2025-06-01T09:58:00Z   "
            "http://127.0.0.1:9913\n");
  std::string aged = nodes_table(kNodes, 1748772004000);
  EXPECT_NE(aged.find("2025-06-01T10:00:00Z (4s ago)"), std::string::npos) << aged;
  EXPECT_NE(aged.find("2025-06-01T09:58:00Z (2m ago)"), std::string::npos) << aged;
  EXPECT_EQ(nodes_table(Json::array()),
            "NAME   ZONE   STATE   REVISION   GENERATION   LAST-SEEN   ADMIN\n");
  // Missing fields are "-"; no last_seen at all means no age either.
  EXPECT_EQ(nodes_table(Json::parse(R"([{"name": "x"}])"), 1748772004000),
            "NAME   ZONE   STATE   REVISION   GENERATION   LAST-SEEN   ADMIN\n"
            "x      -      -       -          -            -           -\n");
}

TEST(Views, TimesAndAges) {
  EXPECT_EQ(rfc3339_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(rfc3339_utc(1748772000999), "2025-06-01T10:00:00Z");
  EXPECT_EQ(age_text(-5), "0s");
  EXPECT_EQ(age_text(119'999), "119s");
  EXPECT_EQ(age_text(120'000), "2m");
  EXPECT_EQ(age_text(3 * 3600'000), "3h");
  EXPECT_EQ(age_text(72 * 3600'000LL), "3d");
}

}  // namespace
}  // namespace fulcrum::ctl
