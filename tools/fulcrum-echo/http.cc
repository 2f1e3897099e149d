// The HTTP/1.1 protocol (keep-alive, pipelining), parsed with llhttp.
#include <sys/epoll.h>
#include <zlib.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "server.h"

namespace echo {

namespace {

constexpr size_t kMaxHead = 64 * 1024;          // request line + headers
constexpr size_t kMaxEchoBody = 1024 * 1024;    // /echo bodies beyond this get 413
constexpr size_t kMaxQueuedOutput = 64 * 1024;  // stop parsing while this much output is queued
constexpr uint64_t kMaxDelayMs = 3600 * 1000;
constexpr int kPumpRounds = 16;

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

const std::string* FindHeader(const HttpState& h, std::string_view name) {
  for (const auto& [k, v] : h.headers) {
    if (IEquals(k, name)) return &v;
  }
  return nullptr;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  *out = v;
  return true;
}

// The value of `key` in a query string "a=1&b=2", or empty.
std::string_view QueryParam(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == key) return part.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

const char* Reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

// Responses with these statuses carry no body (and 1xx/204 no Content-Length either).
bool BodyForbidden(int status) {
  return status < 200 || status == 204 || status == 304;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(ch));
      out += esc;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

HttpState& State(llhttp_t* p) {
  return *static_cast<HttpState*>(p->data);
}

bool CountHead(HttpState& h, size_t len) {
  h.head_bytes += len;
  if (h.head_bytes > kMaxHead) {
    h.head_too_large = true;
    return false;
  }
  return true;
}

}  // namespace

// llhttp callbacks. The parser pauses after each request so that it is answered before the next
// one (possibly already received: pipelining) is parsed.
struct HttpCallbacks {
  static int OnMessageBegin(llhttp_t* p) {
    HttpState& h = State(p);
    h.in_message = true;
    h.message_ready = false;
    h.head_too_large = false;
    h.field_open = false;
    h.head_bytes = 0;
    h.url.clear();
    h.headers.clear();
    h.keep_body = false;
    h.body_too_large = false;
    h.body.clear();
    h.sink_body = false;
    h.body_count = 0;
    h.body_crc = crc32(0, nullptr, 0);
    h.keep_alive = true;
    h.upgrade = false;
    h.is_head = false;
    h.http10 = false;
    h.request_line.clear();
    return 0;
  }

  static int OnUrl(llhttp_t* p, const char* at, size_t len) {
    HttpState& h = State(p);
    if (!CountHead(h, len)) return -1;
    h.url.append(at, len);
    return 0;
  }

  static int OnHeaderField(llhttp_t* p, const char* at, size_t len) {
    HttpState& h = State(p);
    if (!CountHead(h, len + 4)) return -1;
    if (!h.field_open || h.headers.empty()) {
      h.headers.emplace_back();
      h.field_open = true;
    }
    h.headers.back().first.append(at, len);
    return 0;
  }

  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
    HttpState& h = State(p);
    if (!CountHead(h, len)) return -1;
    h.field_open = false;
    if (h.headers.empty()) h.headers.emplace_back();
    h.headers.back().second.append(at, len);
    return 0;
  }

  static int OnHeadersComplete(llhttp_t* p) {
    HttpState& h = State(p);
    h.field_open = false;
    auto method = static_cast<llhttp_method_t>(llhttp_get_method(p));
    h.is_head = method == HTTP_HEAD;
    unsigned major = llhttp_get_http_major(p);
    unsigned minor = llhttp_get_http_minor(p);
    h.http10 = major == 1 && minor == 0;
    h.request_line = std::string(llhttp_method_name(method)) + " " + h.url + " HTTP/" +
                     std::to_string(major) + "." + std::to_string(minor);
    std::string_view path(h.url);
    path = path.substr(0, path.find('?'));
    h.keep_body = path == "/echo";
    h.sink_body = path == "/sink";
    // A client that waits for "100 Continue" before sending the body gets it right away.
    const std::string* expect = FindHeader(h, "Expect");
    if (expect != nullptr && IEquals(*expect, "100-continue") && !h.http10) {
      h.out += "HTTP/1.1 100 Continue\r\n\r\n";
    }
    return 0;
  }

  static int OnBody(llhttp_t* p, const char* at, size_t len) {
    HttpState& h = State(p);
    if (h.keep_body && !h.body_too_large) {
      if (h.body.size() + len > kMaxEchoBody) {
        h.body_too_large = true;
        h.body.clear();
        h.body.shrink_to_fit();
      } else {
        h.body.append(at, len);
      }
    }
    if (h.sink_body) {
      h.body_count += len;
      h.body_crc = crc32(h.body_crc, reinterpret_cast<const Bytef*>(at), static_cast<uInt>(len));
    }
    return 0;
  }

  static int OnMessageComplete(llhttp_t* p) {
    HttpState& h = State(p);
    h.keep_alive = llhttp_should_keep_alive(p) != 0;
    h.upgrade = llhttp_get_upgrade(p) != 0;
    h.in_message = false;
    h.message_ready = true;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& Settings() {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = OnMessageBegin;
      s.on_url = OnUrl;
      s.on_header_field = OnHeaderField;
      s.on_header_value = OnHeaderValue;
      s.on_headers_complete = OnHeadersComplete;
      s.on_body = OnBody;
      s.on_message_complete = OnMessageComplete;
      return s;
    }();
    return settings;
  }
};

void Server::HttpInit(Conn& c) {
  c.hs = std::make_unique<HttpState>();
  HttpState& h = *c.hs;
  h.server = this;
  h.conn = &c;
  llhttp_init(&h.parser, HTTP_REQUEST, &HttpCallbacks::Settings());
  h.parser.data = &h;
}

uint32_t Server::HttpInterest(const Conn& c) const {
  const HttpState& h = *c.hs;
  uint32_t ev = 0;
  if (h.output_pending()) ev |= EPOLLOUT;
  if (h.wait == HttpState::Wait::kStall) return ev | EPOLLRDHUP;
  if (!c.read_eof && !c.buf.full() && !h.close_after && !h.reset_after) ev |= EPOLLIN;
  return ev;
}

void Server::HttpAppendHead(const HttpState& h, std::string* dst, int status, uint64_t length,
                            bool closing, const char* content_type) const {
  char line[96];
  std::snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, Reason(status));
  *dst += line;
  *dst += "Server: fulcrum-echo\r\n";
  if (!BodyForbidden(status)) {
    *dst += "Content-Type: ";
    *dst += content_type;
    *dst += "\r\nContent-Length: " + std::to_string(length) + "\r\n";
  } else if (status == 304) {
    *dst += "Content-Length: 0\r\n";
  }
  *dst += "X-Echo-Name: " + opt_.name + "\r\n";
  if (const std::string* id = FindHeader(h, "X-Request-Id")) {
    *dst += "X-Echo-Request-Id: " + *id + "\r\n";
  }
  if (closing) {
    *dst += "Connection: close\r\n";
  } else if (h.http10) {
    *dst += "Connection: keep-alive\r\n";
  }
  *dst += "\r\n";
}

std::string Server::StatsJson() const {
  std::string tcp = "{\"connections\":" + std::to_string(tcp_connections_);
  for (size_t i = 0; i < kCmdCount; ++i) {
    tcp += ",\"" + std::string(kCommandNames[i]) + "\":" + std::to_string(tcp_commands_[i]);
  }
  tcp += "}";
  return "{\"name\":" + JsonString(opt_.name) + ",\"requests\":" + std::to_string(http_requests_) +
         ",\"connections\":" + std::to_string(http_connections_) +
         ",\"active_connections\":" + std::to_string(active_) +
         ",\"failing\":" + (failing_ ? "true" : "false") + ",\"tcp\":" + tcp +
         ",\"udp_datagrams\":" + std::to_string(udp_datagrams_) + "}\n";
}

// Answers the request that just completed. Returns false if the connection was closed.
bool Server::HttpAnswer(Conn& c) {
  HttpState& h = *c.hs;
  h.message_ready = false;
  ++http_requests_;
  bool closing = !h.keep_alive || h.upgrade;
  std::string_view url(h.url);
  size_t qmark = url.find('?');
  std::string_view path = url.substr(0, qmark);
  std::string_view query = qmark == std::string_view::npos ? "" : url.substr(qmark + 1);
  auto respond = [&](int status, const std::string& body, const char* type = "text/plain") {
    bool send_body = !h.is_head && !BodyForbidden(status);
    HttpAppendHead(h, &h.out, status, body.size(), closing, type);
    if (send_body) h.out += body;
  };
  auto status_body = [&](int status) { return opt_.name + " " + std::to_string(status) + "\n"; };

  if (path.starts_with("/_admin/")) {
    if (path == "/_admin/fail") {
      failing_ = true;
      respond(200, opt_.name + " failing\n");
    } else if (path == "/_admin/ok") {
      failing_ = false;
      respond(200, opt_.name + " ok\n");
    } else if (path == "/_admin/stats") {
      respond(200, StatsJson(), "application/json");
    } else {
      respond(404, status_body(404));
    }
  } else if (failing_) {
    respond(500, opt_.name + " failing\n");
  } else if (path == "/health") {
    respond(200, "ok\n");
  } else if (path == "/echo") {
    if (h.body_too_large) {
      respond(413, status_body(413));
    } else {
      std::string text = h.request_line + "\n";
      for (const auto& [k, v] : h.headers) text += k + ": " + v + "\n";
      text += "\n";
      text += h.body;
      respond(200, text);
    }
  } else if (path == "/sink") {
    char line[64];
    std::snprintf(line, sizeof line, "%" PRIu64 " %08lx\n", h.body_count,
                  h.body_crc & 0xffffffffUL);
    respond(200, line);
  } else if (path.starts_with("/status/")) {
    uint64_t code = 0;
    if (ParseU64(path.substr(8), &code) && code >= 200 && code <= 599) {
      respond(static_cast<int>(code), status_body(static_cast<int>(code)));
    } else {
      respond(400, status_body(400));
    }
  } else if (path.starts_with("/bytes/")) {
    uint64_t n = 0;
    uint64_t seed = 1;
    std::string_view seed_text = QueryParam(query, "seed");
    if (ParseU64(path.substr(7), &n) && (seed_text.empty() || ParseU64(seed_text, &seed))) {
      HttpAppendHead(h, &h.out, 200, n, closing, "application/octet-stream");
      if (!h.is_head && n > 0) {
        h.gen = ByteStream(seed);
        h.gen_left = n;
        if (!h.gen_buf) h.gen_buf = std::make_unique_for_overwrite<char[]>(Buffer::kCapacity);
        h.gen_start = h.gen_end = 0;
      }
    } else {
      respond(400, status_body(400));
    }
  } else if (path == "/stall") {
    h.wait = HttpState::Wait::kStall;
    return true;
  } else if (path == "/close") {
    h.close_after = true;
    return true;
  } else if (path == "/reset") {
    h.reset_after = true;
    return true;
  } else if (path.starts_with("/delay/")) {
    uint64_t ms = 0;
    if (ParseU64(path.substr(7), &ms) && ms <= kMaxDelayMs) {
      h.delayed.clear();
      std::string body = opt_.name + "\n";
      HttpAppendHead(h, &h.delayed, 200, body.size(), closing);
      if (!h.is_head) h.delayed += body;
      h.wait = HttpState::Wait::kDelay;
      h.delayed_close = closing;
      SetTimer(c, std::chrono::milliseconds(ms));
      return true;
    }
    respond(400, status_body(400));
  } else {
    respond(200, opt_.name + "\n");
  }
  if (closing) h.close_after = true;
  return true;
}

void Server::HttpOnTimer(Conn& c) {
  HttpState& h = *c.hs;
  if (h.wait != HttpState::Wait::kDelay) return;
  h.wait = HttpState::Wait::kNone;
  h.out += h.delayed;
  h.delayed.clear();
  if (h.delayed_close) h.close_after = true;
  if (!HttpPump(c)) return;
  if (!c.finishing) UpdateInterest(c, HttpInterest(c));
}

// Parses buffered input while nothing blocks the next answer. Returns false if closed.
bool Server::HttpParse(Conn& c) {
  HttpState& h = *c.hs;
  while (!c.buf.empty() && h.wait == HttpState::Wait::kNone && !h.close_after && !h.reset_after &&
         h.gen_left == 0 && h.gen_start == h.gen_end && h.out_pending_bytes() < kMaxQueuedOutput) {
    const char* data = c.buf.begin_ptr();
    llhttp_errno_t err = llhttp_execute(&h.parser, data, c.buf.size());
    if (err == HPE_OK) {
      c.buf.Consume(c.buf.size());
      break;
    }
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      c.buf.Consume(static_cast<size_t>(llhttp_get_error_pos(&h.parser) - data));
      if (err == HPE_PAUSED) {
        llhttp_resume(&h.parser);
      } else {
        h.close_after = true;  // upgrades are not supported: answer, then close
      }
      if (h.message_ready && !HttpAnswer(c)) return false;
      continue;
    }
    // A malformed request: answer 400 (431 for an oversized head) and close.
    int status = h.head_too_large ? 431 : 400;
    Log("bad request (%s): %s", llhttp_errno_name(err), llhttp_get_error_reason(&h.parser));
    std::string body = opt_.name + " " + std::to_string(status) + "\n";
    HttpAppendHead(h, &h.out, status, body.size(), /*closing=*/true);
    h.out += body;
    h.close_after = true;
    c.buf.Clear();
    ++http_requests_;
    break;
  }
  return true;
}

// Writes some queued output. Returns false if the connection was closed.
bool Server::HttpWrite(Conn& c, bool* progress) {
  HttpState& h = *c.hs;
  size_t sent = 0;
  Io io = Io::kAgain;
  if (h.out_off < h.out.size()) {
    bool more = h.gen_left > 0 || h.gen_start < h.gen_end;
    io = Send(c, h.out.data() + h.out_off, h.out.size() - h.out_off, &sent, more);
    if (io == Io::kData) {
      h.out_off += sent;
      if (h.out_off == h.out.size()) {
        h.out.clear();
        h.out_off = 0;
        if (h.out.capacity() > kMaxQueuedOutput) h.out.shrink_to_fit();
      }
    }
  } else if (h.gen_left > 0 || h.gen_start < h.gen_end) {
    if (h.gen_start == h.gen_end) {
      h.gen.Fill(h.gen_buf.get(), Buffer::kCapacity / 8);
      h.gen_start = 0;
      h.gen_end =
          h.gen_left < Buffer::kCapacity ? static_cast<size_t>(h.gen_left) : Buffer::kCapacity;
      h.gen_left -= h.gen_end;
    }
    io = Send(c, h.gen_buf.get() + h.gen_start, h.gen_end - h.gen_start, &sent);
    if (io == Io::kData) {
      h.gen_start += sent;
      if (h.gen_start == h.gen_end) h.gen_start = h.gen_end = 0;
    }
  } else {
    return true;
  }
  if (io == Io::kError) {
    CloseConn(c);
    return false;
  }
  if (io == Io::kData && sent > 0) *progress = true;
  return true;
}

bool Server::HttpPump(Conn& c) {
  HttpState& h = *c.hs;
  for (int round = 0; round < kPumpRounds; ++round) {
    bool progress = false;
    if (h.wait != HttpState::Wait::kStall && !c.read_eof && !h.close_after && !h.reset_after) {
      if (c.buf.end == Buffer::kCapacity) c.buf.Compact();
      if (c.buf.end < Buffer::kCapacity) {
        size_t got = 0;
        Io io = Recv(c, c.buf.data.get() + c.buf.end, Buffer::kCapacity - c.buf.end, &got);
        if (io == Io::kError) {
          CloseConn(c);
          return false;
        }
        if (io == Io::kData) c.buf.end += got;
        if (io != Io::kAgain) progress = true;
      }
    }
    size_t before = c.buf.size();
    if (!HttpParse(c)) return false;
    if (c.buf.size() != before) progress = true;
    if (!HttpWrite(c, &progress)) return false;
    if (!h.output_pending()) {
      if (h.reset_after) {
        CloseConn(c, /*reset=*/true);
        return false;
      }
      if (h.close_after) return StartFinish(c);
      // The client is gone and everything it asked for has been answered.
      if (c.read_eof && h.wait == HttpState::Wait::kNone && c.buf.empty()) return StartFinish(c);
    }
    if (!progress) break;
  }
  return true;
}

}  // namespace echo
