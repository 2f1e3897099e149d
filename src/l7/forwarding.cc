#include "l7/forwarding.h"

#include <algorithm>

#include "base/hash.h"
#include "l7/cookies.h"

namespace fulcrum::l7 {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

}  // namespace

size_t route_request(const snapshot::Listener& cfg, std::string_view host, std::string_view path) {
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (const snapshot::Rule* rule = cfg.routes ? cfg.routes->match(host, path) : nullptr) {
    return rule->target;
  }
  return 0;
}

void new_request_id(uint64_t seed, std::string* out) {
  static thread_local uint64_t counter = 0;
  uint64_t a = base::mix64(seed ^ (++counter * 0x9e3779b97f4a7c15ULL));
  uint64_t b = base::mix64(a + counter);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string& id = *out;
  id.resize(32);
  for (int i = 0; i < 16; ++i) {
    id[static_cast<size_t>(i)] = kHex[(a >> (4 * i)) & 0xf];
    id[static_cast<size_t>(16 + i)] = kHex[(b >> (4 * i)) & 0xf];
  }
}

void forward_edits(const snapshot::Listener& cfg, size_t target_index,
                   std::span<const http::Header> headers, const ClientFacts& client,
                   ForwardEdits* out) {
  const snapshot::HttpTarget& target = cfg.targets[target_index];
  out->xff.clear();
  out->request_id.clear();
  for (const http::Header& h : headers) {
    if (iequals(h.name, "x-forwarded-for")) {
      if (!out->xff.empty()) out->xff += ", ";
      out->xff.append(h.value);
    } else if (iequals(h.name, "x-request-id") && out->request_id.empty()) {
      out->request_id.assign(h.value);
    }
  }
  if (!out->xff.empty()) out->xff += ", ";
  out->xff.append(client.peer_ip);
  bool add_request_id = out->request_id.empty();
  if (add_request_id) new_request_id(client.seed, &out->request_id);
  out->port = std::to_string(cfg.bind.port());
  std::vector<http::Header>& add = out->add;
  add.clear();
  add.push_back({"X-Forwarded-For", out->xff});
  if (add_request_id) add.push_back({"X-Request-Id", out->request_id});
  if (cfg.x_forwarded.proto) add.push_back({"X-Forwarded-Proto", client.tls ? "https" : "http"});
  if (cfg.x_forwarded.port) add.push_back({"X-Forwarded-Port", out->port});
  if (cfg.x_forwarded.lb_id) add.push_back({"SLB-ID", cfg.lb_name});
  if (cfg.x_forwarded.lb_ip) add.push_back({"SLB-IP", cfg.lb_address});
  // Mutual TLS: the verified client certificate's subject, and never a client's own claim.
  if (!client.cert_subject.empty()) add.push_back({"X-Client-Cert-Subject", client.cert_subject});
  out->remove = {"x-forwarded-for", "x-forwarded-proto",    "x-forwarded-port", "slb-id",
                 "slb-ip",          "x-client-cert-subject"};
  out->sticky_backend = UINT32_MAX;
  out->cookies.clear();
  if (cfg.sticky.type == snapshot::StickySession::Type::kNone || !target.group) return;
  bool insert = cfg.sticky.type == snapshot::StickySession::Type::kInsert;
  std::string_view name = insert ? cfg.sticky.cookie_name : cfg.sticky.cookie;
  auto value = find_cookie(headers, name);
  if (!value) return;
  std::string_view token = *value;
  std::optional<std::string_view> original;
  if (!insert) {
    auto parts = split_prefixed(*value);
    if (parts) {
      token = parts->first;
      original = parts->second;
    } else {
      original = *value;  // not ours: passed on as it is
      token = {};
    }
  }
  const auto& tokens = target.sticky_tokens;
  for (uint32_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == token) out->sticky_backend = i;
  }
  out->cookies = rebuild_cookies(headers, name, original);
  out->remove.push_back("cookie");
  if (!out->cookies.empty()) add.push_back({"Cookie", out->cookies});
}

uint32_t pick_backend(const snapshot::HttpTarget& target, HttpListenerState::Target& ts,
                      uint32_t sticky_backend, balance::HostMask* tried,
                      const net::SocketAddress& peer) {
  if (sticky_backend != UINT32_MAX && !tried->test(sticky_backend) &&
      target.table->weight(sticky_backend) > 0) {
    return sticky_backend;  // still there, healthy and not drained: the session stays
  }
  balance::PickRequest req;
  req.key = base::hash_string(peer.ip_bytes());
  req.active = ts.active;
  req.skip = tried;
  return ts.cursor.pick(*target.table, req);
}

void sticky_response_cookies(const snapshot::Listener& cfg, size_t target, uint32_t backend,
                             uint32_t sticky_backend, std::span<const http::Header> response,
                             std::vector<std::string>* set_cookies, bool* replace) {
  *replace = false;
  if (cfg.sticky.type == snapshot::StickySession::Type::kNone || backend == UINT32_MAX) return;
  const std::string& token = cfg.targets[target].sticky_tokens[backend];
  if (cfg.sticky.type == snapshot::StickySession::Type::kInsert) {
    if (sticky_backend != backend) {
      set_cookies->push_back(cfg.sticky.cookie_name + "=" + token + cfg.sticky.attributes);
    }
    return;
  }
  for (const http::Header& hd : response) {
    if (!iequals(hd.name, "set-cookie")) continue;
    auto prefixed = prefix_set_cookie(hd.value, cfg.sticky.cookie, token);
    set_cookies->push_back(prefixed ? *prefixed : std::string(hd.value));
  }
  *replace = !set_cookies->empty();
}

}  // namespace fulcrum::l7
