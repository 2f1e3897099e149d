// HTTP/1.1 requests to etcd's v3 JSON gateway, on the control thread's event loop (libcurl's multi
// interface; the only place libcurl is included). Unary requests ("POST /v3/kv/txn") and streams
// (a watch: one JSON object per line for as long as it lasts), endpoint failover, TLS with a CA and
// a client certificate, and etcd user/password authentication (the token is fetched, sent with
// every request and fetched again when etcd says it expired). Also a blocking form of the unary
// request for start-up and tests. [control]
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace fulcrum::net {
class EventLoop;
}

namespace fulcrum::store {

struct EtcdOptions {
  // "http://10.0.0.5:2379" or "https://10.0.0.5:2379"; tried in order, the last one that answered
  // first.
  std::vector<std::string> endpoints;
  std::string cacert;             // PEM file of the CA that signed the members' certificates
  std::string cert, key;          // client certificate and key (PEM files) when the members ask
  std::string user;               // etcd user; empty = no authentication
  std::string password;           // never logged
  int connect_timeout_ms = 1000;  // per endpoint
  int request_timeout_ms = 3000;  // a unary request over every endpoint it tries
  // The key whose mod_revision guards configuration transactions (store.h "Guarded transactions").
  // Under the configuration's prefix, so that one range read gives the keys and their revision.
  std::string guard_key = "/fulcrum/txn";
};

// Parses the --store value "etcd://HOST:PORT[,HOST:PORT...]"; each endpoint may also be written
// "http://HOST:PORT" or "https://HOST:PORT". An error names what is wrong (the caller adds the
// flag).
base::Result<std::vector<std::string>> parse_etcd_endpoints(std::string_view store_flag);

std::string base64_encode(std::string_view bytes);
// Strict: refuses characters outside the alphabet and wrong padding.
base::Result<std::string> base64_decode(std::string_view text);

struct EtcdReply {
  long status = 0;   // HTTP status
  std::string body;  // JSON
  std::string endpoint;
};

// The outcome of a unary request: a reply (any HTTP status: the caller reads etcd's error body),
// or an Error when no endpoint answered in time. `maybe_sent` tells whether some attempt may have
// reached etcd (a write's outcome is then unknown); false when every attempt failed to connect.
struct EtcdOutcome {
  base::Result<EtcdReply> reply = base::Error::internal("no reply");
  bool maybe_sent = false;
};

class EtcdClient {
 public:
  using Done = std::function<void(EtcdOutcome)>;
  using LineFn = std::function<void(std::string_view line)>;
  using EndFn = std::function<void(base::Error why)>;
  using StreamId = uint64_t;

  static base::Result<std::unique_ptr<EtcdClient>> create(net::EventLoop& loop,
                                                          EtcdOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POSTs `body` to `path` ("/v3/kv/range"); `done` runs on the loop, never before this returns.
  // Connection failures, timeouts and etcd's "unavailable" answers move on to the next endpoint
  // until each was tried or the request timeout passed.
  void request(std::string path, std::string body, Done done);
  // The same, blocking the calling thread (start-up, tests).
  EtcdOutcome request_sync(const std::string& path, const std::string& body);

  // A long request whose answer is a stream of lines ("/v3/watch"). `on_line` gets each complete
  // line; `on_end` once, when the stream ends for any reason (not after cancel()).
  StreamId stream(std::string path, std::string body, LineFn on_line, EndFn on_end);
  void cancel(StreamId id);

  // Whether the last request or stream that finished reached etcd.
  bool reachable() const;
  const EtcdOptions& options() const;
  // "http://a:2379,http://b:2379"
  std::string endpoint_list() const;

  class Impl;

 private:
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fulcrum::store
