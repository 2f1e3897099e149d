// EtcdClient: libcurl's multi interface driven by the control loop.
//
// libcurl wants level-triggered readiness (it may leave bytes in a socket) while net::EventLoop is
// edge-triggered, so curl's sockets live in an epoll set of their own (level-triggered) whose fd is
// registered in the loop: when it is readable, every ready socket is handed to
// curl_multi_socket_action until that epoll set reports nothing ready. Callbacks of ours never run
// inside a libcurl callback: lines and finished transfers are collected and delivered afterwards,
// so a callback may start or cancel requests freely.
#include "store/etcd_client.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>

#include "base/clock.h"
#include "base/log.h"
#include "net/event_loop.h"

namespace fulcrum::store {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The byte at i as a uint32_t, so that shifting it stays unsigned (-Wsign-conversion at -O0).
uint32_t byte_at(std::string_view s, size_t i) {
  return static_cast<uint8_t>(s[i]);
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// JSON string escaping for the authentication body (the only JSON this file writes).
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The token in {"header":...,"token":"..."}: a plain scan, the answer is etcd's own.
std::string token_of(const std::string& body) {
  size_t k = body.find("\"token\"");
  if (k == std::string::npos) return "";
  size_t open = body.find('"', body.find(':', k) + 1);
  if (open == std::string::npos) return "";
  size_t close = body.find('"', open + 1);
  if (close == std::string::npos) return "";
  return body.substr(open + 1, close - open - 1);
}

// etcd answers these when a member cannot serve now (no leader, lost quorum, shutting down):
// another member may.
bool is_unavailable(const EtcdReply& r) {
  if (r.status == 503 || r.status == 504 || r.status == 502) return true;
  if (r.status < 500) return false;
  return r.body.find("no leader") != std::string::npos ||
         r.body.find("timed out") != std::string::npos ||
         r.body.find("unavailable") != std::string::npos ||
         r.body.find("stopped") != std::string::npos;
}

bool is_auth_expired(const EtcdReply& r) {
  return r.status == 401 || r.body.find("invalid auth token") != std::string::npos;
}

}  // namespace

base::Result<std::vector<std::string>> parse_etcd_endpoints(std::string_view flag) {
  constexpr std::string_view kScheme = "etcd://";
  if (!flag.starts_with(kScheme)) {
    return base::Error::internal("must be sqlite or etcd://HOST:PORT[,HOST:PORT...]");
  }
  std::string_view rest = flag.substr(kScheme.size());
  if (rest.empty()) return base::Error::internal("etcd:// names no endpoint");
  std::vector<std::string> out;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    std::string scheme = "http://";
    if (item.starts_with("http://")) {
      item.remove_prefix(7);
    } else if (item.starts_with("https://")) {
      item.remove_prefix(8);
      scheme = "https://";
    }
    if (!item.empty() && item.back() == '/') item.remove_suffix(1);
    size_t colon = item.rfind(':');
    if (item.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == item.size()) {
      return base::Error::internal("endpoint '" + std::string(item) + "' must be HOST:PORT");
    }
    std::string_view host = item.substr(0, colon);
    std::string_view port = item.substr(colon + 1);
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) {
        return base::Error::internal("endpoint '" + std::string(item) + "': bad port");
      }
      p = p * 10 + (c - '0');
    }
    if (p == 0 || p > 65535) {
      return base::Error::internal("endpoint '" + std::string(item) + "': port must be 1-65535");
    }
    for (char c : host) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
      if (!ok) {
        return base::Error::internal("endpoint '" + std::string(item) + "': bad host");
      }
    }
    out.push_back(scheme + std::string(item));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (byte_at(in, i) << 16) | (byte_at(in, i + 1) << 8) | byte_at(in, i + 2);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = byte_at(in, i) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (byte_at(in, i) << 16) | (byte_at(in, i + 1) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

base::Result<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return base::Error::internal("base64: length is not a multiple of 4");
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = in[i + j];
      if (c == '=') {
        if (i + 4 != in.size() || j < 2) return base::Error::internal("base64: misplaced '='");
        ++pad;
        v <<= 6;
        continue;
      }
      if (pad > 0) return base::Error::internal("base64: data after '='");
      size_t d = kAlphabet.find(c);
      if (d == std::string_view::npos) return base::Error::internal("base64: bad character");
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

class EtcdClient::Impl final : public net::IoHandler {
 public:
  struct Transfer {
    uint64_t id = 0;
    bool is_stream = false;
    std::string path, body;
    Done done;
    LineFn on_line;
    EndFn on_end;
    int64_t deadline_ms = 0;
    size_t tried = 0;     // endpoints tried so far
    size_t endpoint = 0;  // index of the current attempt's endpoint
    bool maybe_sent = false;
    bool auth_retried = false;
    bool cancelled = false;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string response;
    std::string partial_line;
    std::string last_error;
    char errbuf[CURL_ERROR_SIZE] = {};
  };

  Impl(net::EventLoop& loop, EtcdOptions options)
      : loop_(loop), options_(std::move(options)), timer_(loop, &Impl::on_timer, this) {}

  ~Impl() {
    for (auto& [id, t] : transfers_) detach(*t);
    transfers_.clear();
    if (multi_) curl_multi_cleanup(multi_);
    if (epoll_fd_ >= 0) {
      loop_.remove(epoll_fd_);
      ::close(epoll_fd_);
    }
  }

  base::Status init() {
    global_init();
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return base::Error::system(errno, "epoll_create1 for etcd");
    if (auto s = loop_.add(epoll_fd_, EPOLLIN, this); !s.ok()) return s;
    multi_ = curl_multi_init();
    if (!multi_) return base::Error::internal("curl_multi_init failed");
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::on_curl_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    return {};
  }

  uint64_t submit(std::unique_ptr<Transfer> t) {
    t->id = next_id_++;
    uint64_t id = t->id;
    Transfer* raw = t.get();
    transfers_.emplace(id, std::move(t));
    if (needs_token()) {
      waiting_for_token_.push_back(id);
      authenticate();
    } else {
      start(*raw);
    }
    return id;
  }

  void cancel(uint64_t id) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    detach(*it->second);
    transfers_.erase(it);
  }

  EtcdOutcome request_sync(const std::string& path, const std::string& body) {
    int64_t deadline = base::monotonic_ms() + options_.request_timeout_ms;
    if (needs_token()) {
      EtcdOutcome auth = perform_sync("/v3/auth/authenticate", auth_body(), deadline);
      if (!auth.reply.ok()) return auth;
      if (auth.reply->status != 200) return auth;
      token_ = token_of(auth.reply->body);
    }
    EtcdOutcome out = perform_sync(path, body, deadline);
    if (out.reply.ok() && is_auth_expired(*out.reply) && !options_.user.empty()) {
      token_.clear();
      return request_sync(path, body);
    }
    return out;
  }

  bool reachable() const { return reachable_; }
  const EtcdOptions& options() const { return options_; }

 private:
  bool needs_token() const { return !options_.user.empty() && token_.empty(); }

  std::string auth_body() const {
    return "{\"name\":" + json_string(options_.user) +
           ",\"password\":" + json_string(options_.password) + "}";
  }

  // One async authentication at a time; the transfers waiting for it start when it answers.
  void authenticate() {
    if (authenticating_) return;
    authenticating_ = true;
    auto t = std::make_unique<Transfer>();
    t->path = "/v3/auth/authenticate";
    t->body = auth_body();
    t->deadline_ms = base::monotonic_ms() + options_.request_timeout_ms;
    t->done = [this](EtcdOutcome out) {
      authenticating_ = false;
      std::string error;
      if (!out.reply.ok()) {
        error = out.reply.error().message;
      } else if (out.reply->status != 200) {
        error = "authentication as '" + options_.user + "' refused (HTTP " +
                std::to_string(out.reply->status) + ")";
      } else {
        token_ = token_of(out.reply->body);
        if (token_.empty()) error = "authentication answer without a token";
      }
      std::deque<uint64_t> waiting;
      waiting.swap(waiting_for_token_);
      for (uint64_t id : waiting) {
        auto it = transfers_.find(id);
        if (it == transfers_.end()) continue;
        if (error.empty()) {
          start(*it->second);
        } else {
          EtcdOutcome failed;
          failed.reply = base::Error::internal(error);
          finish(id, std::move(failed), base::Error::internal(error));
        }
      }
    };
    uint64_t id = next_id_++;
    t->id = id;
    Transfer* raw = t.get();
    transfers_.emplace(id, std::move(t));
    start(*raw);
  }

  CURL* make_easy(Transfer& t, const std::string& url, int64_t timeout_ms) {
    CURL* e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(t.body.size()));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 2L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!options_.cacert.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.cacert.c_str());
    if (!options_.cert.empty()) curl_easy_setopt(e, CURLOPT_SSLCERT, options_.cert.c_str());
    if (!options_.key.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, options_.key.c_str());
    if (t.headers) curl_slist_free_all(t.headers);
    t.headers = curl_slist_append(nullptr, "Content-Type: application/json");
    t.headers = curl_slist_append(t.headers, "Expect:");
    if (!token_.empty() && t.path != "/v3/auth/authenticate") {
      t.headers = curl_slist_append(t.headers, ("Authorization: " + token_).c_str());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    return e;
  }

  int64_t attempt_timeout(const Transfer& t) const {
    if (t.is_stream) return 0;
    int64_t left = t.deadline_ms - base::monotonic_ms();
    // One slow member must not use the whole budget when another may answer.
    int64_t share = std::max<int64_t>(1000, options_.request_timeout_ms / 2);
    return std::max<int64_t>(1, std::min(left, share));
  }

  void start(Transfer& t) {
    size_t n = options_.endpoints.size();
    t.endpoint = (preferred_ + t.tried) % n;
    ++t.tried;
    t.response.clear();
    t.partial_line.clear();
    t.errbuf[0] = 0;
    t.easy = make_easy(t, options_.endpoints[t.endpoint] + t.path, attempt_timeout(t));
    curl_multi_add_handle(multi_, t.easy);
  }

  void detach(Transfer& t) {
    if (t.easy) {
      curl_multi_remove_handle(multi_, t.easy);
      curl_easy_cleanup(t.easy);
      t.easy = nullptr;
    }
    if (t.headers) {
      curl_slist_free_all(t.headers);
      t.headers = nullptr;
    }
  }

  // Delivers the end of a transfer and forgets it.
  void finish(uint64_t id, EtcdOutcome out, base::Error stream_end) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    std::unique_ptr<Transfer> t = std::move(it->second);
    transfers_.erase(it);
    detach(*t);
    if (t->is_stream) {
      if (t->on_end) t->on_end(std::move(stream_end));
    } else if (t->done) {
      t->done(std::move(out));
    }
  }

  // A finished attempt: answer, retry elsewhere, or give up.
  void completed(Transfer& t, CURLcode code) {
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    const std::string& endpoint = options_.endpoints[t.endpoint];
    uint64_t id = t.id;
    std::string why;
    if (code == CURLE_OK) {
      reachable_ = true;
      EtcdReply reply{status, std::move(t.response), endpoint};
      if (is_auth_expired(reply) && !options_.user.empty() && !t.auth_retried) {
        t.auth_retried = true;
        token_.clear();
        detach(t);
        --t.tried;
        waiting_for_token_.push_back(id);
        authenticate();
        return;
      }
      if (!is_unavailable(reply) || t.is_stream) {
        preferred_ = t.endpoint;
        EtcdOutcome out;
        out.maybe_sent = true;
        base::Error end = base::Error::internal("etcd " + endpoint + " ended the stream (HTTP " +
                                                std::to_string(status) + ")");
        if (t.is_stream && status != 200) end.message += ": " + reply.body.substr(0, 200);
        out.reply = std::move(reply);
        finish(id, std::move(out), std::move(end));
        return;
      }
      t.maybe_sent = true;
      why =
          endpoint + " answered HTTP " + std::to_string(status) + ": " + reply.body.substr(0, 200);
    } else {
      if (code != CURLE_COULDNT_CONNECT && code != CURLE_COULDNT_RESOLVE_HOST &&
          !(code == CURLE_OPERATION_TIMEDOUT && status == 0 && t.response.empty() &&
            !connected(t.easy))) {
        t.maybe_sent = true;
      }
      why = endpoint + ": " + (t.errbuf[0] ? std::string(t.errbuf) : curl_easy_strerror(code));
      if (!t.is_stream) reachable_ = false;
    }
    if (t.is_stream) {
      reachable_ = false;
      // The next stream (the watcher reconnects) tries the next member.
      preferred_ = (t.endpoint + 1) % options_.endpoints.size();
      finish(id, {}, base::Error::internal("etcd watch stream ended: " + why));
      return;
    }
    // Every endpoint's failure is kept: the answer names them all.
    t.last_error += (t.last_error.empty() ? "" : "; ") + why;
    if (t.tried < options_.endpoints.size() && base::monotonic_ms() < t.deadline_ms) {
      detach(t);
      start(t);
      return;
    }
    why = t.last_error;
    EtcdOutcome out;
    out.maybe_sent = t.maybe_sent;
    out.reply = base::Error::internal("etcd did not answer: " + why);
    finish(id, std::move(out), {});
  }

  static bool connected(CURL* easy) {
    long connect_us = 0;
    curl_off_t t = 0;
    if (curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK) connect_us = t;
    return connect_us > 0;
  }

  EtcdOutcome perform_sync(const std::string& path, const std::string& body, int64_t deadline) {
    EtcdOutcome out;
    std::string errors;
    Transfer t;
    t.path = path;
    t.body = body;
    t.deadline_ms = deadline;
    size_t n = options_.endpoints.size();
    for (size_t i = 0; i < n; ++i) {
      if (i > 0 && base::monotonic_ms() >= deadline) break;
      t.endpoint = (preferred_ + i) % n;
      t.response.clear();
      t.errbuf[0] = 0;
      const std::string& endpoint = options_.endpoints[t.endpoint];
      CURL* e = make_easy(t, endpoint + path, attempt_timeout(t));
      CURLcode code = curl_easy_perform(e);
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      bool was_connected = connected(e);
      curl_easy_cleanup(e);
      if (code == CURLE_OK) {
        EtcdReply reply{status, std::move(t.response), endpoint};
        if (!is_unavailable(reply)) {
          reachable_ = true;
          preferred_ = t.endpoint;
          out.maybe_sent = true;
          out.reply = std::move(reply);
          if (t.headers) curl_slist_free_all(t.headers);
          return out;
        }
        out.maybe_sent = true;
        errors +=
            (errors.empty() ? "" : "; ") + endpoint + " answered HTTP " + std::to_string(status);
      } else {
        if (code != CURLE_COULDNT_CONNECT && was_connected) out.maybe_sent = true;
        errors += (errors.empty() ? "" : "; ") + endpoint + ": " +
                  (t.errbuf[0] ? std::string(t.errbuf) : curl_easy_strerror(code));
      }
    }
    if (t.headers) curl_slist_free_all(t.headers);
    reachable_ = false;
    out.reply = base::Error::internal("etcd did not answer: " + errors);
    return out;
  }

  // --- libcurl callbacks (nothing of ours is called from here) ---------------------------------

  static size_t on_write(char* data, size_t size, size_t n, void* arg) {
    auto* t = static_cast<Transfer*>(arg);
    size_t len = size * n;
    if (!t->is_stream) {
      if (t->response.size() + len > (64u << 20)) return 0;  // no etcd answer of ours is this big
      t->response.append(data, len);
      return len;
    }
    t->partial_line.append(data, len);
    if (t->partial_line.size() > (64u << 20)) return 0;
    return len;
  }

  static int on_socket(CURL*, curl_socket_t s, int what, void* arg, void*) {
    auto* self = static_cast<Impl*>(arg);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    uint32_t events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
    ev.events = events;
    ev.data.fd = s;
    if (epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, s, &ev) != 0) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
  }

  static int on_curl_timer(CURLM*, long timeout_ms, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    if (timeout_ms < 0) {
      self->timer_.cancel();
    } else {
      self->timer_.arm_in(timeout_ms);
    }
    return 0;
  }

  // --- the loop's side ---------------------------------------------------------------------------

  static void on_timer(void* arg) {
    auto* self = static_cast<Impl*>(arg);
    int running = 0;
    curl_multi_socket_action(self->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    self->after_action();
  }

  void on_io(uint32_t) override {
    epoll_event events[32];
    for (;;) {
      int n = epoll_wait(epoll_fd_, events, 32, 0);
      if (n <= 0) break;
      for (int i = 0; i < n; ++i) {
        int flags = 0;
        if (events[i].events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & EPOLLERR) flags |= CURL_CSELECT_ERR;
        int running = 0;
        curl_multi_socket_action(multi_, events[i].data.fd, flags, &running);
      }
      after_action();
    }
  }

  // Lines of streams, then finished transfers, delivered outside libcurl.
  void after_action() {
    std::vector<std::pair<uint64_t, std::string>> lines;
    for (auto& [id, t] : transfers_) {
      if (!t->is_stream || t->partial_line.empty()) continue;
      size_t start = 0;
      for (;;) {
        size_t nl = t->partial_line.find('\n', start);
        if (nl == std::string::npos) break;
        if (nl > start) lines.emplace_back(id, t->partial_line.substr(start, nl - start));
        start = nl + 1;
      }
      t->partial_line.erase(0, start);
    }
    for (auto& [id, line] : lines) {
      auto it = transfers_.find(id);
      if (it == transfers_.end()) continue;
      reachable_ = true;
      LineFn fn = it->second->on_line;  // the callback may cancel its own stream
      if (fn) fn(line);
    }
    std::vector<std::pair<uint64_t, CURLcode>> done;
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      void* p = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
      done.emplace_back(static_cast<Transfer*>(p)->id, m->data.result);
    }
    for (auto& [id, code] : done) {
      auto it = transfers_.find(id);
      if (it == transfers_.end() || !it->second->easy) continue;
      Transfer& t = *it->second;
      if (t.is_stream && !t.partial_line.empty()) {
        std::string rest = std::move(t.partial_line);
        t.partial_line.clear();
        if (t.on_line) t.on_line(rest);
        it = transfers_.find(id);
        if (it == transfers_.end()) continue;
      }
      completed(*it->second, code);
    }
  }

 public:
  // Exposed to EtcdClient's thin forwarding functions.
  net::EventLoop& loop_;
  EtcdOptions options_;

 private:
  net::Timer timer_;
  CURLM* multi_ = nullptr;
  int epoll_fd_ = -1;
  std::map<uint64_t, std::unique_ptr<Transfer>> transfers_;
  uint64_t next_id_ = 1;
  size_t preferred_ = 0;
  bool reachable_ = false;
  std::string token_;
  bool authenticating_ = false;
  std::deque<uint64_t> waiting_for_token_;
};

base::Result<std::unique_ptr<EtcdClient>> EtcdClient::create(net::EventLoop& loop,
                                                             EtcdOptions options) {
  if (options.endpoints.empty()) return base::Error::internal("etcd: no endpoint");
  auto impl = std::make_unique<Impl>(loop, std::move(options));
  if (auto s = impl->init(); !s.ok()) return s.take_error();
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(impl)));
}

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::~EtcdClient() = default;

void EtcdClient::request(std::string path, std::string body, Done done) {
  auto t = std::make_unique<Impl::Transfer>();
  t->path = std::move(path);
  t->body = std::move(body);
  t->done = std::move(done);
  t->deadline_ms = base::monotonic_ms() + impl_->options_.request_timeout_ms;
  impl_->submit(std::move(t));
}

EtcdOutcome EtcdClient::request_sync(const std::string& path, const std::string& body) {
  return impl_->request_sync(path, body);
}

EtcdClient::StreamId EtcdClient::stream(std::string path, std::string body, LineFn on_line,
                                        EndFn on_end) {
  auto t = std::make_unique<Impl::Transfer>();
  t->is_stream = true;
  t->path = std::move(path);
  t->body = std::move(body);
  t->on_line = std::move(on_line);
  t->on_end = std::move(on_end);
  return impl_->submit(std::move(t));
}

void EtcdClient::cancel(StreamId id) {
  impl_->cancel(id);
}

bool EtcdClient::reachable() const {
  return impl_->reachable();
}

const EtcdOptions& EtcdClient::options() const {
  return impl_->options();
}

std::string EtcdClient::endpoint_list() const {
  std::string out;
  for (const auto& e : impl_->options().endpoints) out += (out.empty() ? "" : ",") + e;
  return out;
}

}  // namespace fulcrum::store
