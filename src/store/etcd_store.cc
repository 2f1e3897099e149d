#include "store/etcd_store.h"

#include <sys/random.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/clock.h"
#include "base/log.h"
#include "net/event_loop.h"

namespace fulcrum::store {

using json = nlohmann::json;

namespace {

constexpr int64_t kFirstBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 2000;

// etcd's range_end for "every key starting with prefix": the prefix with its last byte + 1, or
// "\0" (every key >= key) when there is no such string.
std::string range_end_of(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

json range_request(std::string_view prefix) {
  std::string key = prefix.empty() ? std::string(1, '\0') : std::string(prefix);
  return {{"key", base64_encode(key)}, {"range_end", base64_encode(range_end_of(prefix))}};
}

// etcd's int64 fields are JSON strings ("42"); absent means 0.
int64_t int_field(const json& o, const char* name) {
  if (!o.is_object() || !o.contains(name)) return 0;
  const json& v = o[name];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

base::Result<std::string> bytes_field(const json& o, const char* name) {
  if (!o.is_object() || !o.contains(name) || !o[name].is_string()) return std::string();
  return base64_decode(o[name].get<std::string>());
}

json op_json(const Op& op) {
  if (op.kind == Op::Kind::kPut) {
    json put = {{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}};
    if (op.lease != 0) put["lease"] = std::to_string(op.lease);
    return {{"request_put", put}};
  }
  return {{"request_delete_range", {{"key", base64_encode(op.key)}}}};
}

json compare_json(const Compare& c) {
  json o = {{"key", base64_encode(c.key)}};
  static const char* kResults[] = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};
  o["result"] = kResults[static_cast<int>(c.result)];
  switch (c.target) {
    case Compare::Target::kModRevision:
      o["target"] = "MOD";
      o["mod_revision"] = std::to_string(c.revision);
      break;
    case Compare::Target::kCreateRevision:
      o["target"] = "CREATE";
      o["create_revision"] = std::to_string(c.revision);
      break;
    case Compare::Target::kValue:
      o["target"] = "VALUE";
      o["value"] = base64_encode(c.value);
      break;
  }
  return o;
}

// The reply as JSON, or why it is not a success.
base::Result<json> parse_reply(const EtcdOutcome& out, const std::string& what) {
  if (!out.reply.ok()) return out.reply.error();
  const EtcdReply& r = *out.reply;
  json body = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (r.status != 200) {
    std::string message =
        body.is_object() && body.contains("message") && body["message"].is_string()
            ? body["message"].get<std::string>()
            : r.body.substr(0, 200);
    return base::Error::internal("etcd " + r.endpoint + " refused " + what + " (HTTP " +
                                 std::to_string(r.status) + "): " + message);
  }
  if (body.is_discarded() || !body.is_object()) {
    return base::Error::internal("etcd " + r.endpoint + ": " + what + ": answer is not JSON");
  }
  return body;
}

base::Result<RangeResult> range_result(const json& body) {
  RangeResult out;
  out.revision = int_field(body.value("header", json::object()), "revision");
  if (body.contains("kvs") && body["kvs"].is_array()) {
    for (const json& kv : body["kvs"]) {
      auto key = bytes_field(kv, "key");
      auto value = bytes_field(kv, "value");
      if (!key.ok()) return key.take_error();
      if (!value.ok()) return value.take_error();
      out.kvs.push_back(
          KeyValue{std::move(*key), std::move(*value), int_field(kv, "mod_revision")});
    }
  }
  std::sort(out.kvs.begin(), out.kvs.end(),
            [](const KeyValue& a, const KeyValue& b) { return a.key < b.key; });
  return out;
}

base::Error conflict_error() {
  return base::Error::internal(std::string(kConflictMessage));
}

}  // namespace

class EtcdStore::Impl {
 public:
  struct Watch {
    Impl* owner = nullptr;
    WatchId id = 0;
    std::string prefix;
    int64_t next_revision = 0;  // 0: from now
    WatchFn fn;
    WatchLostFn lost;
    EtcdClient::StreamId stream = 0;
    int64_t backoff_ms = kFirstBackoffMs;
    bool failed = false;  // the stream broke; not yet set up again
    std::unique_ptr<net::Timer> retry;
  };

  Impl(net::EventLoop& loop, std::unique_ptr<EtcdClient> client)
      : loop_(loop), client_(std::move(client)) {
    uint64_t r = 0;
    if (::getrandom(&r, sizeof r, 0) != sizeof r) r = static_cast<uint64_t>(base::monotonic_ns());
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
    writer_id_ = buf;
  }

  ~Impl() {
    for (auto& [id, w] : watches_) {
      if (w->stream) client_->cancel(w->stream);
    }
  }

  const EtcdOptions& options() const { return client_->options(); }

  // --- range ---
  base::Result<RangeResult> range_sync(std::string_view prefix) {
    auto body = parse_reply(client_->request_sync("/v3/kv/range", range_request(prefix).dump()),
                            "a range read");
    if (!body.ok()) return body.take_error();
    return seen(range_result(*body));
  }
  void range_async(std::string prefix, RangeDone done) {
    client_->request("/v3/kv/range", range_request(prefix).dump(),
                     [this, done = std::move(done)](EtcdOutcome out) {
                       auto body = parse_reply(out, "a range read");
                       if (!body.ok()) return done(body.take_error());
                       done(seen(range_result(*body)));
                     });
  }

  // Remembers the newest revision answered (watch() from "now" starts after it).
  base::Result<RangeResult> seen(base::Result<RangeResult> r) {
    if (r.ok()) last_revision_ = std::max(last_revision_, r->revision);
    return r;
  }
  base::Result<int64_t> seen(base::Result<int64_t> r) {
    if (r.ok()) last_revision_ = std::max(last_revision_, *r);
    return r;
  }

  // --- txn ---
  struct TxnPlan {
    std::string body;
    std::string attempt;  // the guard value of this txn ("" when not guarded)
    int64_t expected = -1;
  };

  base::Result<TxnPlan> plan(const std::vector<Op>& ops, int64_t expected) {
    TxnPlan p;
    p.expected = expected;
    json success = json::array();
    for (const Op& op : ops) {
      if (op.key.empty()) return base::Error::internal("store etcd: txn: empty key");
    }
    // etcd refuses a txn naming a key twice ("duplicate key given in txn request"). The ops apply
    // in order as one transaction, so the last op on each key alone gives the same result.
    std::unordered_map<std::string_view, size_t> last;
    for (size_t i = 0; i < ops.size(); ++i) last[ops[i].key] = i;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (last[ops[i].key] == i) success.push_back(op_json(ops[i]));
    }
    json compare = json::array();
    if (expected >= 0) {
      compare.push_back(compare_json(Compare{options().guard_key,
                                             Compare::Target::kModRevision,
                                             Compare::Result::kLess,
                                             expected + 1,
                                             {}}));
      if (!ops.empty()) {
        p.attempt = writer_id_ + "-" + std::to_string(++attempts_);
        success.push_back(op_json(Op::put(options().guard_key, p.attempt)));
      }
    }
    p.body = json{{"compare", compare}, {"success", success}}.dump();
    return p;
  }

  // The revision of a txn reply, or a conflict.
  static base::Result<int64_t> txn_result(const EtcdOutcome& out) {
    auto body = parse_reply(out, "a transaction");
    if (!body.ok()) return body.take_error();
    if (!body->value("succeeded", false)) return conflict_error();
    return int_field(body->value("header", json::object()), "revision");
  }

  base::Result<int64_t> txn_sync(const std::vector<Op>& ops, int64_t expected) {
    auto p = plan(ops, expected);
    if (!p.ok()) return p.take_error();
    EtcdOutcome out = client_->request_sync("/v3/kv/txn", p->body);
    auto r = txn_result(out);
    if (!r.ok() && !out.reply.ok() && out.maybe_sent && !p->attempt.empty()) {
      out = client_->request_sync("/v3/kv/txn", p->body);  // once more, on another member
      r = txn_result(out);
      if (!r.ok() && r.error().message == kConflictMessage) {
        auto mine = committed_sync(*p);
        if (mine.ok() && *mine > 0) return *mine;
      }
    }
    return r;
  }

  void txn_async(std::vector<Op> ops, int64_t expected, TxnDone done) {
    auto p = plan(ops, expected);
    if (!p.ok()) {
      loop_.post([done = std::move(done), e = p.take_error()] { done(e); });
      return;
    }
    auto shared = std::make_shared<TxnPlan>(std::move(*p));
    done = [this, done = std::move(done)](base::Result<int64_t> r) { done(seen(std::move(r))); };
    client_->request("/v3/kv/txn", shared->body,
                     [this, shared, done = std::move(done)](EtcdOutcome out) mutable {
                       auto r = txn_result(out);
                       if (r.ok() || out.reply.ok() || !out.maybe_sent || shared->attempt.empty()) {
                         return done(std::move(r));
                       }
                       FLOG_WARN("etcd: transaction outcome unknown ({}); trying again",
                                 r.error().message);
                       retry_txn(shared, std::move(done));
                     });
  }

  // The first attempt may have committed without our hearing of it. Trying again is safe: the
  // guard compare lets at most one of the two commit.
  void retry_txn(std::shared_ptr<TxnPlan> p, TxnDone done) {
    client_->request("/v3/kv/txn", p->body, [this, p, done = std::move(done)](EtcdOutcome out) {
      auto r = txn_result(out);
      if (r.ok() || r.error().message != kConflictMessage) return done(std::move(r));
      committed_async(p, std::move(done));
    });
  }

  // After a conflict following an unanswered attempt: the first guarded commit after `expected`
  // is ours exactly when the guard's value then was our attempt's. Read from the guard's history.
  json first_guard_change(const TxnPlan& p) const {
    return {{"create_request",
             {{"key", base64_encode(options().guard_key)},
              {"start_revision", std::to_string(p.expected + 1)}}}};
  }
  static std::optional<int64_t> mine_in(std::string_view line, const TxnPlan& p, bool* decided) {
    json msg = json::parse(line, nullptr, false);
    if (!msg.is_object() || !msg.contains("result")) return std::nullopt;
    const json& res = msg["result"];
    if (res.value("canceled", false)) {
      *decided = true;  // compacted: cannot tell; report the conflict
      return std::nullopt;
    }
    if (!res.contains("events") || !res["events"].is_array() || res["events"].empty()) {
      return std::nullopt;
    }
    *decided = true;
    const json& kv = res["events"][0].value("kv", json::object());
    auto value = bytes_field(kv, "value");
    if (value.ok() && *value == p.attempt) return int_field(kv, "mod_revision");
    return std::nullopt;
  }
  void committed_async(std::shared_ptr<TxnPlan> p, TxnDone done) {
    auto state = std::make_shared<std::pair<TxnDone, EtcdClient::StreamId>>(std::move(done), 0);
    state->second = client_->stream(
        "/v3/watch", first_guard_change(*p).dump(),
        [this, p, state](std::string_view line) {
          bool decided = false;
          auto rev = mine_in(line, *p, &decided);
          if (!decided || !state->first) return;
          TxnDone d = std::move(state->first);
          state->first = nullptr;
          client_->cancel(state->second);
          if (rev) {
            FLOG_INFO("etcd: the unanswered transaction had committed at revision {}", *rev);
            d(*rev);
          } else {
            d(conflict_error());
          }
        },
        [state](base::Error why) {
          if (!state->first) return;
          TxnDone d = std::move(state->first);
          state->first = nullptr;
          d(why);
        });
  }
  base::Result<int64_t> committed_sync(const TxnPlan& p) {
    // A range at the revision right after `expected` would need that revision; the watch stream is
    // asynchronous only, so the sync path reads the guard's current value instead: enough for
    // start-up and tests, where no other writer races.
    auto now = range_sync(options().guard_key);
    if (!now.ok()) return now.take_error();
    for (const auto& kv : now->kvs) {
      if (kv.key == options().guard_key && kv.value == p.attempt) return kv.mod_revision;
    }
    return 0;
  }

  // --- compare-and-put ---
  std::string if_body(const std::vector<Compare>& compares, const std::vector<Op>& ops) {
    json c = json::array();
    for (const auto& x : compares) c.push_back(compare_json(x));
    json s = json::array();
    for (const auto& op : ops) s.push_back(op_json(op));
    return json{{"compare", c}, {"success", s}}.dump();
  }
  static base::Result<std::optional<int64_t>> if_result(const EtcdOutcome& out) {
    auto body = parse_reply(out, "a transaction");
    if (!body.ok()) return body.take_error();
    if (!body->value("succeeded", false)) return std::optional<int64_t>();
    return std::optional<int64_t>(int_field(body->value("header", json::object()), "revision"));
  }

  // --- watch ---
  base::Result<WatchId> watch(std::string prefix, int64_t from, WatchFn fn, WatchLostFn lost) {
    auto w = std::make_unique<Watch>();
    w->owner = this;
    w->id = next_watch_++;
    w->prefix = std::move(prefix);
    if (from >= 0) {
      w->next_revision = from + 1;
    } else {
      // "Now" is the newest revision this store has answered with: etcd sets the stream up later,
      // and a transaction committed in between must not be missed. Before any answer, etcd's now.
      w->next_revision = last_revision_ > 0 ? last_revision_ + 1 : 0;
    }
    w->fn = std::move(fn);
    w->lost = std::move(lost);
    w->retry = std::make_unique<net::Timer>(loop_, &Impl::on_retry, w.get());
    Watch* raw = w.get();
    watches_.emplace(raw->id, std::move(w));
    connect(*raw);
    return raw->id;
  }

  void unwatch(WatchId id) {
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    if (it->second->stream) client_->cancel(it->second->stream);
    watches_.erase(it);
  }

  static void on_retry(void* arg) {
    auto* w = static_cast<Watch*>(arg);
    w->owner->connect(*w);
  }

  void connect(Watch& w) {
    json create = range_request(w.prefix);
    if (w.next_revision > 0) create["start_revision"] = std::to_string(w.next_revision);
    WatchId id = w.id;
    w.stream = client_->stream(
        "/v3/watch", json{{"create_request", create}}.dump(),
        [this, id](std::string_view line) { on_line(id, line); },
        [this, id](base::Error why) {
          auto it = watches_.find(id);
          if (it == watches_.end()) return;
          Watch& ended = *it->second;
          ended.stream = 0;
          // The first failure is worth a warning; the retries while etcd stays away are not.
          if (ended.backoff_ms == kFirstBackoffMs) {
            FLOG_WARN("etcd watch of '{}': {}; retrying", ended.prefix, why.message);
          } else {
            FLOG_DEBUG("etcd watch of '{}': {}; again in {} ms", ended.prefix, why.message,
                       ended.backoff_ms);
          }
          ended.failed = true;
          ended.retry->arm_in(ended.backoff_ms);
          ended.backoff_ms = std::min(ended.backoff_ms * 2, kMaxBackoffMs);
        });
  }

  void on_line(WatchId id, std::string_view line) {
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    Watch& w = *it->second;
    json msg = json::parse(line, nullptr, false);
    if (!msg.is_object()) return;
    if (msg.contains("error")) {
      FLOG_WARN("etcd watch of '{}': {}", w.prefix, msg["error"].dump());
      return;
    }
    if (!msg.contains("result") || !msg["result"].is_object()) return;
    const json& res = msg["result"];
    int64_t header_rev = int_field(res.value("header", json::object()), "revision");
    if (res.value("created", false)) {
      w.backoff_ms = kFirstBackoffMs;
      if (w.next_revision == 0) w.next_revision = header_rev + 1;
    }
    if (res.value("canceled", false)) {
      int64_t compacted = int_field(res, "compact_revision");
      client_->cancel(w.stream);
      w.stream = 0;
      if (compacted > 0) {
        FLOG_WARN("etcd watch: revision {} was compacted (history starts at {})", w.next_revision,
                  compacted);
        WatchLostFn lost = std::move(w.lost);
        watches_.erase(it);  // `w` is gone from here on
        if (lost) lost(base::Error::internal(std::string(kCompactedMessage)));
        return;
      }
      w.retry->arm_in(w.backoff_ms);
      return;
    }
    if (!res.contains("events") || !res["events"].is_array()) return;
    if (w.failed) {  // not at "created": etcd may still cancel a compacted start right after it
      FLOG_INFO("etcd watch of '{}' resumed", w.prefix);
      w.failed = false;
    }
    // One call per revision: etcd may send several transactions in one message.
    std::vector<Event> batch;
    int64_t batch_rev = 0;
    auto flush = [&]() -> bool {
      if (batch.empty()) return true;
      std::vector<Event> events = std::move(batch);
      batch.clear();
      w.next_revision = batch_rev + 1;
      WatchFn fn = w.fn;  // the callback may unwatch
      fn(events);
      return watches_.count(id) > 0;
    };
    for (const json& e : res["events"]) {
      const json& kv = e.value("kv", json::object());
      int64_t rev = int_field(kv, "mod_revision");
      if (rev < w.next_revision) continue;  // already delivered before a reconnect
      if (rev != batch_rev) {
        if (!flush()) return;
        batch_rev = rev;
      }
      auto key = bytes_field(kv, "key");
      auto value = bytes_field(kv, "value");
      if (!key.ok() || !value.ok()) continue;
      bool del = e.value("type", "") == "DELETE";
      batch.push_back(Event{del ? Op::Kind::kDelete : Op::Kind::kPut, std::move(*key),
                            del ? std::string() : std::move(*value), rev});
    }
    flush();
  }

  net::EventLoop& loop_;
  std::unique_ptr<EtcdClient> client_;

 private:
  std::string writer_id_;
  uint64_t attempts_ = 0;
  std::map<WatchId, std::unique_ptr<Watch>> watches_;
  WatchId next_watch_ = 1;
  int64_t last_revision_ = 0;  // the newest revision of a range or txn answer
};

base::Result<std::unique_ptr<EtcdStore>> EtcdStore::open(net::EventLoop& loop,
                                                         EtcdOptions options) {
  auto client = EtcdClient::create(loop, std::move(options));
  if (!client.ok()) return client.take_error();
  return std::unique_ptr<EtcdStore>(
      new EtcdStore(std::make_unique<Impl>(loop, std::move(*client))));
}

EtcdStore::EtcdStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdStore::~EtcdStore() = default;

base::Result<RangeResult> EtcdStore::range(std::string_view prefix) {
  return impl_->range_sync(prefix);
}

base::Result<int64_t> EtcdStore::txn(const std::vector<Op>& ops, int64_t expected_revision) {
  return impl_->seen(impl_->txn_sync(ops, expected_revision));
}

void EtcdStore::range_async(std::string prefix, RangeDone done) {
  impl_->range_async(std::move(prefix), std::move(done));
}

void EtcdStore::txn_async(std::vector<Op> ops, int64_t expected_revision, TxnDone done) {
  impl_->txn_async(std::move(ops), expected_revision, std::move(done));
}

WatchId EtcdStore::watch(std::string prefix, int64_t from_revision, WatchFn fn) {
  auto id = impl_->watch(std::move(prefix), from_revision, std::move(fn), {});
  return id.ok() ? *id : kNoWatch;
}

base::Result<WatchId> EtcdStore::watch_checked(std::string prefix, int64_t from_revision,
                                               WatchFn fn, WatchLostFn lost) {
  return impl_->watch(std::move(prefix), from_revision, std::move(fn), std::move(lost));
}

void EtcdStore::unwatch(WatchId id) {
  impl_->unwatch(id);
}

std::string EtcdStore::describe() const {
  return "etcd:" + impl_->client_->endpoint_list();
}

std::vector<std::string> EtcdStore::endpoints() const {
  return impl_->options().endpoints;
}

bool EtcdStore::reachable() const {
  return impl_->client_->reachable();
}

void EtcdStore::txn_if(std::vector<Compare> compares, std::vector<Op> ops, IfDone done) {
  impl_->client_->request(
      "/v3/kv/txn", impl_->if_body(compares, ops),
      [done = std::move(done)](EtcdOutcome out) { done(Impl::if_result(out)); });
}

base::Result<std::optional<int64_t>> EtcdStore::txn_if_sync(const std::vector<Compare>& compares,
                                                            const std::vector<Op>& ops) {
  return Impl::if_result(impl_->client_->request_sync("/v3/kv/txn", impl_->if_body(compares, ops)));
}

void EtcdStore::grant_lease(int64_t ttl_s, std::function<void(base::Result<int64_t>)> done) {
  impl_->client_->request("/v3/lease/grant", json{{"TTL", ttl_s}}.dump(),
                          [done = std::move(done)](EtcdOutcome out) {
                            auto body = parse_reply(out, "a lease grant");
                            if (!body.ok()) return done(body.take_error());
                            int64_t id = int_field(*body, "ID");
                            if (id == 0) return done(base::Error::internal("lease grant: no ID"));
                            done(id);
                          });
}

void EtcdStore::keep_alive(int64_t lease, std::function<void(base::Result<int64_t>)> done) {
  impl_->client_->request("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump(),
                          [done = std::move(done)](EtcdOutcome out) {
                            auto body = parse_reply(out, "a lease keep-alive");
                            if (!body.ok()) return done(body.take_error());
                            done(int_field(body->value("result", json::object()), "TTL"));
                          });
}

void EtcdStore::revoke(int64_t lease, std::function<void(base::Status)> done) {
  impl_->client_->request("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump(),
                          [done = std::move(done)](EtcdOutcome out) {
                            auto body = parse_reply(out, "a lease revoke");
                            if (!body.ok()) return done(body.take_error());
                            done({});
                          });
}

base::Status EtcdStore::compact_sync(int64_t revision) {
  auto body =
      parse_reply(impl_->client_->request_sync(
                      "/v3/kv/compaction",
                      json{{"revision", std::to_string(revision)}, {"physical", true}}.dump()),
                  "a compaction");
  if (!body.ok()) return body.take_error();
  return {};
}

}  // namespace fulcrum::store
