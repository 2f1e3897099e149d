#include "api/api.h"

#include <nlohmann/json.hpp>

#include <ctime>
#include <functional>
#include <optional>
#include <set>

#include "base/hash.h"
#include "base/log.h"
#include "config/json.h"
#include "config/yaml.h"
#include "net/address.h"

namespace fulcrum::api {

using json = nlohmann::ordered_json;

namespace {

enum Handler : int {
  kLbList,
  kLbCreate,
  kLbGet,
  kLbPatch,
  kLbDelete,
  kSgList,
  kSgCreate,
  kSgGet,
  kSgPatch,
  kSgDelete,
  kBackendsAdd,
  kBackendsReplace,
  kBackendDelete,
  kLsList,
  kLsCreate,
  kLsGet,
  kLsPatch,
  kLsDelete,
  kLsStart,
  kLsStop,
  kRuleList,
  kRuleCreate,
  kRuleDelete,
  kHealth,
  kExplain,
  kCertList,
  kCertCreate,
  kCertGet,
  kCertDelete,
  kAclList,
  kAclCreate,
  kAclGet,
  kAclDelete,
  kApply,
  kConfig,
  kStatus,
  kNodeList,
  kNodeDelete,
  kMetrics,
  kHealthz,
  kReadyz,
};

constexpr int kMaxJsonDepth = 32;

// A request that cannot go on: its answer.
struct Stop {
  Response response;
};

[[noreturn]] void stop(int status, std::string_view code, std::string_view message,
                       std::string_view field = {}) {
  throw Stop{error_response(status, code, message, field)};
}
[[noreturn]] void not_found(std::string_view what, std::string_view name) {
  stop(404, "NotFound", std::string(what) + " '" + std::string(name) + "' not found");
}
[[noreturn]] void conflict(std::string message, std::string_view field = {}) {
  stop(409, "Conflict", message, field);
}
[[noreturn]] void invalid(std::string message, std::string_view field = {}) {
  stop(400, "InvalidParameter", message, field);
}

// "2026-12-07T18:00:00.123Z"
std::string rfc3339(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  return r;
}

// Strict JSON: RFC 8259 syntax, no duplicate keys, bounded depth.
json parse_strict(std::string_view text) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  bool too_deep = false;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (depth > kMaxJsonDepth) {
      too_deep = true;
      return false;
    }
    switch (ev) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                      /*ignore_comments=*/false);
  } catch (const json::parse_error& e) {
    invalid(std::string("malformed JSON: ") + e.what());
  }
  if (too_deep) invalid("malformed JSON: nested deeper than 32 levels");
  if (!duplicate.empty()) invalid("malformed JSON: duplicate key", duplicate);
  return doc;
}

// "listeners[2].port" relative to the object the request named: strips `prefix` + ".".
std::string relative(const std::string& field, const std::string& prefix) {
  if (prefix.empty()) return field;
  if (field == prefix) return "";
  if (field.size() > prefix.size() && field.compare(0, prefix.size(), prefix) == 0 &&
      field[prefix.size()] == '.') {
    return field.substr(prefix.size() + 1);
  }
  return field;
}

bool is_conflict_message(const std::string& message) {
  return message.rfind("already used by", 0) == 0 || message.rfind("already defined by", 0) == 0;
}

std::string listener_id(const json& l) {
  std::string proto =
      l.contains("protocol") && l["protocol"].is_string() ? l["protocol"].get<std::string>() : "";
  std::string port = l.contains("port") && l["port"].is_number_integer()
                         ? std::to_string(l["port"].get<int64_t>())
                         : "";
  return proto + ":" + port;
}

// Index of the object in `arr` whose `key` equals `value`, or -1.
int64_t index_of(const json& arr, const char* key, const std::string& value) {
  if (!arr.is_array()) return -1;
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& o = arr[i];
    if (o.is_object() && o.contains(key) && o[key].is_string() &&
        o[key].get<std::string>() == value)
      return static_cast<int64_t>(i);
  }
  return -1;
}

int64_t listener_index(const json& arr, const std::string& id) {
  if (!arr.is_array()) return -1;
  for (size_t i = 0; i < arr.size(); ++i) {
    if (listener_id(arr[i]) == id) return static_cast<int64_t>(i);
  }
  return -1;
}

// "127.0.0.1:9001" or "[::1]:9001" -> ("127.0.0.1", 9001) / ("::1", 9001).
bool split_backend(const std::string& text, std::string* address, int64_t* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int64_t p = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9' || p > 65535) return false;
    p = p * 10 + (c - '0');
  }
  *address = host;
  *port = p;
  return !host.empty() && p > 0 && p <= 65535;
}

int64_t backend_index(const json& arr, const std::string& address, int64_t port) {
  if (!arr.is_array()) return -1;
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& b = arr[i];
    if (b.is_object() && b.value("address", "") == address && b.contains("port") &&
        b["port"].is_number_integer() && b["port"].get<int64_t>() == port) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

json& array_at(json& obj, const char* key) {
  if (!obj.contains(key) || obj[key].is_null()) obj[key] = json::array();
  if (!obj[key].is_array()) invalid(std::string("must be a list"), key);
  return obj[key];
}

const char* refusal_code(Refusal r) {
  switch (r) {
    case Refusal::kInvalid:
      return "InvalidParameter";
    case Refusal::kConflict:
      return "Conflict";
    case Refusal::kUnsupported:
      return "Unsupported";
    case Refusal::kUnavailable:
      return "StoreUnavailable";
    case Refusal::kNone:
      break;
  }
  return "Internal";
}
int refusal_status(Refusal r) {
  switch (r) {
    case Refusal::kInvalid:
      return 400;
    case Refusal::kConflict:
      return 409;
    case Refusal::kUnsupported:
      return 422;
    case Refusal::kUnavailable:
      return 503;
    case Refusal::kNone:
      break;
  }
  return 500;
}

}  // namespace

Router make_router() {
  Router r;
  const std::string lb = "/v1/loadbalancers/{lb}";
  const std::string sg = lb + "/servergroups/{servergroup}";
  const std::string ls = lb + "/listeners/{listener}";
  auto add = [&r](const char* method, std::string pattern, Role role, const char* summary,
                  int handler) {
    r.add(Route{method, std::move(pattern), role, summary, handler});
  };
  add("GET", "/v1/loadbalancers", Role::kReader, "List load balancers", kLbList);
  add("POST", "/v1/loadbalancers", Role::kAdmin, "Create a load balancer", kLbCreate);
  add("GET", lb, Role::kReader, "Get a load balancer", kLbGet);
  add("PATCH", lb, Role::kAdmin, "Change a load balancer (JSON merge patch)", kLbPatch);
  add("DELETE", lb, Role::kAdmin, "Delete a load balancer", kLbDelete);
  add("GET", lb + "/servergroups", Role::kReader, "List server groups", kSgList);
  add("POST", lb + "/servergroups", Role::kAdmin, "Create a server group", kSgCreate);
  add("GET", sg, Role::kReader, "Get a server group", kSgGet);
  add("PATCH", sg, Role::kAdmin, "Change a server group (JSON merge patch)", kSgPatch);
  add("DELETE", sg, Role::kAdmin, "Delete a server group", kSgDelete);
  add("POST", sg + "/backends", Role::kAdmin, "Add one backend or a list", kBackendsAdd);
  add("PUT", sg + "/backends", Role::kAdmin, "Replace all backends", kBackendsReplace);
  add("DELETE", sg + "/backends/{backend}", Role::kAdmin, "Remove a backend (it drains)",
      kBackendDelete);
  add("GET", lb + "/listeners", Role::kReader, "List listeners", kLsList);
  add("POST", lb + "/listeners", Role::kAdmin, "Create a listener", kLsCreate);
  add("GET", ls, Role::kReader, "Get a listener", kLsGet);
  add("PATCH", ls, Role::kAdmin, "Change a listener (JSON merge patch)", kLsPatch);
  add("DELETE", ls, Role::kAdmin, "Delete a listener", kLsDelete);
  add("POST", ls + "/start", Role::kAdmin, "Start a listener", kLsStart);
  add("POST", ls + "/stop", Role::kAdmin, "Stop a listener", kLsStop);
  add("GET", ls + "/rules", Role::kReader, "List forwarding rules", kRuleList);
  add("POST", ls + "/rules", Role::kAdmin, "Add a forwarding rule", kRuleCreate);
  add("DELETE", ls + "/rules/{rule}", Role::kAdmin, "Delete a forwarding rule", kRuleDelete);
  add("GET", lb + "/health", Role::kReader, "Backend status per listener", kHealth);
  add("GET", ls + "/explain", Role::kReader, "Which backend the live balancer picks", kExplain);
  add("GET", "/v1/certificates", Role::kReader, "List certificates", kCertList);
  add("POST", "/v1/certificates", Role::kAdmin, "Add a certificate", kCertCreate);
  add("GET", "/v1/certificates/{certificate}", Role::kReader, "Get a certificate", kCertGet);
  add("DELETE", "/v1/certificates/{certificate}", Role::kAdmin, "Delete a certificate",
      kCertDelete);
  add("GET", "/v1/acls", Role::kReader, "List access control lists", kAclList);
  add("POST", "/v1/acls", Role::kAdmin, "Add an access control list", kAclCreate);
  add("GET", "/v1/acls/{acl}", Role::kReader, "Get an access control list", kAclGet);
  add("DELETE", "/v1/acls/{acl}", Role::kAdmin, "Delete an access control list", kAclDelete);
  add("POST", "/v1/apply", Role::kAdmin, "Apply a whole document atomically", kApply);
  add("GET", "/v1/config", Role::kReader, "The whole running document", kConfig);
  add("GET", "/v1/status", Role::kReader, "Node, store and active generation", kStatus);
  add("GET", "/v1/nodes", Role::kReader, "Every node of the cluster", kNodeList);
  add("DELETE", "/v1/nodes/{node}", Role::kAdmin, "Forget a node that is down", kNodeDelete);
  add("GET", "/metrics", Role::kReader, "Prometheus metrics", kMetrics);
  add("GET", "/healthz", Role::kNone, "Liveness", kHealthz);
  add("GET", "/readyz", Role::kNone, "Readiness", kReadyz);
  return r;
}

struct Api::Call {
  Request request;
  Params params;
  Role role = Role::kNone;
  // While a mutation's edit runs: the document it edits (the running one, or a fresher one).
  const config::Config* current = nullptr;

  const std::string& param(const char* name) const {
    for (const auto& [k, v] : params) {
      if (k == name) return v;
    }
    static const std::string kEmpty;
    return kEmpty;
  }
};

Api::Api(Control& control, Tokens tokens)
    : control_(control), tokens_(std::move(tokens)), router_(make_router()) {}
Api::~Api() = default;

void Api::handle(Request request, Respond respond_plain) {
  // Every answer (errors and /metrics included) says which store revision this node serves: reads
  // answer from the node's copy.
  Respond respond = [this, inner = std::move(respond_plain)](Response r) {
    r.headers.emplace_back("Fulcrum-Revision", std::to_string(control_.revision()));
    inner(std::move(r));
  };
  Router::Match m = router_.match(request.method, request.path);
  Role needed = m.route ? m.route->role : Role::kReader;
  Role role = authorize(tokens_, request.authorization);
  if (needed != Role::kNone && role == Role::kNone) {
    Response r = error_response(
        401, "Unauthorized",
        request.authorization.empty() ? "missing bearer token" : "invalid bearer token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    respond(std::move(r));
    return;
  }
  if (!m.route) {
    Response r = m.status == 405 ? error_response(405, "MethodNotAllowed",
                                                  request.method + " is not allowed here")
                                 : error_response(404, "NotFound", "no such route");
    if (m.status == 405) r.headers.emplace_back("Allow", m.allow);
    respond(std::move(r));
    return;
  }
  if (needed == Role::kAdmin && role != Role::kAdmin) {
    respond(error_response(403, "Forbidden", "this token may only read"));
    return;
  }
  if (m.route->handler == kMetrics) {
    control_.render_metrics([respond](std::string text) {
      Response r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = std::move(text);
      respond(std::move(r));
    });
    return;
  }
  auto call = std::make_shared<Call>(Call{std::move(request), std::move(m.params), role, nullptr});
  const int handler = m.route->handler;
  Respond answer = [respond = std::move(respond), call, handler](Response response) {
    if (handler != kHealthz && handler != kReadyz && call->request.method != "GET") {
      FLOG_INFO("admin API: {} {} from {} -> {}", call->request.method, call->request.path,
                call->request.peer, response.status);
    }
    respond(std::move(response));
  };
  Response response;
  try {
    // Copies: a handler that throws before taking the change leaves `answer` to the catch below.
    if (handler == kApply) return apply_document(call, answer);
    if (handler == kNodeDelete) return forget_node(call, answer);
    if (call->request.method != "GET") return mutate(call, answer);
    response = dispatch(*call);
  } catch (const Stop& s) {
    response = s.response;
  } catch (const std::exception& e) {
    FLOG_ERROR("admin API: {} {}: {}", call->request.method, call->request.path, e.what());
    response = error_response(500, "Internal", "internal error");
  }
  answer(std::move(response));
}

namespace {

// Maps a document path in an error to the body the request sent: "weight" for a single object,
// "[i].weight" for a list, else relative to the object the request named.
struct FieldMap {
  std::string prefix;
  std::string list;
  size_t first = 0;
  bool single = false;

  std::string operator()(const std::string& path) const {
    if (!list.empty() && path.size() > list.size() + 1 && path.compare(0, list.size(), list) == 0 &&
        path[list.size()] == '[') {
      size_t close = path.find(']', list.size());
      if (close != std::string::npos) {
        size_t index = std::stoul(path.substr(list.size() + 1, close - list.size() - 1));
        if (index >= first) {
          std::string rest = path.substr(close + 1);
          if (single) return rest.empty() ? "" : rest.substr(1);
          return "[" + std::to_string(index - first) + "]" + rest;
        }
      }
    }
    return relative(path, prefix);
  }
};

// How a mutation's edit ends: the decoded next document, and how to answer once it is applied.
struct Committed {
  config::Config next;
  std::function<Response()> answer;
  FieldMap fields;
};

// The working state of one mutation: the whole document as JSON, changed in place, then decoded.
// commit() ends the edit by throwing Committed (or Stop when the result is invalid); the node then
// applies it, possibly running the edit again on a fresher document.
class Mutation {
 public:
  Mutation(const config::Config& current, std::string error_prefix) {
    fields_.prefix = std::move(error_prefix);
    doc_ = json::parse(config::encode_json(current, config::Secrets::kInclude));
  }

  json& doc() { return doc_; }
  void set_prefix(std::string p) { fields_.prefix = std::move(p); }
  // The request sent items for the list at document path `list` (".../backends"), appended from
  // index `first`: errors inside them are named relative to the body — "weight" for a single
  // object, "[i].weight" for a list.
  void set_list_prefix(std::string list, size_t first, bool single) {
    fields_.list = std::move(list);
    fields_.first = first;
    fields_.single = single;
  }

  // Decodes and validates (Stop with 400/409 on a broken rule), then ends the edit; `answer`
  // builds the response once the change runs.
  [[noreturn]] void commit(std::function<Response()> answer) {
    auto decoded = config::decode_json(doc_.dump());
    if (!decoded.ok()) {
      const base::Error& e = decoded.error();
      if (is_conflict_message(e.message)) conflict(e.message, fields_(e.field));
      invalid(e.message, fields_(e.field));
    }
    throw Committed{std::move(*decoded), std::move(answer), fields_};
  }

 private:
  FieldMap fields_;
  json doc_;
};

Response no_content() {
  return Response{204, "application/json", "", {}};
}

// The public (key-less) JSON of the running document.
json public_doc(const Control& control) {
  return json::parse(config::encode_json(control.config(), config::Secrets::kOmit));
}

std::string lb_path(int64_t i) {
  return "loadbalancers[" + std::to_string(i) + "]";
}

}  // namespace

// A change of one resource: the route's handler edits the document it is given (running it again
// on a fresher document if another node's write got in first) and the node applies the result.
void Api::mutate(std::shared_ptr<Call> call, Respond respond) {
  struct State {
    std::optional<Response> refused;
    std::function<Response()> answer;
    FieldMap fields;
  };
  auto state = std::make_shared<State>();
  Edit edit = [this, call, state](const config::Config& current) -> std::optional<config::Config> {
    call->current = &current;
    try {
      Response r = dispatch(*call);  // a handler that returns has nothing to change
      state->refused = std::move(r);
    } catch (Committed& c) {
      call->current = nullptr;
      state->answer = std::move(c.answer);
      state->fields = std::move(c.fields);
      state->refused.reset();
      return std::move(c.next);
    } catch (const Stop& s) {
      state->refused = s.response;
    } catch (const std::exception& e) {
      FLOG_ERROR("admin API: {} {}: {}", call->request.method, call->request.path, e.what());
      state->refused = error_response(500, "Internal", "internal error");
    }
    call->current = nullptr;
    return std::nullopt;
  };
  control_.change(
      std::move(edit), /*dry_run=*/false, EditKind::kResource,
      [state, respond = std::move(respond)](ApplyOutcome out) {
        if (out.edit_refused) {
          return respond(state->refused ? *state->refused
                                        : error_response(500, "Internal", "no answer"));
        }
        if (out.refusal != Refusal::kNone) {
          return respond(error_response(refusal_status(out.refusal), refusal_code(out.refusal),
                                        out.error.message, state->fields(out.error.field)));
        }
        try {
          respond(state->answer());
        } catch (const Stop& s) {
          respond(s.response);
        }
      });
}

void Api::forget_node(std::shared_ptr<Call> call, Respond respond) {
  control_.forget_node(call->param("node"), [respond](int status, base::Error error) {
    if (status == 204) return respond(no_content());
    const char* code = status == 404 ? "NotFound" : status == 409 ? "Conflict" : "StoreUnavailable";
    respond(error_response(status, code, error.message, error.field));
  });
}

Response Api::dispatch(Call& call) {
  const Request& req = call.request;
  auto body = [&req]() -> json {
    if (req.content_type != "application/json") {
      stop(415, "UnsupportedMediaType", "send Content-Type: application/json");
    }
    if (req.body.empty()) invalid("a JSON body is required");
    return parse_strict(req.body);
  };
  auto object_body = [&body]() -> json {
    json b = body();
    if (!b.is_object()) invalid("the body must be a JSON object");
    return b;
  };
  // Finds the load balancer of the path in `doc` (404 when missing).
  auto find_lb = [&call](json& doc) -> int64_t {
    int64_t i = index_of(doc["loadbalancers"], "name", call.param("lb"));
    if (i < 0) not_found("load balancer", call.param("lb"));
    return i;
  };
  auto find_sg = [&call](json& lb) -> int64_t {
    int64_t i = index_of(lb["server_groups"], "name", call.param("servergroup"));
    if (i < 0) not_found("server group", call.param("servergroup"));
    return i;
  };
  auto find_ls = [&call](json& lb) -> int64_t {
    int64_t i = listener_index(lb["listeners"], call.param("listener"));
    if (i < 0) not_found("listener", call.param("listener"));
    return i;
  };
  auto ix = [](int64_t i) { return static_cast<size_t>(i); };
  // The load balancer as it runs after the change.
  auto fresh_lb = [this](const std::string& name) -> json {
    json d = public_doc(control_);
    int64_t i = index_of(d["loadbalancers"], "name", name);
    return i < 0 ? json::object() : d["loadbalancers"][static_cast<size_t>(i)];
  };

  const int h = router_.match(req.method, req.path).route->handler;
  switch (h) {
    case kHealthz:
      return json_response(200, {{"status", "ok"}});
    case kReadyz:
      if (!control_.ready()) return json_response(503, {{"status", "starting"}});
      return json_response(200, {{"status", "ready"}});
    case kStatus: {
      NodeStatus s = control_.status();
      return json_response(200, {{"node", s.node},
                                 {"zone", s.zone},
                                 {"store",
                                  {{"kind", s.store.kind},
                                   {"endpoints", s.store.endpoints},
                                   {"revision", s.revision},
                                   {"reachable", s.store.reachable}}},
                                 {"config_source", s.config_source},
                                 {"revision", s.revision},
                                 {"generation", s.generation},
                                 {"workers", s.workers},
                                 {"ready", control_.ready()},
                                 {"started_unix_ms", s.started_unix_ms}});
    }
    case kConfig:
      return json_response(200, public_doc(control_));
    case kNodeDelete:  // handled by handle()
      break;
    case kNodeList: {
      json nodes = json::array();
      for (const NodeView& n : control_.nodes()) {
        nodes.push_back({{"name", n.name},
                         {"zone", n.zone},
                         {"admin", n.admin},
                         {"state", n.up ? "up" : "down"},
                         {"revision", n.revision},
                         {"generation", n.generation},
                         {"last_seen", rfc3339(n.last_seen_unix_ms)},
                         {"last_seen_unix_ms", n.last_seen_unix_ms}});
      }
      return json_response(200, {{"nodes", nodes}});
    }

    // --- Load balancers ---------------------------------------------------------------------
    case kLbList:
      return json_response(200, {{"loadbalancers", public_doc(control_)["loadbalancers"]}});
    case kLbGet: {
      json d = public_doc(control_);
      return json_response(200, d["loadbalancers"][ix(find_lb(d))]);
    }
    case kLbCreate: {
      json b = object_body();
      Mutation m(*call.current, "");
      json& lbs = array_at(m.doc(), "loadbalancers");
      if (b.contains("name") && b["name"].is_string() &&
          index_of(lbs, "name", b["name"].get<std::string>()) >= 0) {
        conflict("a load balancer with this name exists", "name");
      }
      m.set_prefix(lb_path(static_cast<int64_t>(lbs.size())));
      lbs.push_back(b);
      m.commit(
          [fresh_lb, name = b.value("name", "")] { return json_response(201, fresh_lb(name)); });
    }
    case kLbPatch: {
      json b = object_body();
      Mutation m(*call.current, "");
      int64_t i = find_lb(m.doc());
      json& lb = m.doc()["loadbalancers"][ix(i)];
      if (b.contains("name") && b["name"] != lb["name"]) invalid("cannot be changed", "name");
      m.set_prefix(lb_path(i));
      lb.merge_patch(b);
      m.commit([fresh_lb, name = call.param("lb")] { return json_response(200, fresh_lb(name)); });
    }
    case kLbDelete: {
      Mutation m(*call.current, "");
      int64_t i = find_lb(m.doc());
      m.doc()["loadbalancers"].erase(ix(i));
      m.commit(no_content);
    }

    // --- Server groups and backends -----------------------------------------------------------
    case kSgList: {
      json d = public_doc(control_);
      return json_response(
          200, {{"server_groups", d["loadbalancers"][ix(find_lb(d))]["server_groups"]}});
    }
    case kSgGet: {
      json d = public_doc(control_);
      json& lb = d["loadbalancers"][ix(find_lb(d))];
      return json_response(200, lb["server_groups"][ix(find_sg(lb))]);
    }
    case kSgCreate:
    case kSgPatch:
    case kSgDelete:
    case kBackendsAdd:
    case kBackendsReplace:
    case kBackendDelete: {
      Mutation m(*call.current, "");
      int64_t li = find_lb(m.doc());
      json& lb = m.doc()["loadbalancers"][ix(li)];
      json& groups = array_at(lb, "server_groups");
      std::string group_name;
      int status = 200;
      if (h == kSgCreate) {
        json b = object_body();
        group_name = b.value("name", "");
        if (!group_name.empty() && index_of(groups, "name", group_name) >= 0) {
          conflict("a server group with this name exists", "name");
        }
        m.set_prefix(lb_path(li) + ".server_groups[" + std::to_string(groups.size()) + "]");
        groups.push_back(b);
        status = 201;
      } else {
        int64_t gi = find_sg(lb);
        group_name = call.param("servergroup");
        json& g = groups[ix(gi)];
        std::string gpath = lb_path(li) + ".server_groups[" + std::to_string(gi) + "]";
        m.set_prefix(gpath);
        if (h == kSgPatch) {
          json b = object_body();
          if (b.contains("name") && b["name"] != g["name"]) invalid("cannot be changed", "name");
          g.merge_patch(b);
        } else if (h == kSgDelete) {
          for (const json& l : lb.value("listeners", json::array())) {
            bool used = l.value("server_group", "") == group_name;
            for (const json& rule : l.value("rules", json::array())) {
              used = used || rule.value("server_group", "") == group_name;
            }
            if (used) {
              conflict("server group '" + group_name + "' is used by listener " + listener_id(l));
            }
          }
          groups.erase(ix(gi));
          m.commit(no_content);
        } else if (h == kBackendDelete) {
          std::string address;
          int64_t port = 0;
          if (!split_backend(call.param("backend"), &address, &port)) {
            invalid("must be ADDRESS:PORT ([v6]:PORT for IPv6)", "backend");
          }
          json& backends = array_at(g, "backends");
          int64_t bi = backend_index(backends, address, port);
          if (bi < 0) not_found("backend", call.param("backend"));
          backends.erase(ix(bi));
          m.commit(no_content);
        } else {
          json b = body();
          json& backends = array_at(g, "backends");
          if (h == kBackendsReplace) {
            if (!b.is_array()) invalid("the body must be a JSON list of backends");
            m.set_list_prefix(gpath + ".backends", 0, false);
            backends = b;
          } else {
            m.set_list_prefix(gpath + ".backends", backends.size(), !b.is_array());
            json list = b.is_array() ? b : json::array({b});
            for (const json& nb : list) {
              if (nb.is_object() && nb.contains("address") && nb["address"].is_string() &&
                  nb.contains("port") && nb["port"].is_number_integer() &&
                  backend_index(backends, nb["address"].get<std::string>(),
                                nb["port"].get<int64_t>()) >= 0) {
                conflict("backend " + nb["address"].get<std::string>() + ":" +
                         std::to_string(nb["port"].get<int64_t>()) + " is already in the group");
              }
              backends.push_back(nb);
            }
            status = 201;
          }
        }
      }
      m.commit([fresh_lb, lb_name = call.param("lb"), group_name, status] {
        json nlb = fresh_lb(lb_name);
        int64_t gi = index_of(nlb["server_groups"], "name", group_name);
        return json_response(
            status, gi < 0 ? json::object() : nlb["server_groups"][static_cast<size_t>(gi)]);
      });
    }

    // --- Listeners and rules ------------------------------------------------------------------
    case kLsList: {
      json d = public_doc(control_);
      return json_response(200, {{"listeners", d["loadbalancers"][ix(find_lb(d))]["listeners"]}});
    }
    case kLsGet: {
      json d = public_doc(control_);
      json& lb = d["loadbalancers"][ix(find_lb(d))];
      return json_response(200, lb["listeners"][ix(find_ls(lb))]);
    }
    case kRuleList: {
      json d = public_doc(control_);
      json& lb = d["loadbalancers"][ix(find_lb(d))];
      json& l = lb["listeners"][ix(find_ls(lb))];
      return json_response(200, {{"rules", l.value("rules", json::array())}});
    }
    case kLsCreate:
    case kLsPatch:
    case kLsDelete:
    case kLsStart:
    case kLsStop:
    case kRuleCreate:
    case kRuleDelete: {
      Mutation m(*call.current, "");
      int64_t li = find_lb(m.doc());
      json& lb = m.doc()["loadbalancers"][ix(li)];
      json& listeners = array_at(lb, "listeners");
      std::string id;
      int status = 200;
      if (h == kLsCreate) {
        json b = object_body();
        id = listener_id(b);
        if (listener_index(listeners, id) >= 0) conflict("listener " + id + " exists", "port");
        m.set_prefix(lb_path(li) + ".listeners[" + std::to_string(listeners.size()) + "]");
        listeners.push_back(b);
        status = 201;
      } else {
        int64_t i = find_ls(lb);
        id = call.param("listener");
        json& l = listeners[ix(i)];
        std::string lpath = lb_path(li) + ".listeners[" + std::to_string(i) + "]";
        m.set_prefix(lpath);
        if (h == kLsPatch) {
          json b = object_body();
          if (b.contains("protocol") && b["protocol"] != l["protocol"]) {
            invalid("cannot be changed (create another listener)", "protocol");
          }
          if (b.contains("port") && b["port"] != l["port"]) {
            invalid("cannot be changed (create another listener)", "port");
          }
          l.merge_patch(b);
        } else if (h == kLsDelete) {
          listeners.erase(ix(i));
          m.commit(no_content);
        } else if (h == kLsStart || h == kLsStop) {
          l["status"] = h == kLsStart ? "running" : "stopped";
        } else if (h == kRuleCreate) {
          json b = object_body();
          json& rules = array_at(l, "rules");
          std::string name = b.value("name", "");
          if (!name.empty() && index_of(rules, "name", name) >= 0) {
            conflict("a rule with this name exists", "name");
          }
          m.set_prefix(lpath + ".rules[" + std::to_string(rules.size()) + "]");
          rules.push_back(b);
          status = 201;
        } else if (h == kRuleDelete) {
          json& rules = array_at(l, "rules");
          int64_t ri = index_of(rules, "name", call.param("rule"));
          if (ri < 0) not_found("rule", call.param("rule"));
          rules.erase(ix(ri));
          m.commit(no_content);
        }
      }
      m.commit([fresh_lb, lb_name = call.param("lb"), id, status, rule = h == kRuleCreate] {
        json nlb = fresh_lb(lb_name);
        int64_t i = listener_index(nlb["listeners"], id);
        json out = i < 0 ? json::object() : nlb["listeners"][static_cast<size_t>(i)];
        if (rule) out = out.value("rules", json::array()).back();
        return json_response(status, out);
      });
    }

    // --- Certificates and ACLs ----------------------------------------------------------------
    case kCertList:
      return json_response(200, {{"certificates", public_doc(control_)["certificates"]}});
    case kAclList:
      return json_response(200, {{"acls", public_doc(control_)["acls"]}});
    case kCertGet:
    case kAclGet: {
      const bool cert = h == kCertGet;
      const char* key = cert ? "certificates" : "acls";
      const std::string& name = call.param(cert ? "certificate" : "acl");
      json d = public_doc(control_);
      int64_t i = index_of(d[key], "name", name);
      if (i < 0) not_found(cert ? "certificate" : "acl", name);
      return json_response(200, d[key][ix(i)]);
    }
    case kCertCreate:
    case kAclCreate: {
      const bool cert = h == kCertCreate;
      const char* key = cert ? "certificates" : "acls";
      json b = object_body();
      Mutation m(*call.current, "");
      json& list = array_at(m.doc(), key);
      std::string name = b.value("name", "");
      if (!name.empty() && index_of(list, "name", name) >= 0) {
        conflict(std::string(cert ? "a certificate" : "an acl") + " with this name exists", "name");
      }
      m.set_prefix(std::string(key) + "[" + std::to_string(list.size()) + "]");
      list.push_back(b);
      m.commit([this, key, name] {
        json d = public_doc(control_);
        int64_t i = index_of(d[key], "name", name);
        return json_response(201, i < 0 ? json::object() : d[key][static_cast<size_t>(i)]);
      });
    }
    case kCertDelete:
    case kAclDelete: {
      const bool cert = h == kCertDelete;
      const char* key = cert ? "certificates" : "acls";
      const std::string& name = call.param(cert ? "certificate" : "acl");
      Mutation m(*call.current, "");
      json& list = array_at(m.doc(), key);
      int64_t i = index_of(list, "name", name);
      if (i < 0) not_found(cert ? "certificate" : "acl", name);
      for (const json& lb : m.doc()["loadbalancers"]) {
        for (const json& l : lb.value("listeners", json::array())) {
          bool used = false;
          if (cert) {
            for (const json& c : l.value("certificates", json::array())) used = used || c == name;
            used = used || l.value("ca_certificate", "") == name;
          } else if (l.contains("acl") && l["acl"].is_object()) {
            used = l["acl"].value("acl", "") == name;
          }
          if (used) {
            conflict(std::string(cert ? "certificate" : "acl") + " '" + name +
                     "' is used by load balancer " + lb.value("name", "") + " listener " +
                     listener_id(l));
          }
        }
      }
      list.erase(ix(i));
      m.commit(no_content);
    }

    // --- Whole documents, health, explain -----------------------------------------------------
    case kApply:  // handled by handle(), never dispatched
      break;
    case kHealth:
      return health(call);
    case kExplain:
      return explain(call);
  }
  return error_response(500, "Internal", "unhandled route");
}

void Api::apply_document(std::shared_ptr<Call> call, Respond respond) {
  const Request& req = call->request;
  std::string flag;
  bool dry_run = query_param(req.query, "dry_run", &flag) && (flag == "true" || flag == "1");
  base::Result<config::Config> decoded = base::Error::internal("no body");
  if (req.content_type == "application/json") {
    decoded = config::decode_json(req.body);
  } else if (req.content_type == "application/yaml" || req.content_type == "application/x-yaml" ||
             req.content_type == "text/yaml") {
    decoded = config::decode_yaml(req.body, "");
  } else {
    stop(415, "UnsupportedMediaType", "send application/json or application/yaml");
  }
  if (!decoded.ok()) {
    const base::Error& e = decoded.error();
    if (is_conflict_message(e.message)) conflict(e.message, e.field);
    invalid(e.message, e.field);
  }
  auto changes = std::make_shared<json>(json::array());
  // What the document changes, against the document it is applied to.
  Edit edit = [next = std::move(*decoded), changes](const config::Config& current) {
    const auto before = config::to_store(current);
    const auto after = config::to_store(next);
    *changes = json::array();
    for (const auto& [key, value] : after) {
      auto it = before.find(key);
      if (it == before.end()) {
        changes->push_back({{"op", "create"}, {"key", key}});
      } else if (it->second != value) {
        changes->push_back({{"op", "update"}, {"key", key}});
      }
    }
    for (const auto& [key, value] : before) {
      if (!after.count(key)) changes->push_back({{"op", "delete"}, {"key", key}});
    }
    return std::optional<config::Config>(next);
  };
  control_.change(
      std::move(edit), dry_run, EditKind::kDocument,
      [dry_run, changes, respond = std::move(respond)](ApplyOutcome out) {
        if (out.refusal != Refusal::kNone) {
          return respond(error_response(refusal_status(out.refusal), refusal_code(out.refusal),
                                        out.error.message, out.error.field));
        }
        respond(json_response(200, {{"dry_run", dry_run},
                                    {"changes", *changes},
                                    {"revision", out.revision},
                                    {"generation", out.generation}}));
      });
}

namespace {

json backends_view(const snapshot::ServerGroup& group,
                   const std::vector<snapshot::Health>& health) {
  json list = json::array();
  for (size_t i = 0; i < group.backends.size(); ++i) {
    const snapshot::Backend& b = group.backends[i];
    snapshot::Health h = i < health.size() ? health[i] : snapshot::Health::kUnchecked;
    list.push_back({{"backend", b.name},
                    {"weight", b.weight},
                    {"status", std::string(snapshot::backend_status(b.weight, h))}});
  }
  return list;
}

}  // namespace

Response Api::health(Call& call) {
  const std::string& lb = call.param("lb");
  bool known = false;
  for (const auto& l : control_.config().loadbalancers) known = known || l.name == lb;
  if (!known) not_found("load balancer", lb);
  auto snap = control_.snapshot();
  json listeners = json::array();
  for (const auto& l : snap ? snap->listeners : decltype(snap->listeners){}) {
    if (l->lb_name != lb) continue;
    json groups = json::array();
    std::set<std::string> seen;
    if (!l->targets.empty()) {
      for (const snapshot::HttpTarget& t : l->targets) {
        if (!t.group || !seen.insert(t.group->name).second) continue;
        groups.push_back(
            {{"server_group", t.group->name}, {"backends", backends_view(*t.group, t.health)}});
      }
    } else if (l->group) {
      groups.push_back(
          {{"server_group", l->group->name}, {"backends", backends_view(*l->group, l->health)}});
    }
    listeners.push_back({{"listener", l->id},
                         {"status", l->running ? "running" : "stopped"},
                         {"server_groups", groups}});
  }
  return json_response(200, {{"loadbalancer", lb}, {"listeners", listeners}});
}

Response Api::explain(Call& call) {
  const Request& req = call.request;
  std::string client_text, host, path = "/";
  if (!query_param(req.query, "client", &client_text)) {
    invalid("the client address is required (?client=IP:PORT)", "client");
  }
  auto client = net::SocketAddress::parse(client_text);
  if (!client) invalid("must be IP:PORT ([v6]:PORT for IPv6)", "client");
  query_param(req.query, "host", &host);
  if (query_param(req.query, "path", &path) && (path.empty() || path[0] != '/')) {
    invalid("must start with /", "path");
  }
  auto snap = control_.snapshot();
  const snapshot::Listener* found = nullptr;
  bool lb_known = false;
  for (const auto& l : control_.config().loadbalancers)
    lb_known = lb_known || l.name == call.param("lb");
  if (!lb_known) not_found("load balancer", call.param("lb"));
  for (const auto& l : snap ? snap->listeners : decltype(snap->listeners){}) {
    if (l->lb_name == call.param("lb") && l->id == call.param("listener")) found = l.get();
  }
  if (!found) not_found("listener", call.param("listener"));
  const snapshot::Listener& l = *found;
  json out = {{"loadbalancer", l.lb_name},
              {"listener", l.id},
              {"listener_status", l.running ? "running" : "stopped"},
              {"client", client->to_string()},
              {"scheduler", std::string(balance::scheduler_name(l.scheduler))}};
  // The listener's ACL decides before anything is picked, as in the data plane.
  if (!l.access.allows(*client)) {
    bool white = l.access.type == snapshot::AccessControl::Type::kWhite;
    out["acl"] = l.access.acl;
    out["backend"] = nullptr;
    out["reason"] = std::string("refused by the listener's access control list (") +
                    (white ? "white list '" : "black list '") + l.access.acl + "')";
    return json_response(200, out);
  }
  const snapshot::ServerGroup* group = l.group.get();
  const balance::Table* table = l.table.get();
  const std::vector<snapshot::Health>* health = &l.health;
  if (!l.targets.empty()) {
    size_t t = 0;
    std::string rule;
    if (l.routes) {
      if (const snapshot::Rule* r = l.routes->match(host, path.substr(0, path.find('?')))) {
        t = r->target;
        rule = r->name;
      }
    }
    out["host"] = host;
    out["path"] = path;
    out["rule"] = rule.empty() ? json(nullptr) : json(rule);
    const snapshot::HttpTarget& target = l.targets[t];
    if (!target.group) {
      out["redirect"] = target.redirect;
      return json_response(200, out);
    }
    group = target.group.get();
    table = target.table.get();
    health = &target.health;
  }
  if (!group || !table) return json_response(200, out);
  out["server_group"] = group->name;
  // The same key the data plane hashes (l4::TcpSession, l7::HttpSession): the client IP, or for
  // tch the IP and both ports.
  uint64_t key = base::hash_string(client->ip_bytes());
  if (l.scheduler == balance::Scheduler::kTch) {
    uint16_t ports[2] = {client->port(), l.bind.port()};
    key = base::hash_bytes(ports, sizeof ports, key);
  }
  balance::Cursor cursor(*table);
  balance::PickRequest pick;
  pick.key = key;
  uint32_t index = cursor.pick(*table, pick);
  if (index == balance::kNoHost) {
    out["backend"] = nullptr;
    out["reason"] = "no backend is eligible (all unhealthy, draining or weight 0)";
    return json_response(200, out);
  }
  const snapshot::Backend& b = group->backends[index];
  out["backend"] = b.name;
  out["backend_status"] = std::string(snapshot::backend_status(
      b.weight, index < health->size() ? (*health)[index] : snapshot::Health::kUnchecked));
  bool hashed = l.scheduler == balance::Scheduler::kSch || l.scheduler == balance::Scheduler::kTch;
  out["reason"] = hashed ? "consistent hash of the client over the live Maglev table"
                         : "first pick of a fresh cursor over the live table (wrr/rr/wlc rotate "
                           "per worker, so consecutive connections spread over the eligible "
                           "backends)";
  return json_response(200, out);
}

}  // namespace fulcrum::api
