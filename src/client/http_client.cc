#include "client/http_client.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "net/socket.h"

namespace fulcrum::client {

namespace {

bool equals_ci(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Waits until `fd` is ready for `events` or `timeout_ms` passes; false on timeout. EINTR restarts
// the wait with the full timeout (a signal is rare here and the bound stays finite).
bool wait_for(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = poll(&p, 1, timeout_ms);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;  // let the following call report the error
  }
}

base::Error io_error(const Url& url, int err, const std::string& what) {
  base::Error e = base::Error::system(
      err, what + " " + url.to_string() + ": " + (err ? std::strerror(err) : "timed out"));
  return e;
}

// Connects to one address within the timeout; returns a connected non-blocking socket.
base::Result<net::UniqueFd> connect_one(const Url& url, const net::SocketAddress& to,
                                        int timeout_ms) {
  bool in_progress = false;
  auto fd = net::connect_tcp(to, &in_progress);
  if (!fd.ok()) {
    base::Error e = fd.take_error();
    e.retryable = true;
    e.message = "cannot connect to " + url.to_string() + ": " + e.message;
    return e;
  }
  if (in_progress) {
    if (!wait_for(fd->get(), POLLOUT, timeout_ms)) {
      base::Error e = io_error(url, ETIMEDOUT, "cannot connect to");
      e.retryable = true;
      return e;
    }
    if (int err = net::socket_error(fd->get()); err != 0) {
      base::Error e = io_error(url, err, "cannot connect to");
      e.retryable = true;
      return e;
    }
  }
  return std::move(*fd);
}

}  // namespace

std::string_view Response::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (equals_ci(n, name)) return v;
  }
  return {};
}

std::string serialize_request(const Url& url, const Request& request) {
  std::string out;
  out.reserve(256 + request.body.size());
  out += request.method;
  out += ' ';
  out += url.prefix;
  out += request.target.empty() ? "/" : request.target;
  out += " HTTP/1.1\r\nHost: ";
  out += url.authority();
  out += "\r\nUser-Agent: fulcrumctl\r\nAccept: application/json\r\n";
  if (!request.token.empty()) {
    out += "Authorization: Bearer ";
    out += request.token;
    out += "\r\n";
  }
  bool has_body = !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
                  request.method == "PATCH";
  if (has_body) {
    if (!request.content_type.empty()) {
      out += "Content-Type: ";
      out += request.content_type;
      out += "\r\n";
    }
    out += "Content-Length: ";
    out += std::to_string(request.body.size());
    out += "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  out += request.body;
  return out;
}

ResponseReader::ResponseReader(http::Method request_method) {
  parser_.expect(request_method, false);
}

bool ResponseReader::fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
  return false;
}

bool ResponseReader::feed(std::string_view data) {
  if (done_ || !error_.empty()) return done_;
  while (true) {
    size_t used = 0;
    http::Step step = parser_.feed(data, &used);
    data.remove_prefix(used);
    switch (step) {
      case http::Step::kNeedMore:
        return false;
      case http::Step::kHead: {
        const http::ResponseHead& head = parser_.head();
        in_interim_ = head.informational();
        if (in_interim_) break;
        response_.status = head.status;
        response_.headers.clear();
        for (const http::Header& h : head.headers) {
          response_.headers.emplace_back(std::string(h.name), std::string(h.value));
        }
        break;
      }
      case http::Step::kBody:
        if (response_.body.size() + parser_.body().size() > kMaxResponseBytes) {
          return fail("the answer is larger than " + std::to_string(kMaxResponseBytes >> 20) +
                      " MiB");
        }
        response_.body.append(parser_.body());
        break;
      case http::Step::kDone:
        if (in_interim_) {
          in_interim_ = false;
          break;
        }
        done_ = true;
        return true;
      case http::Step::kError:
        return fail("malformed answer: " + std::string(parser_.error().reason));
    }
  }
}

bool ResponseReader::finish() {
  if (done_ || !error_.empty()) return done_;
  if (parser_.idle() && response_.status == 0) return fail("the server closed without answering");
  http::Step step = parser_.finish();
  if (step == http::Step::kDone && !in_interim_ && response_.status != 0) {
    done_ = true;
    return true;
  }
  return fail("the answer was cut short");
}

base::Result<Response> ResponseReader::result() && {
  if (done_) return std::move(response_);
  return base::Error{base::ErrorSource::kUpstream,
                     false,
                     0,
                     error_.empty() ? "the answer was cut short" : error_,
                     {}};
}

base::Result<Response> send(const Url& url, const Request& request, const Timeouts& timeouts) {
  std::vector<net::SocketAddress> addresses = resolve(url);
  if (addresses.empty()) return base::Error::internal("no address for " + url.to_string());
  base::Result<net::UniqueFd> fd = base::Error::internal("unreachable");
  for (const net::SocketAddress& a : addresses) {
    fd = connect_one(url, a, timeouts.connect_ms);
    if (fd.ok()) break;
  }
  if (!fd.ok()) return fd.take_error();
  int s = fd->get();

  const std::string bytes = serialize_request(url, request);
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(s, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_for(s, POLLOUT, timeouts.read_ms)) {
        return io_error(url, ETIMEDOUT, "sending to");
      }
      continue;
    }
    // The server may answer early (413, 401) and close: read what it said.
    break;
  }

  ResponseReader reader(http::method_from_text(request.method));
  char buf[16384];
  while (!reader.done()) {
    ssize_t n = ::recv(s, buf, sizeof buf, 0);
    if (n > 0) {
      reader.feed(std::string_view(buf, static_cast<size_t>(n)));
      if (reader.failed()) break;
      continue;
    }
    if (n == 0) {
      reader.finish();
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_for(s, POLLIN, timeouts.read_ms)) {
        return io_error(url, ETIMEDOUT, "no answer from");
      }
      continue;
    }
    if (reader.finish()) break;
    return io_error(url, errno, "reading the answer of");
  }
  auto result = std::move(reader).result();
  if (!result.ok()) {
    base::Error e = result.take_error();
    e.message = url.to_string() + ": " + e.message;
    return e;
  }
  return result;
}

}  // namespace fulcrum::client
