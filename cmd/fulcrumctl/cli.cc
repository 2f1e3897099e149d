#include "cli.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "client/discovery.h"
#include "client/http_client.h"
#include "client/url.h"
#include "document.h"
#include "http/message.h"
#include "views.h"

namespace fulcrum::ctl {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Globals {
  std::string server;
  std::string token;
  std::string data_dir = std::string(client::kDefaultDataDir);
  std::string output = "table";
  double timeout_s = 30;  // the longest silence of the server on one call
};

// Every value a verb may take; CLI11 writes into it while parsing.
struct Args {
  std::string name, lb, group, listener, backend, rule;
  std::string address, address_type, scheduler, server_group, domain, path, redirect;
  std::string cert, key, type, file, client, host;
  std::vector<std::string> entries;
  int64_t weight = 0;
  std::string zone, description;
  bool dry_run = false;
  // Options whose presence matters (not only their value).
  CLI::Option* weight_opt = nullptr;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "fulcrumctl: %s\n", message.c_str());
  return kExitFailed;
}

int usage(const std::string& message) {
  std::fprintf(stderr, "fulcrumctl: %s\nRun with --help for more information.\n", message.c_str());
  return kExitUsage;
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::optional<std::string> non_empty(const std::string& v) {
  if (v.empty()) return std::nullopt;
  return v;
}

// "http:8080" -> {"http", 8080}; nullopt when it is not PROTO:PORT.
std::optional<std::pair<std::string, int64_t>> split_listener(const std::string& id) {
  size_t colon = id.find(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string_view port = std::string_view(id).substr(colon + 1);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || port.empty()) return std::nullopt;
  return std::pair{id.substr(0, colon), value};
}

// "1.2.3.4:80" / "[::1]:80" -> {"1.2.3.4", 80}; the address itself is checked by the API.
std::optional<std::pair<std::string, int64_t>> split_backend(const std::string& text) {
  std::string address;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    address = text.substr(1, close - 1);
    port = std::string_view(text).substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    address = text.substr(0, colon);
    if (address.find(':') != std::string::npos) return std::nullopt;  // IPv6 needs brackets
    port = std::string_view(text).substr(colon + 1);
  }
  int64_t value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || port.empty()) return std::nullopt;
  return std::pair{address, value};
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string seg(const std::string& s) {
  return client::percent_encode(s);
}
std::string lb_path(const std::string& lb) {
  return "/v1/loadbalancers/" + seg(lb);
}
std::string listener_path(const std::string& lb, const std::string& listener) {
  return lb_path(lb) + "/listeners/" + seg(listener);
}
std::string group_path(const std::string& lb, const std::string& group) {
  return lb_path(lb) + "/servergroups/" + seg(group);
}

// One fulcrumctl run's connection to the API: where it is, the token, how answers print.
class Session {
 public:
  explicit Session(const Globals& g) : globals_(g) {}

  // Discovers the server and token; false (after printing why) when the URL is unusable.
  bool open() {
    client::DiscoveryInput in;
    in.server_flag = non_empty(globals_.server);
    in.server_env = env("FULCRUM_SERVER");
    in.token_flag = non_empty(globals_.token);
    in.token_env = env("FULCRUM_TOKEN");
    in.data_dir = globals_.data_dir;
    found_ = client::discover(in);
    auto url = client::parse_url(found_.server);
    if (!url.ok()) {
      fail(url.error().message + " (from " + source_of_server() + ")");
      return false;
    }
    url_ = *url;
    timeouts_.read_ms = static_cast<int>(globals_.timeout_s * 1000);
    return true;
  }

  // One call. 2xx: the answer's JSON (null for an empty body). Otherwise an error whose message
  // is what fulcrumctl prints: the API's message, the field, the status and code.
  base::Result<Json> call(const std::string& method, const std::string& target,
                          const std::string& body = "",
                          const std::string& content_type = "application/json") {
    client::Request req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.content_type = content_type;
    req.token = found_.token;
    auto resp = client::send(url_, req, timeouts_);
    if (!resp.ok()) {
      return base::Error::internal(resp.error().message + "\n  " + client::discovery_help(found_));
    }
    Json answer;
    bool json_ok = true;
    if (!resp->body.empty()) {
      try {
        answer = Json::parse(resp->body);
      } catch (const Json::exception&) {
        json_ok = false;
      }
    }
    uint16_t status = resp->status;
    if (status / 100 == 2) {
      if (!json_ok) {
        return base::Error::internal("the server answered " + std::to_string(status) +
                                     " with a body that is not JSON (is " + url_.to_string() +
                                     " a fulcrumd admin API?)");
      }
      return answer;
    }
    std::string message, field, code;
    if (json_ok && answer.is_object() && answer.contains("error") && answer["error"].is_object()) {
      const Json& e = answer["error"];
      message = cell(e, "message");
      field = cell(e, "field");
      code = cell(e, "code");
    } else {
      std::string text = resp->body.substr(0, 200);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      message = text.empty() ? std::string(http::reason_phrase(status)) : text;
    }
    if (code.empty()) code = std::string(http::reason_phrase(status));
    std::string out = message;
    if (!field.empty()) out += " (field: " + field + ")";
    out += " [" + std::to_string(status) + " " + code + "]";
    if (status == 401) out += "\n  " + token_hint();
    return base::Error::internal(out);
  }

  // Prints `answer` as -o asks: JSON, YAML, or the table text.
  void print(const Json& answer, const std::string& table) const {
    if (globals_.output == "json") {
      std::fputs(to_json_text(answer).c_str(), stdout);
    } else if (globals_.output == "yaml") {
      std::fputs(to_yaml(answer).c_str(), stdout);
    } else {
      std::fputs(table.c_str(), stdout);
    }
  }

  bool table_mode() const { return globals_.output == "table"; }

 private:
  std::string source_of_server() const {
    return client::describe_source(found_.server_source, "--server", "FULCRUM_SERVER",
                                   client::url_file(found_.data_dir));
  }

  std::string token_hint() const {
    if (found_.token_source == client::Source::kNone) {
      std::string hint = "no token was given: pass --token, set FULCRUM_TOKEN, or run where " +
                         client::token_file(found_.data_dir) +
                         " is readable (choose the folder with --data-dir)";
      if (!found_.token_file_problem.empty()) hint += "; " + found_.token_file_problem;
      return hint;
    }
    return "the token from " +
           client::describe_source(found_.token_source, "--token", "FULCRUM_TOKEN",
                                   client::token_file(found_.data_dir)) +
           " was refused (a token of another fulcrumd, or an old one?)";
  }

  const Globals& globals_;
  client::Discovered found_;
  client::Url url_;
  client::Timeouts timeouts_;
};

// A mutation's answer: the confirmation line in table mode, the answer otherwise.
int done(Session& s, const base::Result<Json>& r, const std::string& confirmation) {
  if (!r.ok()) return fail(r.error().message);
  if (s.table_mode()) {
    std::printf("%s\n", confirmation.c_str());
  } else if (!r->is_null()) {
    s.print(*r, "");
  }
  return kExitOk;
}

// A GET shown as a table of the array under `key` (or of the whole answer when key is empty).
int show(Session& s, const std::string& target, const char* key,
         std::string (*table)(const Json&)) {
  auto r = s.call("GET", target);
  if (!r.ok()) return fail(r.error().message);
  const Json& list = key == nullptr ? *r : (r->is_object() && r->contains(key) ? (*r)[key] : *r);
  s.print(*r, table(list));
  return kExitOk;
}

// The object of `create KIND -f FILE`, or an empty object without -f.
base::Result<Json> base_object(const Args& a, Shape shape) {
  if (a.file.empty()) return Json::object();
  auto doc = load_document(a.file, shape);
  if (!doc.ok()) return doc.take_error();
  if (!doc->json.is_object()) {
    return base::Error::internal(a.file + ": must hold one object (a mapping)");
  }
  return std::move(doc->json);
}

// --- Verbs ----------------------------------------------------------------------------------

int do_apply(Session& s, const Args& a) {
  auto doc = load_document(a.file, Shape::kDocument);
  if (!doc.ok()) return fail(doc.error().to_string());
  auto r = s.call("POST", a.dry_run ? "/v1/apply?dry_run=true" : "/v1/apply", doc->body,
                  doc->content_type);
  if (!r.ok()) return fail(r.error().message);
  s.print(*r, apply_text(*r));
  return kExitOk;
}

int do_get_lb(Session& s, const Args& a) {
  if (a.name.empty()) return show(s, "/v1/loadbalancers", "loadbalancers", loadbalancers_table);
  auto r = s.call("GET", lb_path(a.name));
  if (!r.ok()) return fail(r.error().message);
  s.print(*r, loadbalancers_table(Json::array({*r})));
  return kExitOk;
}

int do_get_backends(Session& s, const Args& a) {
  auto r = s.call("GET", group_path(a.lb, a.group));
  if (!r.ok()) return fail(r.error().message);
  const Json& backends = r->is_object() && r->contains("backends") ? (*r)["backends"] : Json();
  // -o json/yaml show the backends list, the same thing the table shows.
  s.print(backends.is_null() ? Json::array() : backends, backends_table(backends));
  return kExitOk;
}

int do_describe_lb(Session& s, const Args& a) {
  auto lb = s.call("GET", lb_path(a.name));
  if (!lb.ok()) return fail(lb.error().message);
  auto health = s.call("GET", lb_path(a.name) + "/health");
  if (!health.ok()) return fail(health.error().message);
  Json both = {{"loadbalancer", *lb}, {"health", *health}};
  s.print(both, describe_loadbalancer(*lb, *health));
  return kExitOk;
}

int do_create_lb(Session& s, const Args& a) {
  auto body = base_object(a, Shape::kObject);
  if (!body.ok()) return fail(body.error().to_string());
  if (!a.name.empty()) (*body)["name"] = a.name;
  if (!a.address.empty()) (*body)["address"] = a.address;
  if (!a.address_type.empty()) (*body)["address_type"] = a.address_type;
  if (a.file.empty() && (a.name.empty() || a.address.empty())) {
    return usage("create lb: give NAME and --address (or -f FILE)");
  }
  std::string name = cell(*body, "name");
  return done(s, s.call("POST", "/v1/loadbalancers", body->dump()),
              "load balancer " + name + " created");
}

int do_create_servergroup(Session& s, const Args& a) {
  auto body = base_object(a, Shape::kObject);
  if (!body.ok()) return fail(body.error().to_string());
  if (!a.name.empty()) (*body)["name"] = a.name;
  if (a.file.empty() && a.name.empty()) return usage("create servergroup: give LB NAME");
  if (!body->contains("backends")) (*body)["backends"] = Json::array();
  return done(s, s.call("POST", lb_path(a.lb) + "/servergroups", body->dump()),
              "server group " + cell(*body, "name") + " created in " + a.lb);
}

int do_create_listener(Session& s, const Args& a) {
  auto body = base_object(a, Shape::kObject);
  if (!body.ok()) return fail(body.error().to_string());
  if (!a.listener.empty()) {
    auto id = split_listener(a.listener);
    if (!id) return usage("create listener: '" + a.listener + "' is not PROTO:PORT (http:8080)");
    (*body)["protocol"] = id->first;
    (*body)["port"] = id->second;
  }
  if (!a.server_group.empty()) (*body)["server_group"] = a.server_group;
  if (!a.scheduler.empty()) (*body)["scheduler"] = a.scheduler;
  if (a.file.empty() && (a.listener.empty() || a.server_group.empty())) {
    return usage("create listener: give LB PROTO:PORT and --server-group (or -f FILE)");
  }
  return done(s, s.call("POST", lb_path(a.lb) + "/listeners", body->dump()),
              "listener " + listener_id(*body) + " created in " + a.lb);
}

int do_create_rule(Session& s, const Args& a) {
  auto body = base_object(a, Shape::kObject);
  if (!body.ok()) return fail(body.error().to_string());
  if (!a.name.empty()) (*body)["name"] = a.name;
  if (!a.domain.empty()) (*body)["domain"] = a.domain;
  if (!a.path.empty()) (*body)["path"] = a.path;
  if (!a.server_group.empty()) (*body)["server_group"] = a.server_group;
  if (!a.redirect.empty()) (*body)["redirect"] = a.redirect;
  if (!a.server_group.empty() && !a.redirect.empty()) {
    return usage("create rule: --server-group and --redirect exclude each other");
  }
  if (a.file.empty() && (a.name.empty() || (a.server_group.empty() && a.redirect.empty()))) {
    return usage("create rule: give LB LISTENER NAME and --server-group or --redirect");
  }
  return done(s, s.call("POST", listener_path(a.lb, a.listener) + "/rules", body->dump()),
              "rule " + cell(*body, "name") + " created in " + a.lb + " " + a.listener);
}

int do_create_cert(Session& s, const Args& a) {
  auto body = base_object(a, Shape::kCertificate);
  if (!body.ok()) return fail(body.error().to_string());
  if (!a.name.empty()) (*body)["name"] = a.name;
  if (!a.type.empty()) (*body)["type"] = a.type;
  if (!a.cert.empty()) {
    auto pem = read_file(a.cert);
    if (!pem.ok()) return fail(pem.error().message);
    (*body)["cert"] = *pem;
  }
  if (!a.key.empty()) {
    auto pem = read_file(a.key);
    if (!pem.ok()) return fail(pem.error().message);
    (*body)["key"] = *pem;
  }
  if (a.file.empty() && (a.name.empty() || a.cert.empty())) {
    return usage("create cert: give NAME --cert FILE --key FILE (or -f FILE)");
  }
  if (!body->contains("type")) (*body)["type"] = "server";
  return done(s, s.call("POST", "/v1/certificates", body->dump()),
              "certificate " + cell(*body, "name") + " created");
}

int do_create_acl(Session& s, const Args& a) {
  auto body = base_object(a, Shape::kObject);
  if (!body.ok()) return fail(body.error().to_string());
  if (!a.name.empty()) (*body)["name"] = a.name;
  if (!a.entries.empty()) {
    Json entries = Json::array();
    for (const std::string& e : a.entries) {
      size_t eq = e.find('=');
      Json entry = {{"cidr", e.substr(0, eq)}};
      if (eq != std::string::npos) entry["comment"] = e.substr(eq + 1);
      entries.push_back(std::move(entry));
    }
    (*body)["entries"] = std::move(entries);
  }
  if (a.file.empty() && a.name.empty()) return usage("create acl: give NAME --entry CIDR...");
  if (!body->contains("entries")) (*body)["entries"] = Json::array();
  return done(s, s.call("POST", "/v1/acls", body->dump()),
              "acl " + cell(*body, "name") + " created");
}

int do_add_backend(Session& s, const Args& a) {
  auto where = split_backend(a.backend);
  if (!where) {
    return usage("add-backend: '" + a.backend + "' is not ADDRESS:PORT ([v6]:PORT for IPv6)");
  }
  Json body = {{"address", where->first}, {"port", where->second}};
  if (a.weight_opt != nullptr && a.weight_opt->count() > 0) body["weight"] = a.weight;
  if (!a.zone.empty()) body["zone"] = a.zone;
  if (!a.description.empty()) body["description"] = a.description;
  return done(s, s.call("POST", group_path(a.lb, a.group) + "/backends", body.dump()),
              "backend " + a.backend + " added to " + a.lb + "/" + a.group);
}

int do_remove_backend(Session& s, const Args& a) {
  if (!split_backend(a.backend)) {
    return usage("remove-backend: '" + a.backend + "' is not ADDRESS:PORT ([v6]:PORT for IPv6)");
  }
  return done(s, s.call("DELETE", group_path(a.lb, a.group) + "/backends/" + seg(a.backend)),
              "backend " + a.backend + " removed from " + a.lb + "/" + a.group +
                  " (its connections drain)");
}

int do_listener_action(Session& s, const Args& a, const std::string& action) {
  if (!split_listener(a.listener)) {
    return usage("'" + a.listener + "' is not PROTO:PORT (http:8080)");
  }
  auto r = s.call("POST", listener_path(a.lb, a.listener) + "/" + action);
  return done(
      s, r,
      "listener " + a.listener + " of " + a.lb + " " + (action == "start" ? "started" : "stopped"));
}

int do_explain(Session& s, const Args& a) {
  std::string target = listener_path(a.lb, a.listener) + "/explain?client=" + seg(a.client);
  if (!a.host.empty()) target += "&host=" + seg(a.host);
  if (!a.path.empty()) target += "&path=" + seg(a.path);
  auto r = s.call("GET", target);
  if (!r.ok()) return fail(r.error().message);
  s.print(*r, explain_text(*r));
  return kExitOk;
}

// --- Command line -----------------------------------------------------------------------------

using Action = std::function<int(Session&)>;

// Registers a leaf subcommand whose callback chooses `action`.
CLI::App* leaf(CLI::App* parent, const std::string& name, const std::string& help, Action* chosen,
               Action action) {
  CLI::App* app = parent->add_subcommand(name, help);
  app->callback([chosen, action = std::move(action)] { *chosen = action; });
  return app;
}

// A verb that takes a kind (`get lb`). Not marked "subcommand required": CLI11 would then say
// only that, even for a misspelt kind; run() names the kinds instead.
CLI::App* group(CLI::App* parent, const std::string& name, const std::string& help) {
  return parent->add_subcommand(name, help);
}

// "lb, listeners, ..." for a verb without its kind.
std::string kinds(const CLI::App& verb) {
  std::string out;
  for (const CLI::App* sub : verb.get_subcommands({})) {
    if (!out.empty()) out += ", ";
    out += sub->get_name();
  }
  return out;
}

}  // namespace

int run(int argc, char** argv) {
  Globals g;
  Args a;
  Action chosen;

  CLI::App app{
      "fulcrumctl: the command-line client of the Fulcrum admin API.\n"
      "Finds the server in --server, $FULCRUM_SERVER, <data-dir>/admin.url or "
      "http://127.0.0.1:9901,\nand the token in --token, $FULCRUM_TOKEN or "
      "<data-dir>/admin.token."};
  app.name("fulcrumctl");
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "fulcrumctl: " + std::string(e.what()) + "\nRun with --help for more information.\n";
  });
  app.fallthrough();  // global options may come after the verb: `fulcrumctl get lb -o json`
  app.add_option("--server", g.server, "admin API URL, http://HOST:PORT (env FULCRUM_SERVER)");
  app.add_option("--token", g.token, "API token (env FULCRUM_TOKEN; never printed)");
  app.add_option("--data-dir", g.data_dir, "fulcrumd's data folder, for discovery")
      ->capture_default_str();
  app.add_option("-o,--output", g.output, "output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_s, "seconds to wait for an answer")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  // apply
  CLI::App* apply = leaf(&app, "apply", "apply a whole YAML/JSON document atomically", &chosen,
                         [&](Session& s) { return do_apply(s, a); });
  apply->add_option("-f,--file", a.file, "the document (.yaml, .yml or .json; - for stdin)")
      ->required();
  apply->add_flag("--dry-run", a.dry_run, "validate and show the changes, change nothing");

  // get
  CLI::App* get = group(&app, "get", "list resources");
  leaf(get, "lb", "load balancers (or one: get lb NAME)", &chosen,
       [&](Session& s) { return do_get_lb(s, a); })
      ->alias("lbs")
      ->alias("loadbalancers")
      ->add_option("NAME", a.name, "a load balancer");
  CLI::App* c =
      leaf(get, "listeners", "the listeners of a load balancer", &chosen, [&](Session& s) {
        return show(s, lb_path(a.lb) + "/listeners", "listeners",
                    [](const Json& j) { return listeners_table(j); });
      });
  c->alias("listener");
  c->add_option("LB", a.lb, "load balancer")->required();
  c = leaf(get, "servergroups", "the server groups of a load balancer", &chosen, [&](Session& s) {
    return show(s, lb_path(a.lb) + "/servergroups", "server_groups",
                [](const Json& j) { return servergroups_table(j); });
  });
  c->alias("servergroup")->alias("sg");
  c->add_option("LB", a.lb, "load balancer")->required();
  c = leaf(get, "backends", "the backends of a server group", &chosen,
           [&](Session& s) { return do_get_backends(s, a); });
  c->alias("backend");
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("GROUP", a.group, "server group")->required();
  c = leaf(get, "rules", "the forwarding rules of an HTTP listener", &chosen, [&](Session& s) {
    return show(s, listener_path(a.lb, a.listener) + "/rules", "rules", rules_table);
  });
  c->alias("rule");
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("LISTENER", a.listener, "listener, PROTO:PORT")->required();
  leaf(get, "certs", "certificates (never their keys)", &chosen,
       [&](Session& s) { return show(s, "/v1/certificates", "certificates", certificates_table); })
      ->alias("cert")
      ->alias("certificates");
  leaf(get, "acls", "access control lists", &chosen, [&](Session& s) {
    return show(s, "/v1/acls", "acls", acls_table);
  })->alias("acl");
  leaf(get, "nodes", "the nodes of the cluster (cluster mode: --store etcd://...)", &chosen,
       [&](Session& s) {
         return show(s, "/v1/nodes", "nodes",
                     [](const Json& j) { return nodes_table(j, now_unix_ms()); });
       })
      ->alias("node");
  leaf(get, "config", "the whole running document (YAML unless -o json)", &chosen, [&](Session& s) {
    auto r = s.call("GET", "/v1/config");
    if (!r.ok()) return fail(r.error().message);
    s.print(*r, to_yaml(*r));
    return kExitOk;
  });

  // describe
  CLI::App* describe = group(&app, "describe", "show one resource in detail");
  leaf(describe, "lb", "a load balancer with its listeners, groups and health", &chosen,
       [&](Session& s) { return do_describe_lb(s, a); })
      ->alias("loadbalancer")
      ->add_option("NAME", a.name, "load balancer")
      ->required();

  // create
  CLI::App* create = group(&app, "create", "create one resource (from flags or -f FILE)");
  c = leaf(create, "lb", "a load balancer", &chosen,
           [&](Session& s) { return do_create_lb(s, a); });
  c->alias("loadbalancer");
  c->add_option("NAME", a.name, "its name");
  c->add_option("--address", a.address, "service address (IPv4 or IPv6 literal)");
  c->add_option("--address-type", a.address_type, "intranet or internet")
      ->check(CLI::IsMember({"intranet", "internet"}));
  c->add_option("-f,--file", a.file, "JSON or YAML object (flags override its fields)");
  c = leaf(create, "servergroup", "a server group", &chosen,
           [&](Session& s) { return do_create_servergroup(s, a); });
  c->alias("sg");
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("NAME", a.name, "its name");
  c->add_option("-f,--file", a.file, "JSON or YAML object (may hold backends)");
  c = leaf(create, "listener", "a listener", &chosen,
           [&](Session& s) { return do_create_listener(s, a); });
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("LISTENER", a.listener, "PROTO:PORT, e.g. http:8080 or tcp:5000");
  c->add_option("--server-group", a.server_group, "default server group");
  c->add_option("--scheduler", a.scheduler, "wrr, rr, wlc, sch or tch");
  c->add_option("-f,--file", a.file, "JSON or YAML object (any listener field)");
  c = leaf(create, "rule", "a forwarding rule of an HTTP listener", &chosen,
           [&](Session& s) { return do_create_rule(s, a); });
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("LISTENER", a.listener, "PROTO:PORT")->required();
  c->add_option("NAME", a.name, "its name");
  c->add_option("--domain", a.domain, "exact (a.example.com) or wildcard (*.example.com)");
  c->add_option("--path", a.path, "path prefix, starts with /");
  c->add_option("--server-group", a.server_group, "where matching requests go");
  c->add_option("--redirect", a.redirect, "answer 302 with this Location instead");
  c->add_option("-f,--file", a.file, "JSON or YAML object");
  c = leaf(create, "cert", "a certificate", &chosen,
           [&](Session& s) { return do_create_cert(s, a); });
  c->alias("certificate");
  c->add_option("NAME", a.name, "its name");
  c->add_option("--cert", a.cert, "PEM file with the certificate chain");
  c->add_option("--key", a.key, "PEM file with the private key (sent once, never shown)");
  c->add_option("--type", a.type, "server (default) or ca")->check(CLI::IsMember({"server", "ca"}));
  c->add_option("-f,--file", a.file, "JSON or YAML object (cert_file/key_file are read here)");
  c = leaf(create, "acl", "an access control list", &chosen,
           [&](Session& s) { return do_create_acl(s, a); });
  c->add_option("NAME", a.name, "its name");
  c->add_option("--entry", a.entries, "CIDR or CIDR=comment (repeat)");
  c->add_option("-f,--file", a.file, "JSON or YAML object");

  // delete
  CLI::App* del = group(&app, "delete", "delete one resource");
  c = leaf(del, "lb", "a load balancer (its listeners close, connections drain)", &chosen,
           [&](Session& s) {
             return done(s, s.call("DELETE", lb_path(a.name)),
                         "load balancer " + a.name + " deleted");
           });
  c->alias("loadbalancer");
  c->add_option("NAME", a.name, "load balancer")->required();
  c = leaf(del, "servergroup", "a server group no listener or rule uses", &chosen, [&](Session& s) {
    return done(s, s.call("DELETE", group_path(a.lb, a.name)),
                "server group " + a.name + " deleted from " + a.lb);
  });
  c->alias("sg");
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("NAME", a.name, "server group")->required();
  c = leaf(del, "listener", "a listener", &chosen, [&](Session& s) {
    return done(s, s.call("DELETE", listener_path(a.lb, a.listener)),
                "listener " + a.listener + " deleted from " + a.lb);
  });
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("LISTENER", a.listener, "PROTO:PORT")->required();
  c = leaf(del, "rule", "a forwarding rule", &chosen, [&](Session& s) {
    return done(s, s.call("DELETE", listener_path(a.lb, a.listener) + "/rules/" + seg(a.name)),
                "rule " + a.name + " deleted from " + a.lb + " " + a.listener);
  });
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("LISTENER", a.listener, "PROTO:PORT")->required();
  c->add_option("NAME", a.name, "rule")->required();
  c = leaf(del, "cert", "a certificate no listener uses", &chosen, [&](Session& s) {
    return done(s, s.call("DELETE", "/v1/certificates/" + seg(a.name)),
                "certificate " + a.name + " deleted");
  });
  c->alias("certificate");
  c->add_option("NAME", a.name, "certificate")->required();
  c = leaf(del, "node", "a cluster node that is down (409 while it is up)", &chosen,
           [&](Session& s) {
             return done(s, s.call("DELETE", "/v1/nodes/" + seg(a.name)),
                         "node " + a.name + " removed from the cluster");
           });
  c->add_option("NAME", a.name, "node")->required();
  c = leaf(del, "acl", "an access control list no listener uses", &chosen, [&](Session& s) {
    return done(s, s.call("DELETE", "/v1/acls/" + seg(a.name)), "acl " + a.name + " deleted");
  });
  c->add_option("NAME", a.name, "acl")->required();

  // backends
  c = leaf(&app, "add-backend", "add a backend to a server group", &chosen,
           [&](Session& s) { return do_add_backend(s, a); });
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("GROUP", a.group, "server group")->required();
  c->add_option("ADDRESS:PORT", a.backend, "the backend, [v6]:PORT for IPv6")->required();
  a.weight_opt = c->add_option("--weight", a.weight, "0-100 (default 100; 0 = no new traffic)");
  c->add_option("--zone", a.zone, "the backend's zone");
  c->add_option("--description", a.description, "free text");
  c = leaf(&app, "remove-backend", "remove a backend (its connections drain)", &chosen,
           [&](Session& s) { return do_remove_backend(s, a); });
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("GROUP", a.group, "server group")->required();
  c->add_option("ADDRESS:PORT", a.backend, "the backend")->required();

  // start / stop
  for (const char* action : {"start", "stop"}) {
    std::string act = action;
    CLI::App* verb = group(&app, act, act + " a listener");
    c = leaf(verb, "listener", act + " a listener", &chosen,
             [&, act](Session& s) { return do_listener_action(s, a, act); });
    c->add_option("LB", a.lb, "load balancer")->required();
    c->add_option("LISTENER", a.listener, "PROTO:PORT")->required();
  }

  // health, explain, status
  c = leaf(&app, "health", "backend health of a load balancer, as the data plane sees it", &chosen,
           [&](Session& s) {
             auto r = s.call("GET", lb_path(a.lb) + "/health");
             if (!r.ok()) return fail(r.error().message);
             s.print(*r, health_table(*r));
             return kExitOk;
           });
  c->add_option("LB", a.lb, "load balancer")->required();
  c = leaf(&app, "explain", "which rule, group and backend the live balancer picks for a client",
           &chosen, [&](Session& s) { return do_explain(s, a); });
  c->add_option("LB", a.lb, "load balancer")->required();
  c->add_option("LISTENER", a.listener, "PROTO:PORT")->required();
  c->add_option("--client", a.client, "the client, IP:PORT ([v6]:PORT)")->required();
  c->add_option("--host", a.host, "Host of the request (HTTP listeners)");
  c->add_option("--path", a.path, "path of the request (HTTP listeners)");
  leaf(&app, "status", "the node: store, revision, generation, workers", &chosen, [&](Session& s) {
    auto r = s.call("GET", "/v1/status");
    if (!r.ok()) return fail(r.error().message);
    s.print(*r, status_text(*r));
    return kExitOk;
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (!chosen) {
    for (const CLI::App* verb : app.get_subcommands()) {
      return usage(verb->get_name() + " needs one of: " + kinds(*verb));
    }
    return usage("no verb given (fulcrumctl --help lists them)");
  }
  Session session(g);
  if (!session.open()) return kExitFailed;
  return chosen(session);
}

}  // namespace fulcrum::ctl
