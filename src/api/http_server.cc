#include "api/http_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_map>

#include "base/log.h"
#include "http/request_parser.h"
#include "net/acceptor.h"
#include "net/socket.h"

namespace fulcrum::api {

namespace {
constexpr int kBacklog = 128;
constexpr size_t kReadChunk = 64 * 1024;
constexpr int64_t kLingerMs = 2000;            // at most this long after a closing answer
constexpr size_t kMaxLingerBytes = 64u << 20;  // and at most this much read and dropped

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "application/json; charset=utf-8" -> "application/json"
std::string media_type(std::string_view v) {
  size_t semi = v.find(';');
  std::string_view t = v.substr(0, semi);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  return lower(t);
}
}  // namespace

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

Response error_response(int status, std::string_view code, std::string_view message,
                        std::string_view field) {
  Response r;
  r.status = status;
  r.body = "{\"error\":{\"code\":" + json_quote(code) + ",\"message\":" + json_quote(message);
  if (!field.empty()) r.body += ",\"field\":" + json_quote(field);
  r.body += "}}\n";
  return r;
}

class HttpServer::Impl {
 public:
  class Connection;

  Impl(net::EventLoop& loop, ServerLimits limits, Handler handler)
      : loop_(loop), limits_(limits), handler_(std::move(handler)) {}
  ~Impl();

  static void on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                        const net::SocketAddress& local);
  void remove(Connection* c);

  net::EventLoop& loop_;
  ServerLimits limits_;
  Handler handler_;
  std::unique_ptr<net::Acceptor> acceptor_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
};

class HttpServer::Impl::Connection final : public net::IoHandler, public net::Deferred {
 public:
  Connection(Impl& owner, net::UniqueFd fd, std::string peer)
      : owner_(owner),
        fd_(std::move(fd)),
        peer_(std::move(peer)),
        parser_(parser_limits(owner.limits_)),
        timer_(owner.loop_, &Connection::on_timeout, this),
        alive_(std::make_shared<bool>(true)) {}
  ~Connection() override { *alive_ = false; }

  base::Status start() {
    auto st = owner_.loop_.add(fd_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
    if (!st.ok()) return st;
    timer_.arm_in(owner_.limits_.idle_timeout_ms);
    return {};
  }

  void on_io(uint32_t events) override {
    if (closed_) return;
    if (lingering_) {
      discard();
      return;
    }
    if (events & EPOLLOUT) {
      if (!flush()) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_all();
  }

 private:
  static http::Limits parser_limits(const ServerLimits& l) {
    http::Limits limits;
    limits.max_body_bytes = l.max_body_bytes;
    return limits;
  }

  static void on_timeout(void* self) {
    auto* c = static_cast<Connection*>(self);
    if (c->lingering_) {
      c->close();
      return;
    }
    if (c->busy_) return;  // a handler is working; its answer ends the wait
    if (c->started_) {
      c->fail(408, "request not received in time");
    } else {
      c->close();
    }
  }

  // Reads until the socket is drained, parsing after every chunk so that the buffer holds at most
  // one chunk beyond what the parser consumed (a body is copied into the request as it comes).
  void read_all() {
    for (;;) {
      if (closed_ || lingering_) return;
      size_t old = in_.size();
      in_.resize(old + kReadChunk);
      ssize_t n = ::recv(fd_.get(), in_.data() + old, kReadChunk, 0);
      in_.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
      if (n > 0) {
        // A client that sends far more than one request's worth while we answer is cut off.
        if (in_.size() - in_off_ > owner_.limits_.max_body_bytes + (1u << 20)) {
          close();
          return;
        }
        process();
        continue;
      }
      if (n == 0) {
        peer_closed_ = true;
        process();
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      close();
      return;
    }
  }

  // Parses what is buffered while no request is being answered.
  void process() {
    if (in_process_) return;  // an answer given synchronously inside dispatch(): the loop goes on
    in_process_ = true;
    process_buffered();
    in_process_ = false;
  }

  void process_buffered() {
    while (!busy_ && !closed_ && !close_after_write_) {
      // Called with no bytes too: a head without body completes (kDone) on the next call.
      std::string_view data(in_.data() + in_off_, in_.size() - in_off_);
      size_t n = 0;
      http::Step step = parser_.feed(data, &n);
      in_off_ += n;
      switch (step) {
        case http::Step::kNeedMore:
          compact();
          if (peer_closed_) close();
          return;
        case http::Step::kHead:
          on_head();
          break;
        case http::Step::kBody:
          request_.body.append(parser_.body());
          break;
        case http::Step::kDone:
          dispatch();
          break;
        case http::Step::kError: {
          const http::ParseError& e = parser_.error();
          fail(e.status, std::string(e.reason));
          return;
        }
      }
    }
    compact();
    if (peer_closed_ && !busy_ && !closed_ && !close_after_write_) close();
  }

  void compact() {
    if (in_off_ == in_.size()) {
      in_.clear();
      in_off_ = 0;
    } else if (in_off_ > (1u << 16)) {
      in_.erase(0, in_off_);
      in_off_ = 0;
    }
  }

  void on_head() {
    const http::RequestHead& h = parser_.head();
    started_ = true;
    timer_.arm_in(owner_.limits_.request_timeout_ms);
    request_ = Request{};
    request_.method = std::string(h.method_text);
    std::string_view target = h.path;
    size_t q = target.find('?');
    request_.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) request_.query = std::string(target.substr(q + 1));
    for (const http::Header& f : h.headers) {
      if (lower(f.name) == "authorization") {
        request_.authorization = std::string(f.value);
      } else if (lower(f.name) == "content-type") {
        request_.content_type = media_type(f.value);
      }
    }
    request_.peer = peer_;
    keep_alive_ = h.keep_alive;
    head_method_ = h.method == http::Method::kHead;
    if (h.expect_continue) queue("HTTP/1.1 100 Continue\r\n\r\n");
  }

  void dispatch() {
    busy_ = true;
    timer_.cancel();
    std::weak_ptr<bool> alive = alive_;
    Connection* self = this;
    owner_.handler_(std::move(request_), [alive, self](Response r) {
      auto a = alive.lock();
      if (!a || !*a) return;
      self->answer(std::move(r));
    });
  }

  void answer(const Response& r) {
    if (closed_) return;
    busy_ = false;
    started_ = false;
    const auto status = static_cast<uint16_t>(r.status);
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " +
                       std::string(http::reason_phrase(status)) + "\r\n";
    if (!r.body.empty() || status != 204) {
      head += "Content-Type: " + r.content_type + "\r\n";
    }
    if (status != 204) head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    head += "Cache-Control: no-store\r\n";
    for (const auto& [name, value] : r.headers) head += name + ": " + value + "\r\n";
    if (!keep_alive_) head += "Connection: close\r\n";
    head += "\r\n";
    queue(head);
    if (!head_method_ && status != 204) queue(r.body);
    if (!keep_alive_) {
      close_after_write_ = true;
    } else {
      timer_.arm_in(owner_.limits_.idle_timeout_ms);
    }
    if (!flush()) return;
    process();
  }

  // Answers a request that could not be parsed, then closes.
  void fail(uint16_t status, const std::string& why) {
    keep_alive_ = false;
    head_method_ = false;
    answer(error_response(status, status == 408 ? "RequestTimeout" : "InvalidRequest", why));
  }

  void queue(std::string_view bytes) { out_.append(bytes); }

  // Writes what it can; false when the connection was closed.
  bool flush() {
    while (out_off_ < out_.size()) {
      ssize_t n = ::send(fd_.get(), out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL);
      if (n > 0) {
        out_off_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      close();
      return false;
    }
    out_.clear();
    out_off_ = 0;
    if (close_after_write_) {
      linger();
      return false;
    }
    return true;
  }

  // After an answer that ends the connection: stop sending, but read and drop what the client
  // still sends for a while, so that closing with unread bytes does not reset the connection
  // before the client read the answer (a 413 while it is still uploading).
  void linger() {
    lingering_ = true;
    ::shutdown(fd_.get(), SHUT_WR);
    timer_.arm_in(kLingerMs);
    discard();
  }

  void discard() {
    char sink[16384];
    for (;;) {
      ssize_t n = ::recv(fd_.get(), sink, sizeof sink, 0);
      if (n > 0) {
        lingered_ += static_cast<size_t>(n);
        if (lingered_ > kMaxLingerBytes) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      break;  // EOF or error
    }
    close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    *alive_ = false;
    timer_.cancel();
    fd_.reset();
    owner_.remove(this);
  }

  Impl& owner_;
  net::UniqueFd fd_;
  std::string peer_;
  http::RequestParser parser_;
  net::Timer timer_;
  std::shared_ptr<bool> alive_;
  std::string in_;
  size_t in_off_ = 0;
  std::string out_;
  size_t out_off_ = 0;
  Request request_;
  bool started_ = false;  // a request head arrived and its answer is not sent yet
  bool busy_ = false;     // the handler has the request
  bool keep_alive_ = true;
  bool head_method_ = false;
  bool peer_closed_ = false;
  bool close_after_write_ = false;
  bool lingering_ = false;
  size_t lingered_ = 0;
  bool closed_ = false;
  bool in_process_ = false;
};

HttpServer::Impl::~Impl() {
  acceptor_.reset();
  connections_.clear();
}

void HttpServer::Impl::on_accept(void* self, net::UniqueFd fd, const net::SocketAddress& peer,
                                 const net::SocketAddress&) {
  auto* impl = static_cast<Impl*>(self);
  if (impl->connections_.size() >= impl->limits_.max_connections) {
    FLOG_WARN("admin API: {} connections open, refusing {}", impl->connections_.size(),
              peer.to_string());
    return;  // fd closes here
  }
  auto c = std::make_unique<Connection>(*impl, std::move(fd), peer.to_string());
  Connection* raw = c.get();
  impl->connections_.emplace(raw, std::move(c));
  if (auto st = raw->start(); !st.ok()) {
    FLOG_WARN("admin API: {}", st.error().message);
    impl->connections_.erase(raw);
  }
}

void HttpServer::Impl::remove(Connection* c) {
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  // Other events of this batch may still name the connection: destroy it after the batch.
  loop_.defer_delete(std::move(it->second));
  connections_.erase(it);
}

base::Result<std::unique_ptr<HttpServer>> HttpServer::start(net::EventLoop& loop,
                                                            const net::SocketAddress& address,
                                                            ServerLimits limits, Handler handler) {
  auto fd = net::listen_tcp(address, /*reuseport=*/false, kBacklog);
  if (!fd.ok()) return fd.take_error();
  auto impl = std::make_unique<Impl>(loop, limits, std::move(handler));
  impl->acceptor_ = std::make_unique<net::Acceptor>(loop, std::move(*fd), &Impl::on_accept,
                                                    impl.get(), "admin API");
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

const net::SocketAddress& HttpServer::bound() const {
  return impl_->acceptor_->bound();
}
size_t HttpServer::connections() const {
  return impl_->connections_.size();
}

}  // namespace fulcrum::api
