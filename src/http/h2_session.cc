#include "http/h2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "base/clock.h"
#include "base/id_map.h"

namespace fulcrum::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

// What SETTINGS_MAX_HEADER_LIST_SIZE counts per field (RFC 9113 §6.5.2).
constexpr size_t kFieldOverhead = 32;
// Per-stream state kept for reuse by the next streams of the connection (their buffers serve
// again without allocating), and the largest response buffer such a spare keeps.
constexpr size_t kSpareStreams = 32;
constexpr size_t kMaxSpareBuffer = 16 * 1024;

}  // namespace

struct H2ServerSession::Impl {
  struct InStream {
    H2Request request;
    std::string host;  // the Host field, compared with :authority
    size_t header_bytes = 0;
    bool too_large = false;
    bool bad = false;       // a rule checked here was broken: reset at the end of the block
    bool reported = false;  // the handler knows this stream

    void reuse() {
      request.clear();
      host.clear();
      header_bytes = 0;
      too_large = bad = reported = false;
    }
  };
  struct OutBody {
    std::string bytes;
    size_t offset = 0;
    bool end = false;
    bool deferred = false;  // nghttp2 waits for resume_data

    void reuse() {
      base::clear_bounded(&bytes, kMaxSpareBuffer);
      offset = 0;
      end = deferred = false;
    }
  };
  template <class T>
  struct Table {
    base::IdMap<int32_t, std::unique_ptr<T>> live;
    base::Spares<T> spares{kSpareStreams};

    T* find(int32_t id) {
      auto* p = live.find(id);
      return p ? p->get() : nullptr;
    }
    T& open(int32_t id) {
      std::unique_ptr<T>& slot = live[id];
      if (!slot) {
        slot = spares.take();
        slot->reuse();
      }
      return *slot;
    }
    void close(int32_t id) { spares.give(live.take(id)); }
  };

  H2Handler* handler;
  H2Limits limits;
  nghttp2_session* session = nullptr;
  Table<InStream> in;
  Table<OutBody> out;
  int64_t reset_window_start_ms = 0;
  uint32_t resets_in_window = 0;
  // Scratch for respond(): the header list handed to nghttp2, which copies it.
  std::vector<nghttp2_nv> nv;
  std::string names;  // lowercased field names

  static Impl* self(void* user) { return static_cast<Impl*>(user); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      Impl* s = self(user);
      s->in.close(frame->hd.stream_id);  // a fresh one: a repeated id is refused by nghttp2
      s->in.open(frame->hd.stream_id);
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    Impl* s = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;  // trailers: checked by nghttp2, not forwarded
    }
    InStream* found = s->in.find(frame->hd.stream_id);
    if (!found) return 0;
    InStream& st = *found;
    st.header_bytes += namelen + valuelen + kFieldOverhead;
    if (st.header_bytes > s->limits.max_header_list_bytes) st.too_large = true;
    if (st.too_large) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    H2Request& r = st.request;
    if (n == ":method") {
      r.method.assign(v);
    } else if (n == ":scheme") {
      r.scheme.assign(v);
    } else if (n == ":authority") {
      r.authority.assign(v);
    } else if (n == ":path") {
      r.path.assign(v);
    } else if (!n.empty() && n.front() == ':') {
      return 0;  // :protocol (extended CONNECT is not enabled, nghttp2 refuses it)
    } else {
      if (n == "host") {
        if (!st.host.empty()) st.bad = true;  // one Host only
        st.host.assign(v);
        return 0;  // becomes the authority
      }
      if (n == "cookie") {
        // RFC 9113 §8.2.3: crumbs sent as separate fields are one field for HTTP/1.1.
        for (auto& [name_seen, value_seen] : r.fields) {
          if (name_seen == "cookie") {
            value_seen.append("; ").append(v);
            return 0;
          }
        }
      }
      if (n == "content-length") {
        uint64_t length = 0;
        for (char c : v) length = length * 10 + static_cast<uint64_t>(c - '0');  // nghttp2: digits
        r.content_length = length;
      }
      r.fields.emplace_back(std::string(n), std::string(v));
    }
    return 0;
  }

  void count_reset() {
    int64_t now = base::monotonic_ms();
    if (now - reset_window_start_ms >= limits.reset_window_ms) {
      reset_window_start_ms = now;
      resets_in_window = 0;
    }
    if (++resets_in_window > limits.max_resets_per_window) {
      nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }

  static int on_frame_recv(nghttp2_session* ns, const nghttp2_frame* frame, void* user) {
    Impl* s = self(user);
    int32_t id = frame->hd.stream_id;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        InStream* found = s->in.find(id);
        if (!found) return 0;
        InStream& st = *found;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          H2Request& r = st.request;
          if (!st.host.empty()) {
            if (r.authority.empty()) {
              r.authority = st.host;
            } else if (!iequals(r.authority, st.host)) {
              st.bad = true;  // RFC 9113 §8.3.1: Host naming another origin than :authority
            }
          }
          if (st.too_large || st.bad || r.authority.empty()) {
            s->in.close(id);
            nghttp2_submit_rst_stream(ns, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
            return 0;
          }
          r.end_stream = end;
          st.reported = true;
          s->handler->on_h2_request(id, r);
          if (end) s->handler->on_h2_request_end(id);
        } else if (end && st.reported) {
          s->handler->on_h2_request_end(id);  // after trailers
        }
        return 0;
      }
      case NGHTTP2_DATA: {
        InStream* st = s->in.find(id);
        if (end && st && st->reported) s->handler->on_h2_request_end(id);
        return 0;
      }
      case NGHTTP2_RST_STREAM:
        s->count_reset();
        return 0;
      default:
        return 0;
    }
  }

  static int on_data_chunk(nghttp2_session* ns, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void* user) {
    Impl* s = self(user);
    InStream* st = s->in.find(id);
    if (!st || !st->reported) {
      nghttp2_session_consume(ns, id, len);  // nobody takes it: credit it back now
      return 0;
    }
    s->handler->on_h2_data(id, std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
    Impl* s = self(user);
    s->out.close(id);
    InStream* st = s->in.find(id);
    if (!st) return 0;
    bool reported = st->reported;
    s->in.close(id);
    if (reported) s->handler->on_h2_stream_closed(id, error_code);
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if ((frame->hd.type == NGHTTP2_RST_STREAM &&
         frame->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR) ||
        (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)) {
      self(user)->handler->on_h2_malformed();
    }
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source*, void* user) {
    Impl* s = self(user);
    OutBody* found = s->out.find(id);
    if (!found) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    OutBody& b = *found;
    size_t n = std::min(length, b.bytes.size() - b.offset);
    if (n > 0) std::memcpy(buf, b.bytes.data() + b.offset, n);
    b.offset += n;
    if (b.offset == b.bytes.size()) {
      b.bytes.clear();
      b.offset = 0;
      if (b.end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        b.deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    } else if (b.offset > 256 * 1024) {
      b.bytes.erase(0, b.offset);
      b.offset = 0;
    }
    return static_cast<ssize_t>(n);
  }
};

H2ServerSession::H2ServerSession(H2Handler* handler, const H2Limits& limits)
    : impl_(std::make_unique<Impl>()) {
  impl_->handler = handler;
  impl_->limits = limits;
  impl_->reset_window_start_ms = base::monotonic_ms();
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Impl::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Impl::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Impl::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Impl::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Impl::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &Impl::on_frame_send);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, limits.max_outbound_ack);
  nghttp2_option_set_max_settings(opt, limits.max_settings);
  nghttp2_option_set_max_continuations(opt, 8);
  // nghttp2's own token bucket stays as a backstop above ours (its GOAWAY says INTERNAL_ERROR).
  nghttp2_option_set_stream_reset_rate_limit(opt, 4ULL * limits.max_resets_per_window,
                                             limits.max_resets_per_window);
  nghttp2_session_server_new2(&impl_->session, cb, impl_.get(), opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.initial_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits.max_header_list_bytes)},
  };
  nghttp2_submit_settings(impl_->session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection window: room for several streams' bodies in flight.
  nghttp2_session_set_local_window_size(impl_->session, NGHTTP2_FLAG_NONE, 0, 4 * 1024 * 1024);
}

H2ServerSession::~H2ServerSession() {
  nghttp2_session_del(impl_->session);
}

bool H2ServerSession::feed(std::string_view data) {
  ssize_t n = nghttp2_session_mem_recv(impl_->session,
                                       reinterpret_cast<const uint8_t*>(data.data()), data.size());
  return n >= 0;
}

bool H2ServerSession::produce(std::string* out, size_t max_bytes) {
  while (out->size() < max_bytes) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(impl_->session, &p);
    if (n < 0) return false;
    if (n == 0) break;
    out->append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  return true;
}

bool H2ServerSession::wants_read() const {
  return nghttp2_session_want_read(impl_->session) != 0;
}

bool H2ServerSession::wants_write() const {
  return nghttp2_session_want_write(impl_->session) != 0;
}

bool H2ServerSession::respond(int32_t stream, uint16_t status, std::span<const Header> fields,
                              bool end_stream) {
  char status_text[3] = {static_cast<char>('0' + status / 100 % 10),
                         static_cast<char>('0' + status / 10 % 10),
                         static_cast<char>('0' + status % 10)};
  // The lowercased names go into one buffer sized up front, so the views into it stay valid.
  std::string& names = impl_->names;
  size_t name_bytes = 0;
  for (const Header& h : fields) name_bytes += h.name.size();
  names.resize(name_bytes);
  std::vector<nghttp2_nv>& nv = impl_->nv;
  nv.clear();
  auto add = [&](const char* n, size_t n_size, std::string_view v) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n_size, v.size(),
                  NGHTTP2_NV_FLAG_NONE});
  };
  add(":status", 7, std::string_view(status_text, sizeof status_text));
  size_t at = 0;
  for (const Header& h : fields) {
    char* lower = names.data() + at;
    for (size_t i = 0; i < h.name.size(); ++i) {
      char c = h.name[i];
      lower[i] = static_cast<char>(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    add(lower, h.name.size(), h.value);
    at += h.name.size();
  }
  int rv;
  if (end_stream) {
    rv = nghttp2_submit_response(impl_->session, stream, nv.data(), nv.size(), nullptr);
  } else {
    impl_->out.open(stream);
    nghttp2_data_provider provider{};
    provider.read_callback = &Impl::read_body;
    rv = nghttp2_submit_response(impl_->session, stream, nv.data(), nv.size(), &provider);
  }
  return rv == 0;
}

void H2ServerSession::send_data(int32_t stream, std::string_view data, bool end) {
  Impl::OutBody* found = impl_->out.find(stream);
  if (!found) return;
  Impl::OutBody& b = *found;
  b.bytes.append(data);
  b.end = b.end || end;
  if (b.deferred) {
    b.deferred = false;
    nghttp2_session_resume_data(impl_->session, stream);
  }
}

size_t H2ServerSession::queued(int32_t stream) const {
  const Impl::OutBody* b = impl_->out.find(stream);
  return b ? b->bytes.size() - b->offset : 0;
}

void H2ServerSession::consumed(int32_t stream, size_t n) {
  if (n == 0) return;
  // The connection's window always; the stream's while it exists.
  nghttp2_session_consume(impl_->session, stream, n);
}

void H2ServerSession::reset(int32_t stream, uint32_t error_code) {
  nghttp2_submit_rst_stream(impl_->session, NGHTTP2_FLAG_NONE, stream, error_code);
}

void H2ServerSession::shutdown() {
  nghttp2_submit_goaway(impl_->session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(impl_->session), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

void H2ServerSession::terminate(uint32_t error_code) {
  nghttp2_session_terminate_session(impl_->session, error_code);
}

size_t H2ServerSession::open_streams() const {
  return impl_->in.live.size();
}

}  // namespace fulcrum::http
