// One HTTP/2 client connection of an HTTPS listener (ALPN "h2"): the frames go through the
// http::H2ServerSession codec; each request stream is routed exactly as HttpSession routes an
// HTTP/1.1 request (l7/forwarding.h), and takes an HTTP/1.1 connection of the worker's upstream
// pool for itself (one stream at a time per connection; back to the pool after a clean response).
// The request goes upstream as HTTP/1.1 (Host from :authority, a body without Content-Length
// chunked), the response is parsed by http::ResponseParser and goes back on the stream (hop-by-hop
// fields dropped, names lowercased). Flow control both ways: an upstream is not read while its
// stream has more than a bound of response bytes the client's windows have not let out yet; the
// client's request body window is given back as the bytes reach the upstream socket.
// Errors are answered on their stream (502/503/504, 403, redirects); a timed-out or broken
// response already started resets its stream. A finished stream's state is kept (a bounded
// number, their buffers bounded) for the connection's next streams: a request costs no
// allocation of Fulcrum's own once the connection is warm. [worker] only; owned by the worker's
// HttpSessionList, destroyed through defer_delete.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/id_map.h"
#include "http/h2_session.h"
#include "l7/context.h"
#include "l7/http_listener.h"
#include "l7/http_session.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/stream.h"

namespace fulcrum::l7 {

class Http2Session final : public net::Deferred,
                           public net::IntrusiveLink<Http2Session>,
                           private net::BatchEnd,
                           private http::H2Handler {
 public:
  Http2Session(HttpContext& ctx, std::shared_ptr<HttpListenerRuntime> listener,
               std::unique_ptr<net::Stream> client, const net::SocketAddress& peer,
               const net::SocketAddress& local);
  ~Http2Session() override;

  void start(HttpSession::ClientInfo info);
  // GOAWAY: the streams in flight finish, then the connection closes.
  void drain();
  void close(bool reset);

  // As HttpSession::apply_generation: at the deadline, GOAWAY; the streams in flight finish,
  // then the connection closes.
  void apply_generation(int64_t now_ms);

 private:
  struct H2Stream;
  struct Side final : net::IoHandler {
    Http2Session* session = nullptr;
    void on_io(uint32_t events) override;
  };

  // http::H2Handler
  void on_h2_request(int32_t id, http::H2Request& request) override;
  void on_h2_data(int32_t id, std::string_view data) override;
  void on_h2_request_end(int32_t id) override;
  void on_h2_stream_closed(int32_t id, uint32_t error_code) override;
  void on_h2_malformed() override { ++ctx_.counters.bad_requests; }

  void on_client_io(uint32_t events);
  static void on_timer(void* self);
  // Frames out to the client, paused upstreams resumed, the timer re-armed; closes the session
  // when it is finished. Every entry point ends with schedule(): once per batch of events, so
  // the responses of many streams leave in one write.
  void pump();
  void schedule() { ctx_.loop.at_batch_end(this); }
  // Called by the loop only, with no frame of this session on the stack: the streams forgotten
  // since are reused from here on.
  void on_batch_end() override;
  H2Stream* find(int32_t id);
  H2Stream* new_stream();

  void connect_upstream(H2Stream& s);
  void on_upstream_connected(H2Stream& s);
  void on_upstream_io(H2Stream& s, uint32_t events);
  void upstream_failed(H2Stream& s, int err, const char* what);
  bool flush_upstream(H2Stream& s);
  void process_upstream_input(H2Stream& s);
  void response_done(H2Stream& s);
  void answer(H2Stream& s, uint16_t status, std::string_view detail,
              std::string_view location = {});
  void release_upstream(H2Stream& s, bool reusable);
  void forget(H2Stream& s);
  // The stream's response is complete (or given up): its duration, and its access log line.
  void observe_done(H2Stream& s, uint16_t status);
  void arm_timer();

  HttpContext& ctx_;
  std::shared_ptr<HttpListenerRuntime> listener_;
  net::SocketAddress peer_;
  net::SocketAddress local_;
  std::string peer_ip_;
  std::unique_ptr<net::Stream> client_;
  Side side_;
  net::Timer timer_;
  http::H2ServerSession codec_;
  base::IdMap<int32_t, H2Stream*> streams_;  // owned: taken from spare_streams_
  // Forgotten in this batch (callers up the stack may still hold them), then spares.
  std::vector<std::unique_ptr<H2Stream>> retired_;
  base::Spares<H2Stream> spare_streams_;
  // Scratch for a response head going to the client.
  std::vector<http::Header> response_fields_;
  std::vector<std::string> set_cookies_;
  std::string client_out_;
  bool client_tls_ = true;
  std::string cert_subject_;
  bool refused_ = false;
  bool draining_ = false;
  bool closed_ = false;
  bool hangup_ = false;
  bool pumping_ = false;
  int64_t idle_deadline_ms_ = 0;
  int64_t last_client_io_ms_ = 0;  // the last byte read from or written to the client
  // As HttpSession's: the listener's removal; a stream's backend leaving (lifted when no stream
  // is left).
  int64_t listener_drain_ms_ = HttpSession::kNoDeadline;
  int64_t backend_drain_ms_ = HttpSession::kNoDeadline;
  int64_t drain_at() const { return std::min(listener_drain_ms_, backend_drain_ms_); }
};

}  // namespace fulcrum::l7
