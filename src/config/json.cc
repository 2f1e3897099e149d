#include "config/json.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "config/decode_internal.h"
#include "config/validate.h"

namespace fulcrum::config {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;  // keeps fields in the order they were added

// Nesting of objects and arrays. A document needs 7 levels (loadbalancers[].listeners[]
// .health_check.http_codes[]); the bound keeps hostile input from building deep trees.
constexpr size_t kMaxDepth = 64;

std::string field(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// --- JSON text -> the decoder's node tree --------------------------------------------------------

// nlohmann's SAX events -> a yaml-cpp tree with the conventions of decode_internal.h: strings are
// quoted scalars, numbers are scalars tagged int (-?digits) or float with the text as written,
// true/false are scalars tagged bool, null is a null node. Refuses duplicate keys (nlohmann keeps
// the last one), nesting deeper than kMaxDepth and more than kMaxValues values, naming the path.
class TreeBuilder {
 public:
  explicit TreeBuilder(std::string_view text) : text_(text) {}

  bool null() { return add(YAML::Node(YAML::NodeType::Null)); }
  bool boolean(bool value) { return add(scalar(value ? "true" : "false", internal::kBoolTag)); }
  bool number_integer(Json::number_integer_t value) { return number(std::to_string(value)); }
  bool number_unsigned(Json::number_unsigned_t value) { return number(std::to_string(value)); }
  // `text` as written: 1e3, 0.50 and integers too large for 64 bits keep their spelling.
  bool number_float(Json::number_float_t, const Json::string_t& text) { return number(text); }
  bool string(Json::string_t& value) { return add(scalar(value, internal::kQuotedTag)); }
  bool binary(Json::binary_t&) { return fail("", "binary values are not JSON"); }  // CBOR & co.

  bool start_object(size_t) { return open(YAML::Node(YAML::NodeType::Map), /*object=*/true); }
  bool key(Json::string_t& key) {
    Frame& frame = frames_.back();
    if (!frame.keys.insert(key).second) {
      return fail(field(path_to(frames_.size() - 1), key), "duplicate key");
    }
    frame.key = key;
    return true;
  }
  bool end_object() {
    frames_.pop_back();
    return true;
  }
  bool start_array(size_t) { return open(YAML::Node(YAML::NodeType::Sequence), /*object=*/false); }
  bool end_array() {
    frames_.pop_back();
    return true;
  }

  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e) {
    constexpr int kNumberOverflow = 406;  // json.exception.out_of_range.406: beyond a double
    if (e.id == kNumberOverflow) return fail(pending_path(), "number out of range");
    error_ = syntax_error(position, e.what());
    return false;
  }

  YAML::Node& root() { return root_; }
  std::optional<base::Error>& error() { return error_; }

 private:
  struct Frame {
    YAML::Node node;
    bool object = false;
    std::string key;             // object: the key of the value being read
    std::set<std::string> keys;  // object: every key so far
    size_t items = 0;            // array: items so far
  };

  static YAML::Node scalar(const std::string& text, std::string_view tag) {
    YAML::Node node(text);
    node.SetTag(std::string(tag));
    return node;
  }

  bool number(const std::string& text) {
    std::string_view digits = text;
    if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
    bool integer = !digits.empty() && digits.find_first_not_of("0123456789") == digits.npos;
    return add(scalar(text, integer ? internal::kIntTag : internal::kFloatTag));
  }

  // Appends `node` to the innermost open object or array (or makes it the root).
  bool add(const YAML::Node& node) {
    if (++values_ > internal::kMaxValues) {
      return fail("", "document too large (more than 1000000 values)");
    }
    if (frames_.empty()) {
      root_ = node;
      return true;
    }
    Frame& frame = frames_.back();
    if (frame.object) {
      frame.node.force_insert(frame.key, node);
    } else {
      frame.node.push_back(node);
      ++frame.items;
    }
    return true;
  }

  bool open(const YAML::Node& node, bool object) {
    if (!add(node)) return false;
    if (frames_.size() >= kMaxDepth) {
      return fail(path_to(frames_.size()), "nested too deeply (more than 64 levels)");
    }
    frames_.push_back(Frame{node, object, {}, {}, 0});
    return true;
  }

  // The field path of the next value, not added yet.
  std::string pending_path() const {
    if (frames_.empty()) return "";
    const Frame& f = frames_.back();
    std::string parent = path_to(frames_.size() - 1);
    return f.object ? field(parent, f.key) : parent + "[" + std::to_string(f.items) + "]";
  }

  // The field path of the value being read inside frames_[depth - 1] ("" for the root).
  std::string path_to(size_t depth) const {
    std::string path;
    for (size_t i = 0; i < depth; ++i) {
      const Frame& f = frames_[i];
      path = f.object ? field(path, f.key) : path + "[" + std::to_string(f.items - 1) + "]";
    }
    return path;
  }

  bool fail(std::string path, std::string message) {
    error_ = base::Error::config(std::move(path), std::move(message));
    return false;
  }

  // "JSON syntax error at line 3, column 7: parsing object - unexpected '}'; ...". nlohmann's
  // "; last read: '...'" is left out: it quotes the input, which may be a private key.
  base::Error syntax_error(size_t position, std::string_view what) const {
    size_t at = std::min(position, text_.size());
    if (at > 0) --at;  // position counts the offending byte
    size_t line_start = at == 0 ? 0 : text_.rfind('\n', at - 1);
    line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
    size_t line = 1;
    line += static_cast<size_t>(
        std::count(text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(line_start), '\n'));
    std::string_view detail = what;
    if (size_t column = detail.find(", column "); column != detail.npos) {
      size_t colon = detail.find(": ", column);
      if (colon != detail.npos) detail.remove_prefix(colon + 2);
    }
    if (detail.starts_with("syntax error while ")) detail.remove_prefix(19);
    if (size_t quote = detail.find("; last read: "); quote != detail.npos) {
      detail = detail.substr(0, quote);
    }
    return base::Error::config("", "JSON syntax error at line " + std::to_string(line) +
                                       ", column " + std::to_string(at - line_start + 1) + ": " +
                                       std::string(detail));
  }

  std::string_view text_;
  YAML::Node root_;
  std::vector<Frame> frames_;
  size_t values_ = 0;
  std::optional<base::Error> error_;
};

// Parses `text` (at most kMaxJsonBytes) strictly into the decoder's tree.
base::Result<YAML::Node> parse_tree(std::string_view text) {
  if (text.size() > kMaxJsonBytes) {
    return base::Error::config("", "document too large (more than 16 MiB)");
  }
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return base::Error::config("", "the document is empty");
  }
  try {
    TreeBuilder builder(text);
    bool ok =
        Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::json::input_format_t::json,
                        /*strict=*/true, /*ignore_comments=*/false);
    if (builder.error()) return std::move(*builder.error());
    if (!ok) return base::Error::internal("parsing JSON failed without an error");
    return builder.root();
  } catch (const std::exception& e) {
    return base::Error::internal(std::string("parsing JSON failed: ") + e.what());
  }
}

// --- Config -> canonical JSON --------------------------------------------------------------------

// Seconds as a JSON number: an integer when whole (2), else the exact milliseconds (0.5, 2.001).
// The shortest representation nlohmann prints for ms / 1000.0 is that decimal.
OrderedJson seconds(int64_t ms) {
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

OrderedJson encode(const Backend& b) {
  OrderedJson o;
  o["address"] = b.address;
  o["port"] = b.port;
  o["weight"] = b.weight;
  o["zone"] = b.zone;
  o["description"] = b.description;
  return o;
}

OrderedJson encode(const ServerGroup& sg) {
  OrderedJson o;
  o["name"] = sg.name;
  o["backends"] = OrderedJson::array();
  for (const Backend& b : sg.backends) o["backends"].push_back(encode(b));
  return o;
}

OrderedJson encode(const HealthCheck& hc) {
  OrderedJson o;
  o["enabled"] = hc.enabled;
  o["type"] = hc.type;
  if (hc.port) o["port"] = *hc.port;
  o["interval"] = seconds(hc.interval_ms);
  o["timeout"] = seconds(hc.timeout_ms);
  o["healthy_threshold"] = hc.healthy_threshold;
  o["unhealthy_threshold"] = hc.unhealthy_threshold;
  if (hc.type == "http") {
    o["method"] = hc.method;
    o["uri"] = hc.uri;
    o["domain"] = hc.domain;
    o["http_codes"] = hc.http_codes;
  }
  if (hc.type == "udp") {
    o["request"] = hc.request;
    o["expect"] = hc.expect;
  }
  return o;
}

OrderedJson encode(const Rule& r) {
  OrderedJson o;
  o["name"] = r.name;
  o["domain"] = r.domain;
  o["path"] = r.path;
  o["server_group"] = r.server_group;
  o["redirect"] = r.redirect;
  return o;
}

// Only the keys that apply to the listener's protocol (the decoder refuses the others).
OrderedJson encode(const Listener& l) {
  auto applies = [&](std::string_view key) {
    return internal::listener_key_applies(key, l.protocol);
  };
  OrderedJson o;
  o["protocol"] = to_string(l.protocol);
  o["port"] = l.port;
  o["server_group"] = l.server_group;
  o["status"] = to_string(l.status);
  o["scheduler"] = to_string(l.scheduler);
  if (l.acl) o["acl"] = {{"type", to_string(l.acl->type)}, {"acl", l.acl->acl}};
  o["bandwidth_mbps"] = l.bandwidth_mbps;
  o["drain_timeout"] = seconds(l.drain_timeout_ms);
  o["all_unhealthy"] = to_string(l.all_unhealthy);
  if (applies("persistence_timeout")) o["persistence_timeout"] = seconds(l.persistence_timeout_ms);
  o["idle_timeout"] = seconds(l.idle_timeout_ms);
  if (applies("connect_timeout")) o["connect_timeout"] = seconds(l.connect_timeout_ms);
  if (applies("proxy_protocol")) o["proxy_protocol"] = to_string(l.proxy_protocol);
  if (applies("request_timeout")) o["request_timeout"] = seconds(l.request_timeout_ms);
  if (applies("sticky_session") && l.sticky_session) {
    const StickySession& st = *l.sticky_session;
    o["sticky_session"] = {
        {"type", st.type}, {"cookie_timeout", st.cookie_timeout_s}, {"cookie", st.cookie}};
    if (st.type == "insert") {
      auto& j = o["sticky_session"];
      j["cookie_name"] = st.cookie_name;
      j["path"] = st.path;
      j["same_site"] = st.same_site;
      j["http_only"] = st.http_only;
      j["secure"] = st.secure;
    }
  }
  if (applies("x_forwarded")) {
    o["x_forwarded"] = {{"proto", l.x_forwarded.proto},
                        {"port", l.x_forwarded.port},
                        {"lb_id", l.x_forwarded.lb_id},
                        {"lb_ip", l.x_forwarded.lb_ip}};
  }
  if (applies("gzip")) o["gzip"] = l.gzip;
  if (applies("redirect_to_https") && l.redirect_to_https) {
    o["redirect_to_https"] = {{"port", l.redirect_to_https->port}};
  }
  if (applies("rules")) {
    o["rules"] = OrderedJson::array();
    for (const Rule& r : l.rules) o["rules"].push_back(encode(r));
  }
  if (applies("certificates")) o["certificates"] = l.certificates;
  if (applies("tls_policy")) o["tls_policy"] = l.tls_policy;
  if (applies("ca_certificate")) o["ca_certificate"] = l.ca_certificate;
  if (applies("http2")) o["http2"] = l.http2;
  o["access_log"] = l.access_log;
  o["health_check"] = encode(l.health_check);
  return o;
}

// The load balancer's own fields; with_children adds its server groups and listeners.
OrderedJson encode(const LoadBalancer& lb, bool with_children) {
  OrderedJson o;
  o["name"] = lb.name;
  o["address"] = lb.address;
  o["address_type"] = lb.address_type;
  o["status"] = lb.status;
  o["bandwidth_mbps"] = lb.bandwidth_mbps;
  o["charge_type"] = lb.charge_type;
  if (lb.zones) o["zones"] = {{"master", lb.zones->master}, {"slave", lb.zones->slave}};
  o["tags"] = OrderedJson::object();
  for (const auto& [key, value] : lb.tags) o["tags"][key] = value;
  if (with_children) {
    o["server_groups"] = OrderedJson::array();
    for (const ServerGroup& sg : lb.server_groups) o["server_groups"].push_back(encode(sg));
    o["listeners"] = OrderedJson::array();
    for (const Listener& l : lb.listeners) o["listeners"].push_back(encode(l));
  }
  return o;
}

// PEM text when present (never with a file name), else the file name; `key` only with kInclude.
OrderedJson encode(const Certificate& c, Secrets secrets) {
  OrderedJson o;
  o["name"] = c.name;
  o["type"] = c.type;
  if (!c.cert_pem.empty()) {
    o["cert"] = c.cert_pem;
  } else {
    o["cert_file"] = c.cert_file;
  }
  if (!c.key_pem.empty()) {
    if (secrets == Secrets::kInclude) o["key"] = c.key_pem;
  } else if (!c.key_file.empty()) {
    o["key_file"] = c.key_file;
  }
  return o;
}

OrderedJson encode(const Acl& a) {
  OrderedJson o;
  o["name"] = a.name;
  o["entries"] = OrderedJson::array();
  for (const AclEntry& e : a.entries) {
    o["entries"].push_back({{"cidr", e.cidr}, {"comment", e.comment}});
  }
  return o;
}

// Compact JSON. Invalid UTF-8 (only in a Config that validate() refuses) becomes U+FFFD rather
// than an exception.
std::string dump(const OrderedJson& o) {
  return o.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

// --- The store layout ----------------------------------------------------------------------------

constexpr std::string_view kLbPrefix = "/fulcrum/lb/";
constexpr std::string_view kCertificatePrefix = "/fulcrum/certificate/";
constexpr std::string_view kAclPrefix = "/fulcrum/acl/";
constexpr std::string_view kServerGroupPart = "servergroup";
constexpr std::string_view kListenerPart = "listener";

std::string lb_key(const std::string& lb) {
  return std::string(kLbPrefix) + lb;
}
std::string child_key(const std::string& lb, std::string_view part, const std::string& id) {
  return lb_key(lb) + "/" + std::string(part) + "/" + id;
}

// The document paths of the assembled resources and the store keys they came from, to name the
// key in errors: "loadbalancers[0].listeners[1].port: ..." -> key
// "/fulcrum/lb/web/listener/tcp:80", message "port: ...".
class Places {
 public:
  void add(std::string path, std::string key) {
    places_.emplace_back(std::move(path), std::move(key));
  }

  base::Error translate(base::Error e) const {
    if (e.source != base::ErrorSource::kConfig) return e;
    std::string message = rewrite(e.message);
    auto [key, rest] = locate(e.field);
    if (key.empty()) {
      e.message = std::move(message);
      return e;
    }
    return base::Error::config(key, rest.empty() ? message : rest + ": " + message);
  }

 private:
  // The key of the longest path that `path` starts with, and the rest of `path` after it.
  std::pair<std::string, std::string> locate(const std::string& path) const {
    const std::pair<std::string, std::string>* best = nullptr;
    for (const auto& place : places_) {
      const std::string& p = place.first;
      if (path.starts_with(p) &&
          (path.size() == p.size() || path[p.size()] == '.' || path[p.size()] == '[') &&
          (best == nullptr || p.size() > best->first.size())) {
        best = &place;
      }
    }
    if (best == nullptr) return {};
    std::string rest = path.substr(best->first.size());
    if (!rest.empty() && rest.front() == '.') rest.erase(0, 1);
    return {best->second, rest};
  }

  // Document paths quoted in a message ("already used by loadbalancers[1].listeners[0]") as keys.
  std::string rewrite(const std::string& message) const {
    std::string out;
    size_t i = 0;
    while (i < message.size()) {
      size_t start = message.npos;
      for (std::string_view root : {"loadbalancers[", "certificates[", "acls["}) {
        size_t at = message.find(root, i);
        if (at != message.npos && (at == 0 || message[at - 1] == ' ')) start = std::min(start, at);
      }
      if (start == message.npos) break;
      size_t end = message.find(' ', start);
      if (end == message.npos) end = message.size();
      auto [key, rest] = locate(message.substr(start, end - start));
      out += message.substr(i, start - i);
      out += key.empty()    ? message.substr(start, end - start)
             : rest.empty() ? key
                            : key + " " + rest;
      i = end;
    }
    out += message.substr(std::min(i, message.size()));
    return out;
  }

  std::vector<std::pair<std::string, std::string>> places_;  // (document path, store key)
};

// A store value: one JSON object, errors named by its key.
base::Result<YAML::Node> parse_value(const std::string& key, const std::string& value) {
  base::Result<YAML::Node> tree = parse_tree(value);
  if (!tree.ok()) {
    base::Error e = tree.take_error();
    if (e.source != base::ErrorSource::kConfig) return e;
    return base::Error::config(key, e.field.empty() ? e.message : e.field + ": " + e.message);
  }
  if (!tree->IsMap()) return base::Error::config(key, "must be a JSON object");
  return tree;
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t at = text.find(sep, start);
    parts.emplace_back(text.substr(start, at == text.npos ? text.npos : at - start));
    if (at == text.npos) return parts;
    start = at + 1;
  }
}

struct StoredLb {
  std::string key;
  YAML::Node node;                                         // null until its own key is seen
  std::vector<std::pair<std::string, YAML::Node>> groups;  // (key, value) in key order
  std::vector<std::pair<std::string, YAML::Node>> listeners;
  std::vector<std::string> group_names, listener_ids;  // from the keys
};

struct Stored {
  std::map<std::string, StoredLb> lbs;  // by name: the order of their keys
  std::vector<std::tuple<std::string, std::string, YAML::Node>> certificates, acls;  // key, name
};

base::Error bad_key(const std::string& key) {
  return base::Error::config(key,
                             "not a configuration key: expected /fulcrum/lb/<lb>, "
                             "/fulcrum/lb/<lb>/servergroup/<name>, "
                             "/fulcrum/lb/<lb>/listener/<protocol>:<port>, "
                             "/fulcrum/certificate/<name> or /fulcrum/acl/<name>");
}

// Sorts one key/value into `stored`; keys outside the three prefixes are skipped.
base::Status read_entry(const std::string& key, const std::string& value, Stored& stored) {
  std::string_view k = key;
  bool lb = k.starts_with(kLbPrefix);
  bool cert = k.starts_with(kCertificatePrefix);
  bool acl = k.starts_with(kAclPrefix);
  if (!lb && !cert && !acl) return {};
  std::string_view rest = k.substr(lb     ? kLbPrefix.size()
                                   : cert ? kCertificatePrefix.size()
                                          : kAclPrefix.size());
  std::vector<std::string> parts = split(rest, '/');
  for (const std::string& part : parts) {
    if (part.empty()) return bad_key(key);
  }
  if (parts.size() != 1 && !(lb && parts.size() == 3)) return bad_key(key);
  if (lb && parts.size() == 3 && parts[1] != kServerGroupPart && parts[1] != kListenerPart) {
    return bad_key(key);
  }
  base::Result<YAML::Node> node = parse_value(key, value);
  if (!node.ok()) return node.take_error();
  if (cert || acl) {
    (cert ? stored.certificates : stored.acls).emplace_back(key, parts[0], std::move(*node));
    return {};
  }
  StoredLb& entry = stored.lbs[parts[0]];
  if (parts.size() == 1) {
    for (auto it = node->begin(); it != node->end(); ++it) {
      const std::string& field = it->first.Scalar();
      if (field == "server_groups" || field == "listeners") {
        return base::Error::config(key, field + ": stored under keys of their own");
      }
    }
    entry.key = key;
    entry.node = std::move(*node);
  } else if (parts[1] == kServerGroupPart) {
    entry.groups.emplace_back(key, std::move(*node));
    entry.group_names.push_back(parts[2]);
  } else {
    entry.listeners.emplace_back(key, std::move(*node));
    entry.listener_ids.push_back(parts[2]);
  }
  return {};
}

// A name read from the value must be the one in its key.
base::Status check_name(const std::string& key, std::string_view what, const std::string& decoded,
                        const std::string& from_key) {
  if (decoded == from_key) return {};
  return base::Error::config(key, std::string(what) + ": \"" + decoded +
                                      "\" does not match the key (\"" + from_key + "\")");
}

}  // namespace

base::Result<Config> decode_json(std::string_view text) {
  base::Result<YAML::Node> tree = parse_tree(text);
  if (!tree.ok()) return tree.take_error();
  base::Result<Config> config = internal::decode_tree(*tree, "");
  if (!config.ok()) return config;
  if (base::Status valid = validate(*config); !valid) return valid.take_error();
  return config;
}

std::string encode_json(const Config& config, Secrets secrets) {
  OrderedJson o;
  o["loadbalancers"] = OrderedJson::array();
  for (const LoadBalancer& lb : config.loadbalancers) {
    o["loadbalancers"].push_back(encode(lb, /*with_children=*/true));
  }
  o["certificates"] = OrderedJson::array();
  for (const Certificate& c : config.certificates) o["certificates"].push_back(encode(c, secrets));
  o["acls"] = OrderedJson::array();
  for (const Acl& a : config.acls) o["acls"].push_back(encode(a));
  return dump(o);
}

std::map<std::string, std::string> to_store(const Config& config) {
  std::map<std::string, std::string> kvs;
  for (const LoadBalancer& lb : config.loadbalancers) {
    kvs[lb_key(lb.name)] = dump(encode(lb, /*with_children=*/false));
    for (const ServerGroup& sg : lb.server_groups) {
      kvs[child_key(lb.name, kServerGroupPart, sg.name)] = dump(encode(sg));
    }
    for (const Listener& l : lb.listeners) {
      kvs[child_key(lb.name, kListenerPart, l.id())] = dump(encode(l));
    }
  }
  for (const Certificate& c : config.certificates) {
    kvs[std::string(kCertificatePrefix) + c.name] = dump(encode(c, Secrets::kInclude));
  }
  for (const Acl& a : config.acls) kvs[std::string(kAclPrefix) + a.name] = dump(encode(a));
  return kvs;
}

base::Result<Config> from_store(const std::map<std::string, std::string>& kvs) {
  Stored stored;
  try {
    for (const auto& [key, value] : kvs) {
      if (base::Status read = read_entry(key, value, stored); !read) return read.take_error();
    }
  } catch (const std::exception& e) {
    return base::Error::internal(std::string("reading the store failed: ") + e.what());
  }

  // The document, in key order, and where each resource came from.
  Places places;
  YAML::Node root(YAML::NodeType::Map);
  YAML::Node lbs(YAML::NodeType::Sequence), certificates(YAML::NodeType::Sequence),
      acls(YAML::NodeType::Sequence);
  try {
    root.force_insert(std::string("loadbalancers"), lbs);
    root.force_insert(std::string("certificates"), certificates);
    root.force_insert(std::string("acls"), acls);
    size_t i = 0;
    for (auto& [name, lb] : stored.lbs) {
      const auto& orphans = lb.groups.empty() ? lb.listeners : lb.groups;
      if (lb.key.empty()) {
        return base::Error::config(orphans.front().first,
                                   "no load balancer \"" + name + "\" (" + lb_key(name) + ")");
      }
      std::string path = "loadbalancers[" + std::to_string(i++) + "]";
      places.add(path, lb.key);
      YAML::Node groups(YAML::NodeType::Sequence), listeners(YAML::NodeType::Sequence);
      for (size_t j = 0; j < lb.groups.size(); ++j) {
        places.add(path + ".server_groups[" + std::to_string(j) + "]", lb.groups[j].first);
        groups.push_back(lb.groups[j].second);
      }
      for (size_t j = 0; j < lb.listeners.size(); ++j) {
        places.add(path + ".listeners[" + std::to_string(j) + "]", lb.listeners[j].first);
        listeners.push_back(lb.listeners[j].second);
      }
      lb.node.force_insert(std::string("server_groups"), groups);
      lb.node.force_insert(std::string("listeners"), listeners);
      lbs.push_back(lb.node);
    }
    for (size_t j = 0; j < stored.certificates.size(); ++j) {
      places.add("certificates[" + std::to_string(j) + "]", std::get<0>(stored.certificates[j]));
      certificates.push_back(std::get<2>(stored.certificates[j]));
    }
    for (size_t j = 0; j < stored.acls.size(); ++j) {
      places.add("acls[" + std::to_string(j) + "]", std::get<0>(stored.acls[j]));
      acls.push_back(std::get<2>(stored.acls[j]));
    }
  } catch (const std::exception& e) {
    return base::Error::internal(std::string("reading the store failed: ") + e.what());
  }

  base::Result<Config> config = internal::decode_tree(root, "");
  if (!config.ok()) return places.translate(config.take_error());

  // Names in values must be the names in their keys.
  size_t i = 0;
  for (const auto& [name, lb] : stored.lbs) {
    const LoadBalancer& decoded = config->loadbalancers[i++];
    if (auto s = check_name(lb.key, "name", decoded.name, name); !s) return s.take_error();
    for (size_t j = 0; j < lb.groups.size(); ++j) {
      if (auto s = check_name(lb.groups[j].first, "name", decoded.server_groups[j].name,
                              lb.group_names[j]);
          !s) {
        return s.take_error();
      }
    }
    for (size_t j = 0; j < lb.listeners.size(); ++j) {
      if (auto s = check_name(lb.listeners[j].first, "protocol:port", decoded.listeners[j].id(),
                              lb.listener_ids[j]);
          !s) {
        return s.take_error();
      }
    }
  }
  for (size_t j = 0; j < stored.certificates.size(); ++j) {
    const auto& [key, name, node] = stored.certificates[j];
    if (auto s = check_name(key, "name", config->certificates[j].name, name); !s) {
      return s.take_error();
    }
  }
  for (size_t j = 0; j < stored.acls.size(); ++j) {
    const auto& [key, name, node] = stored.acls[j];
    if (auto s = check_name(key, "name", config->acls[j].name, name); !s) return s.take_error();
  }

  if (base::Status valid = validate(*config); !valid) return places.translate(valid.take_error());
  return config;
}

}  // namespace fulcrum::config
