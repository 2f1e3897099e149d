#include "views.h"

#include <ctime>

#include "client/table.h"

namespace fulcrum::ctl {

namespace {

const Json& items(const Json& list) {
  static const Json kEmpty = Json::array();
  return list.is_array() ? list : kEmpty;
}

const Json& field(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// The `key` of every element of `list`, joined with ",".
template <class F>
std::string joined(const Json& list, F&& text) {
  std::string out;
  for (const Json& item : items(list)) {
    std::string t = text(item);
    if (t.empty()) continue;
    if (!out.empty()) out += ",";
    out += t;
  }
  return out;
}

std::string value_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string count(const Json& list) {
  return std::to_string(items(list).size());
}

void line(std::string* out, const std::string& label, const std::string& value) {
  std::string padded = label + ":";
  padded.resize(std::max<size_t>(padded.size() + 1, 16), ' ');
  *out += padded + (value.empty() ? "-" : value) + "\n";
}

}  // namespace

std::string cell(const Json& object, const char* key) {
  return value_text(field(object, key));
}

std::string listener_id(const Json& listener) {
  return cell(listener, "protocol") + ":" + cell(listener, "port");
}

std::string loadbalancers_table(const Json& lbs) {
  client::Table t({"NAME", "ADDRESS", "TYPE", "STATUS", "LISTENERS", "GROUPS"});
  for (const Json& lb : items(lbs)) {
    t.add_row({cell(lb, "name"), cell(lb, "address"), cell(lb, "address_type"), cell(lb, "status"),
               joined(field(lb, "listeners"), listener_id),
               joined(field(lb, "server_groups"), [](const Json& g) { return cell(g, "name"); })});
  }
  return t.render();
}

std::string listeners_table(const Json& listeners, size_t indent) {
  client::Table t({"LISTENER", "STATUS", "GROUP", "SCHEDULER", "RULES"});
  for (const Json& l : items(listeners)) {
    const Json& rules = field(l, "rules");
    t.add_row({listener_id(l), cell(l, "status"), cell(l, "server_group"), cell(l, "scheduler"),
               rules.is_array() ? count(rules) : ""});
  }
  return t.render(indent);
}

std::string servergroups_table(const Json& groups, size_t indent) {
  client::Table t({"NAME", "BACKENDS", "ADDRESSES"});
  for (const Json& g : items(groups)) {
    const Json& backends = field(g, "backends");
    t.add_row({cell(g, "name"), count(backends), joined(backends, [](const Json& b) {
                 std::string a = cell(b, "address");
                 if (a.find(':') != std::string::npos) a = "[" + a + "]";
                 return a + ":" + cell(b, "port");
               })});
  }
  return t.render(indent);
}

std::string backends_table(const Json& backends) {
  client::Table t({"ADDRESS", "PORT", "WEIGHT", "ZONE", "DESCRIPTION"});
  for (const Json& b : items(backends)) {
    t.add_row({cell(b, "address"), cell(b, "port"), cell(b, "weight"), cell(b, "zone"),
               cell(b, "description")});
  }
  return t.render();
}

std::string rules_table(const Json& rules) {
  client::Table t({"NAME", "DOMAIN", "PATH", "TARGET"});
  for (const Json& r : items(rules)) {
    std::string target = cell(r, "server_group");
    if (target.empty() && !cell(r, "redirect").empty()) target = "redirect " + cell(r, "redirect");
    t.add_row({cell(r, "name"), cell(r, "domain"), cell(r, "path"), target});
  }
  return t.render();
}

std::string certificates_table(const Json& certs) {
  client::Table t({"NAME", "TYPE", "CHAIN"});
  for (const Json& c : items(certs)) {
    // The chain length: how many PEM certificates the `cert` text holds.
    std::string pem = cell(c, "cert");
    size_t n = 0;
    for (size_t at = pem.find("-----BEGIN CERTIFICATE-----"); at != std::string::npos;
         at = pem.find("-----BEGIN CERTIFICATE-----", at + 1)) {
      ++n;
    }
    t.add_row({cell(c, "name"), cell(c, "type"), n ? std::to_string(n) : ""});
  }
  return t.render();
}

std::string acls_table(const Json& acls) {
  client::Table t({"NAME", "ENTRIES", "CIDRS"});
  for (const Json& a : items(acls)) {
    const Json& entries = field(a, "entries");
    std::string cidrs;
    size_t shown = 0;
    for (const Json& e : items(entries)) {
      if (shown == 4) {  // a preview: `get acls -o yaml` shows them all
        cidrs += ",…";
        break;
      }
      if (!cidrs.empty()) cidrs += ",";
      cidrs += cell(e, "cidr");
      ++shown;
    }
    t.add_row({cell(a, "name"), count(entries), cidrs});
  }
  return t.render();
}

std::string health_table(const Json& health, size_t indent) {
  client::Table t({"LISTENER", "GROUP", "BACKEND", "STATUS", "WEIGHT"});
  for (const Json& l : items(field(health, "listeners"))) {
    std::string id = cell(l, "listener");
    if (cell(l, "status") == "stopped") id += " (stopped)";
    for (const Json& g : items(field(l, "server_groups"))) {
      for (const Json& b : items(field(g, "backends"))) {
        t.add_row({id, cell(g, "server_group"), cell(b, "backend"), cell(b, "status"),
                   cell(b, "weight")});
      }
    }
  }
  return t.render(indent);
}

std::string describe_loadbalancer(const Json& lb, const Json& health) {
  std::string out;
  line(&out, "Name", cell(lb, "name"));
  line(&out, "Address", cell(lb, "address"));
  line(&out, "Address type", cell(lb, "address_type"));
  line(&out, "Status", cell(lb, "status"));
  if (const Json& zones = field(lb, "zones"); zones.is_object()) {
    line(&out, "Zones", "master " + cell(zones, "master") + ", slave " + cell(zones, "slave"));
  }
  // Bandwidth limits are not enforced yet (fulcrumd refuses anything but -1): a limit some other
  // server reports is shown as what it is, not as a rate this build keeps.
  std::string bw = cell(lb, "bandwidth_mbps");
  line(&out, "Bandwidth",
       bw == "-1"   ? "unlimited"
       : bw.empty() ? ""
                    : bw + " Mbit/s (not enforced: this version refuses limits)");
  line(&out, "Charge type", cell(lb, "charge_type"));
  if (const Json& tags = field(lb, "tags"); tags.is_object() && !tags.empty()) {
    std::string text;
    for (const auto& [k, v] : tags.items()) {
      if (!text.empty()) text += ", ";
      text += k + "=" + value_text(v);
    }
    line(&out, "Tags", text);
  }
  out += "\nListeners:\n";
  const Json& listeners = field(lb, "listeners");
  out += items(listeners).empty() ? "  (none)\n" : listeners_table(listeners, 2);
  out += "\nServer groups:\n";
  const Json& groups = field(lb, "server_groups");
  out += items(groups).empty() ? "  (none)\n" : servergroups_table(groups, 2);
  out += "\nHealth:\n";
  std::string h = health_table(health, 2);
  out += h.find('\n') + 1 == h.size() ? "  (no running listener)\n" : h;
  return out;
}

std::string status_text(const Json& status) {
  std::string out;
  line(&out, "Node", cell(status, "node"));
  line(&out, "Zone", cell(status, "zone"));
  const Json& store = field(status, "store");
  if (store.is_object()) {
    // {kind, endpoints, revision, reachable}: etcd endpoints, or the SQLite file.
    line(&out, "Store", cell(store, "kind"));
    line(&out, cell(store, "kind") == "sqlite" ? "Store file" : "Endpoints",
         joined(field(store, "endpoints"), value_text));
    line(&out, "Store revision", cell(store, "revision"));
    line(&out, "Reachable", cell(store, "reachable"));
  } else {
    line(&out, "Store", value_text(store));  // "sqlite:/path" before cluster mode
  }
  if (status.is_object() && status.contains("config_source")) {
    line(&out, "Config source", cell(status, "config_source"));
  }
  line(&out, "Revision", cell(status, "revision"));
  line(&out, "Generation", cell(status, "generation"));
  line(&out, "Workers", cell(status, "workers"));
  line(&out, "Ready", cell(status, "ready"));
  line(&out, "Started (ms)", cell(status, "started_unix_ms"));
  return out;
}

std::string rfc3339_utc(int64_t unix_ms) {
  std::time_t secs =
      static_cast<std::time_t>(unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000);
  std::tm tm{};
  if (gmtime_r(&secs, &tm) == nullptr) return "";
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

std::string age_text(int64_t ms) {
  int64_t s = ms > 0 ? ms / 1000 : 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 2 * 3600) return std::to_string(s / 60) + "m";
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string nodes_table(const Json& nodes, int64_t now_unix_ms) {
  client::Table t({"NAME", "ZONE", "STATE", "REVISION", "GENERATION", "LAST-SEEN", "ADMIN"});
  for (const Json& n : items(nodes)) {
    const Json& ms = field(n, "last_seen_unix_ms");
    std::string seen = cell(n, "last_seen");
    if (seen.empty() && ms.is_number_integer()) seen = rfc3339_utc(ms.get<int64_t>());
    if (!seen.empty() && now_unix_ms > 0 && ms.is_number_integer()) {
      seen += " (" + age_text(now_unix_ms - ms.get<int64_t>()) + " ago)";
    }
    t.add_row({cell(n, "name"), cell(n, "zone"), cell(n, "state"), cell(n, "revision"),
               cell(n, "generation"), seen, cell(n, "admin")});
  }
  return t.render();
}

std::string explain_text(const Json& answer) {
  std::string out;
  std::string listener = cell(answer, "listener");
  if (!cell(answer, "listener_status").empty() && cell(answer, "listener_status") != "running") {
    listener += " (" + cell(answer, "listener_status") + ")";
  }
  line(&out, "Load balancer", cell(answer, "loadbalancer"));
  line(&out, "Listener", listener);
  line(&out, "Client", cell(answer, "client"));
  if (answer.contains("host") || answer.contains("path")) {
    line(&out, "Request",
         "host " + (cell(answer, "host").empty() ? "(none)" : cell(answer, "host")) + ", path " +
             cell(answer, "path"));
    std::string rule = cell(answer, "rule");
    line(&out, "Rule", rule.empty() ? "(none: the listener's default group)" : rule);
  }
  if (!cell(answer, "redirect").empty()) {
    line(&out, "Redirect", cell(answer, "redirect"));
    return out;
  }
  line(&out, "Scheduler", cell(answer, "scheduler"));
  line(&out, "Server group", cell(answer, "server_group"));
  std::string backend = cell(answer, "backend");
  if (!backend.empty() && !cell(answer, "backend_status").empty()) {
    backend += " (" + cell(answer, "backend_status") + ")";
  }
  line(&out, "Backend", backend.empty() ? "(none)" : backend);
  line(&out, "Reason", cell(answer, "reason"));
  return out;
}

std::string apply_text(const Json& answer) {
  std::string out;
  for (const Json& c : items(field(answer, "changes"))) {
    std::string op = cell(c, "op");
    char sign = op == "create" ? '+' : op == "delete" ? '-' : '~';
    out += std::string(1, sign) + " " + op + " " + cell(c, "key") + "\n";
  }
  bool dry_run = field(answer, "dry_run").is_boolean() && field(answer, "dry_run").get<bool>();
  std::string revision = cell(answer, "revision");
  if (out.empty()) {
    out = "no changes (revision " + revision + ")\n";
  } else if (dry_run) {
    out += "dry run: valid, nothing was changed (revision " + revision + ")\n";
  } else {
    out += "applied: revision " + revision + ", generation " + cell(answer, "generation") + "\n";
  }
  return out;
}

}  // namespace fulcrum::ctl
