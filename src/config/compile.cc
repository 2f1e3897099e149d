#include "config/compile.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "base/hash.h"

namespace fulcrum::config {

namespace {

balance::Scheduler to_balance(Scheduler s) {
  switch (s) {
    case Scheduler::kWrr:
      return balance::Scheduler::kWrr;
    case Scheduler::kRr:
      return balance::Scheduler::kRr;
    case Scheduler::kWlc:
      return balance::Scheduler::kWlc;
    case Scheduler::kSch:
      return balance::Scheduler::kSch;
    case Scheduler::kTch:
      return balance::Scheduler::kTch;
  }
  return balance::Scheduler::kWrr;
}

snapshot::ProxyProtocol to_snapshot(ProxyProtocol p) {
  switch (p) {
    case ProxyProtocol::kNone:
      return snapshot::ProxyProtocol::kNone;
    case ProxyProtocol::kV1:
      return snapshot::ProxyProtocol::kV1;
    case ProxyProtocol::kV2:
      return snapshot::ProxyProtocol::kV2;
  }
  return snapshot::ProxyProtocol::kNone;
}

std::string backend_name(const Backend& b) {
  if (b.address.find(':') != std::string::npos) {
    return "[" + b.address + "]:" + std::to_string(b.port);
  }
  return b.address + ":" + std::to_string(b.port);
}

base::Result<std::shared_ptr<const snapshot::ServerGroup>> compile_group(const ServerGroup& g,
                                                                         const std::string& path) {
  auto out = std::make_shared<snapshot::ServerGroup>();
  out->name = g.name;
  for (size_t i = 0; i < g.backends.size(); ++i) {
    const Backend& b = g.backends[i];
    auto addr = net::SocketAddress::from_ip_port(b.address, b.port);
    if (!addr) {
      return base::Error::config(path + ".backends[" + std::to_string(i) + "].address",
                                 "must be an IPv4 or IPv6 address");
    }
    snapshot::Backend sb;
    sb.name = backend_name(b);
    sb.address = *addr;
    sb.weight = b.weight;
    sb.id = base::hash_string(sb.name);
    out->index_by_id.emplace(sb.id, static_cast<uint32_t>(out->backends.size()));
    out->backends.push_back(std::move(sb));
  }
  return std::shared_ptr<const snapshot::ServerGroup>(std::move(out));
}

using AclMatchers = std::map<std::string, std::shared_ptr<const snapshot::AclMatcher>>;

// One matcher per ACL, shared by every listener that names it.
base::Result<AclMatchers> compile_acls(const std::vector<Acl>& acls) {
  AclMatchers out;
  for (size_t i = 0; i < acls.size(); ++i) {
    std::vector<snapshot::AclPrefix> prefixes;
    prefixes.reserve(acls[i].entries.size());
    for (size_t j = 0; j < acls[i].entries.size(); ++j) {
      auto p = snapshot::AclPrefix::parse(acls[i].entries[j].cidr);
      if (!p) {
        return base::Error::config(
            "acls[" + std::to_string(i) + "].entries[" + std::to_string(j) + "].cidr",
            "must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32");
      }
      prefixes.push_back(*p);
    }
    out.emplace(acls[i].name, std::make_shared<const snapshot::AclMatcher>(prefixes));
  }
  return out;
}

// The access control of listener `l`: an empty white list refuses everyone on L4 listeners and
// allows everyone on L7 ones (PRODUCT.md §2).
base::Result<snapshot::AccessControl> compile_access(const Listener& l, const AclMatchers& acls,
                                                     const std::string& path) {
  snapshot::AccessControl out;
  if (!l.acl) return out;
  auto it = acls.find(l.acl->acl);
  if (it == acls.end()) {
    return base::Error::config(path + ".acl.acl", "unknown acl '" + l.acl->acl + "'");
  }
  if (l.acl->type == AclType::kWhite && it->second->empty() && is_l7(l.protocol)) return out;
  out.type = l.acl->type == AclType::kWhite ? snapshot::AccessControl::Type::kWhite
                                            : snapshot::AccessControl::Type::kBlack;
  out.acl = l.acl->acl;
  out.matcher = it->second;
  return out;
}

constexpr size_t kMaxPemFileBytes = 1 << 20;  // a chain of a few certificates is a few KiB

// A certificate that cannot be used is invalid input (the API answers 400), unlike a valid
// document this build cannot serve (422): the error carries an errno to say so.
base::Error bad_certificate(std::string field_path, std::string message, int err = EINVAL) {
  base::Error e = base::Error::config(std::move(field_path), std::move(message));
  e.sys_errno = err;
  return e;
}

base::Status read_file(const std::string& file, const std::string& field_path, std::string* out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    int err = errno != 0 ? errno : EIO;
    return bad_certificate(field_path, "cannot read " + file + ": " + std::strerror(err), err);
  }
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  if (out->size() > kMaxPemFileBytes) {
    return bad_certificate(field_path, file + " is larger than 1 MiB");
  }
  return {};
}

// Loads (or reuses from `previous`) every certificate of the document. `loaded` gets the ones
// used now; `server` and `ca` map names to them. Errors carry the certificate's field.
base::Status load_certificates(
    const Config& config, const TlsState& previous, TlsState& loaded,
    std::map<std::string, std::shared_ptr<const tls::ServerCertificate>>& server,
    std::map<std::string, std::shared_ptr<const tls::CaCertificates>>& ca) {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (size_t i = 0; i < config.certificates.size(); ++i) {
    const Certificate& c = config.certificates[i];
    std::string path = "certificates[" + std::to_string(i) + "]";
    std::string cert_pem, key_pem;
    if (auto s = read_certificate_pem(c, path, &cert_pem, &key_pem); !s.ok()) return s;
    // A parse error's field ("cert" or "key") named as the document names it.
    auto field_of = [&](const base::Error& e) {
      bool key = e.field == "key";
      bool file = key ? !c.key_file.empty() : !c.cert_file.empty();
      return path + "." + (key ? "key" : "cert") + (file ? "_file" : "");
    };
    if (c.type == "ca") {
      std::shared_ptr<const tls::CaCertificates> parsed;
      if (auto it = previous.cas.find(cert_pem); it != previous.cas.end()) {
        parsed = it->second;
      } else {
        auto r = tls::CaCertificates::parse(cert_pem, now);
        if (!r.ok()) return bad_certificate(field_of(r.error()), r.error().message);
        parsed = std::move(*r);
      }
      loaded.cas.emplace(cert_pem, parsed);
      ca.emplace(c.name, std::move(parsed));
      continue;
    }
    std::string cache_key = cert_pem + '\0' + key_pem;
    std::shared_ptr<const tls::ServerCertificate> parsed;
    if (auto it = previous.certificates.find(cache_key); it != previous.certificates.end()) {
      parsed = it->second;
    } else {
      auto r = tls::ServerCertificate::parse(cert_pem, key_pem, now);
      if (!r.ok()) return bad_certificate(field_of(r.error()), r.error().message);
      parsed = std::move(*r);
    }
    loaded.certificates.emplace(std::move(cache_key), parsed);
    server.emplace(c.name, std::move(parsed));
  }
  return {};
}

}  // namespace

base::Status read_certificate_pem(const Certificate& c, const std::string& path, std::string* cert,
                                  std::string* key) {
  if (!c.cert_file.empty()) {
    if (auto s = read_file(c.cert_file, path + ".cert_file", cert); !s.ok()) return s;
  } else {
    *cert = c.cert_pem;
  }
  if (!c.key_file.empty()) {
    if (auto s = read_file(c.key_file, path + ".key_file", key); !s.ok()) return s;
  } else {
    *key = c.key_pem;
  }
  return {};
}

snapshot::HealthCheck to_snapshot(const HealthCheck& hc) {
  snapshot::HealthCheck out;
  out.enabled = hc.enabled;
  out.type = hc.type == "http"  ? snapshot::HealthCheck::Type::kHttp
             : hc.type == "udp" ? snapshot::HealthCheck::Type::kUdp
                                : snapshot::HealthCheck::Type::kTcp;
  out.port = hc.port.value_or(0);
  out.interval_ms = hc.interval_ms;
  out.timeout_ms = hc.timeout_ms;
  out.healthy_threshold = hc.healthy_threshold;
  out.unhealthy_threshold = hc.unhealthy_threshold;
  out.method = hc.method;
  out.uri = hc.uri;
  out.domain = hc.domain;
  out.request = hc.request;
  out.expect = hc.expect;
  out.http_code_classes = 0;
  for (const std::string& c : hc.http_codes) {  // validated: "2xx" .. "5xx"
    out.http_code_classes |= 1u << static_cast<unsigned>(c[0] - '0');
  }
  return out;
}

// The weights the balancer uses: configured weights, with unhealthy backends at 0 — unless all
// of them are unhealthy and the listener fails open.
std::vector<uint32_t> effective_weights(const snapshot::Listener& l) {
  std::vector<uint32_t> weights;
  bool any = false;
  for (size_t i = 0; i < l.group->backends.size(); ++i) {
    bool usable = l.health[i] != snapshot::Health::kUnhealthy;
    weights.push_back(usable ? l.group->backends[i].weight : 0);
    any = any || weights.back() > 0;
  }
  if (!any && l.fail_open) {
    for (size_t i = 0; i < l.group->backends.size(); ++i) weights[i] = l.group->backends[i].weight;
  }
  return weights;
}

// Targets (the default group, then one per rule) and the route table of an HTTP listener.
void compile_http(const LoadBalancer& lb, const Listener& l,
                  const std::map<std::string, std::shared_ptr<const snapshot::ServerGroup>>& groups,
                  const snapshot::HealthTable* health, uint64_t sticky_secret,
                  snapshot::Listener& sl) {
  sl.request_timeout_ms = l.request_timeout_ms;
  sl.x_forwarded = {l.x_forwarded.proto, l.x_forwarded.port, l.x_forwarded.lb_id,
                    l.x_forwarded.lb_ip};
  sl.lb_address = lb.address;
  sl.gzip = l.gzip;
  sl.access_log = l.access_log;
  if (l.sticky_session) {
    sl.sticky.type = l.sticky_session->type == "insert" ? snapshot::StickySession::Type::kInsert
                                                        : snapshot::StickySession::Type::kServer;
    const StickySession& st = *l.sticky_session;
    sl.sticky.cookie_timeout_s = st.cookie_timeout_s;
    sl.sticky.cookie = st.cookie;
    sl.sticky.cookie_name = st.cookie_name;
    // Built once here: the data plane appends it to the token.
    sl.sticky.attributes = "; Max-Age=" + std::to_string(st.cookie_timeout_s) + "; Path=" + st.path;
    if (st.http_only) sl.sticky.attributes += "; HttpOnly";
    if (st.secure) sl.sticky.attributes += "; Secure";
    sl.sticky.attributes += "; SameSite=" + st.same_site;
  }
  auto tokens = [&](const snapshot::ServerGroup& g) {
    std::vector<std::string> out;
    if (sl.sticky.type == snapshot::StickySession::Type::kNone) return out;
    for (const auto& b : g.backends) out.push_back(snapshot::sticky_token(sticky_secret, b.id));
    return out;
  };
  sl.targets.push_back({"", sl.group, sl.health, sl.table, "", tokens(*sl.group)});
  std::vector<snapshot::Rule> rules;
  for (const Rule& r : l.rules) {
    snapshot::HttpTarget t;
    t.name = r.name;
    t.redirect = r.redirect;
    if (r.redirect.empty()) {
      t.group = groups.at(r.server_group);  // validated: the group exists
      // The rule's own view of health: a listener's checks cover every group it routes to.
      snapshot::Listener view;
      view.group = t.group;
      view.fail_open = sl.fail_open;
      std::vector<uint64_t> ids;
      for (const auto& b : t.group->backends) {
        ids.push_back(b.id);
        snapshot::Health hs = snapshot::Health::kUnchecked;
        if (health && sl.health_check.enabled) {
          auto it = health->find(snapshot::health_key(sl.lb_name, sl.id, b.name));
          if (it != health->end()) hs = it->second;
        }
        view.health.push_back(hs);
      }
      t.health = view.health;
      t.table = balance::Table::build(sl.scheduler, effective_weights(view), ids);
      t.sticky_tokens = tokens(*t.group);
    }
    std::string domain = r.domain;
    std::transform(domain.begin(), domain.end(), domain.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    rules.push_back({r.name, std::move(domain), r.path, sl.targets.size()});
    sl.targets.push_back(std::move(t));
  }
  sl.routes = std::make_shared<const snapshot::RouteTable>(std::move(rules));
}

base::Result<Compiled> compile(const Config& config, uint64_t generation,
                               const snapshot::HealthTable* health, uint64_t sticky_secret,
                               TlsState* tls) {
  auto snap = std::make_shared<snapshot::Snapshot>();
  snap->generation = generation;
  Compiled out;
  auto acls = compile_acls(config.acls);
  if (!acls.ok()) return acls.take_error();
  TlsState fresh_state;
  TlsState& previous = tls ? *tls : fresh_state;
  TlsState loaded;
  loaded.tickets = previous.tickets;
  std::map<std::string, std::shared_ptr<const tls::ServerCertificate>> server_certs;
  std::map<std::string, std::shared_ptr<const tls::CaCertificates>> ca_certs;
  if (auto s = load_certificates(config, previous, loaded, server_certs, ca_certs); !s.ok()) {
    return s.take_error();
  }
  for (size_t li = 0; li < config.loadbalancers.size(); ++li) {
    const LoadBalancer& lb = config.loadbalancers[li];
    std::string lb_path = "loadbalancers[" + std::to_string(li) + "]";
    // Refuse what this build would otherwise silently ignore (as for the listener's field below).
    if (lb.bandwidth_mbps != -1) {
      return base::Error::config(lb_path + ".bandwidth_mbps",
                                 "bandwidth limits are not enforced by this version; use -1");
    }
    std::map<std::string, std::shared_ptr<const snapshot::ServerGroup>> groups;
    for (size_t gi = 0; gi < lb.server_groups.size(); ++gi) {
      auto g = compile_group(lb.server_groups[gi],
                             lb_path + ".server_groups[" + std::to_string(gi) + "]");
      if (!g.ok()) return g.take_error();
      groups.emplace(lb.server_groups[gi].name, std::move(*g));
    }
    for (size_t i = 0; i < lb.listeners.size(); ++i) {
      const Listener& l = lb.listeners[i];
      std::string path = lb_path + ".listeners[" + std::to_string(i) + "]";
      // Refuse what this build would otherwise silently ignore.
      if (l.access_log && !is_l7(l.protocol)) {
        return base::Error::config(path + ".access_log",
                                   std::string("access logs of ") +
                                       std::string(to_string(l.protocol)) +
                                       " listeners are not available in this version (http only)");
      }
      if (l.bandwidth_mbps != -1) {
        return base::Error::config(path + ".bandwidth_mbps",
                                   "bandwidth limits are not enforced by this version; use -1");
      }
      auto bind = net::SocketAddress::from_ip_port(lb.address, l.port);
      if (!bind) return base::Error::config(lb_path + ".address", "must be an IP address");
      auto g = groups.find(l.server_group);
      if (g == groups.end() && l.server_group.empty() && l.redirect_to_https) {
        // Only redirects: an empty default group that nothing is ever sent to.
        g = groups.emplace("", std::make_shared<const snapshot::ServerGroup>()).first;
      }
      if (g == groups.end()) {
        return base::Error::config(path + ".server_group",
                                   "no server group named '" + l.server_group + "'");
      }
      auto sl = std::make_shared<snapshot::Listener>();
      sl->lb_name = lb.name;
      sl->id = l.id();
      sl->protocol = l.protocol == Protocol::kHttp    ? snapshot::Protocol::kHttp
                     : l.protocol == Protocol::kHttps ? snapshot::Protocol::kHttps
                     : l.protocol == Protocol::kUdp   ? snapshot::Protocol::kUdp
                                                      : snapshot::Protocol::kTcp;
      sl->bind = *bind;
      sl->running = lb.status == "active" && l.status == ListenerStatus::kRunning;
      sl->scheduler = to_balance(l.scheduler);
      sl->group = g->second;
      sl->fail_open = l.all_unhealthy == AllUnhealthy::kFailOpen;
      auto access = compile_access(l, *acls, path);
      if (!access.ok()) return access.take_error();
      sl->access = std::move(*access);
      sl->health_check = to_snapshot(l.health_check);
      std::vector<uint64_t> ids;
      for (const auto& b : sl->group->backends) {
        ids.push_back(b.id);
        snapshot::Health h = snapshot::Health::kUnchecked;
        if (health && sl->health_check.enabled) {
          auto it = health->find(snapshot::health_key(sl->lb_name, sl->id, b.name));
          if (it != health->end()) h = it->second;
        }
        sl->health.push_back(h);
      }
      sl->table = balance::Table::build(sl->scheduler, effective_weights(*sl), ids);
      if (is_l7(l.protocol)) compile_http(lb, l, groups, health, sticky_secret, *sl);
      if (l.redirect_to_https) sl->redirect_https_port = l.redirect_to_https->port;
      if (l.protocol == Protocol::kHttps) {
        tls::ServerOptions options;
        for (const std::string& name : l.certificates) {
          options.certificates.push_back(server_certs.at(name));  // validated: known, server
        }
        options.policy = tls::parse_policy(l.tls_policy).value_or(tls::Policy::kTls12);
        if (!l.ca_certificate.empty()) options.client_ca = ca_certs.at(l.ca_certificate);
        // HTTP/2 first when the listener serves it (l7::Http2Session), then HTTP/1.1.
        options.alpn = {"http/1.1"};
        if (l.http2) options.alpn.insert(options.alpn.begin(), "h2");
        options.tickets = loaded.tickets;
        options.session_context = lb.name + " " + l.id();
        // The cache key: every setting, certificates by identity (equal text, same object).
        std::string key = options.session_context + '\n' + l.tls_policy + '\n';
        for (const auto& a : options.alpn) key += a + ",";
        for (const auto& c : options.certificates) {
          key += std::to_string(reinterpret_cast<uintptr_t>(c.get())) + ",";
        }
        key += std::to_string(reinterpret_cast<uintptr_t>(options.client_ca.get()));
        if (auto it = previous.contexts.find(key); it != previous.contexts.end()) {
          sl->tls = it->second;
        } else {
          auto ctx = tls::ServerContext::create(std::move(options));
          if (!ctx.ok()) {  // e.g. a key too small for the policy's security level
            return bad_certificate(path + ".certificates", ctx.error().message);
          }
          sl->tls = std::move(*ctx);
        }
        loaded.contexts.emplace(std::move(key), sl->tls);
      }
      sl->connect_timeout_ms = l.connect_timeout_ms;
      sl->idle_timeout_ms = l.idle_timeout_ms;
      sl->persistence_timeout_ms = l.persistence_timeout_ms;
      sl->drain_timeout_ms = l.drain_timeout_ms;
      sl->proxy_protocol = to_snapshot(l.proxy_protocol);
      snap->listeners.push_back(std::move(sl));
      out.listener_paths.push_back(path);
    }
  }
  out.snapshot = std::move(snap);
  if (tls) *tls = std::move(loaded);
  return out;
}

}  // namespace fulcrum::config
