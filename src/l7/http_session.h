// One client connection of an HTTP or HTTPS listener (the client side is a net::Stream: plain TCP,
// or TLS after its handshake, l7/tls_handshake.h): parses requests (http::RequestParser), routes
// each by Host and path, picks a backend, forwards the request over a pooled or new upstream
// connection with the forwarding headers, streams bodies both ways, and answers errors itself
// (400-class from the parser, 403 refused by the ACL, 502 bad upstream, 503 no backend, 504
// timeout). Requests on one connection are handled one at a time, in order (pipelined ones wait
// in the input buffer).
// [worker] only; owned by the worker's HttpSessionList, destroyed through defer_delete.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "balance/host_mask.h"
#include "http/request_parser.h"
#include "http/response_parser.h"
#include "http/serialize.h"
#include "l7/context.h"
#include "l7/forwarding.h"
#include "l7/gzip.h"
#include "l7/http_listener.h"
#include "net/address.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "net/stream.h"

namespace fulcrum::l7 {

class HttpSession final : public net::Deferred,
                          public net::IntrusiveLink<HttpSession>,
                          private UpstreamOwner {
 public:
  // What the client side brings besides its bytes.
  struct ClientInfo {
    bool tls = false;              // X-Forwarded-Proto: https
    std::string cert_subject;      // a verified client certificate's subject (mutual TLS)
    bool registered = false;       // the stream's fd is already in the loop (after a handshake)
    int64_t head_deadline_ms = 0;  // when the first request head is due; 0: idle_timeout from now
    // The listener's ACL refused the client (at accept): its first request is answered with 403
    // and the connection closes (nothing reaches a backend).
    bool refused = false;
    // The socket is corked (TlsHandshake): the first flush of a response uncorks it.
    bool corked = false;
  };
  HttpSession(HttpContext& ctx, std::shared_ptr<HttpListenerRuntime> listener,
              std::unique_ptr<net::Stream> client, const net::SocketAddress& peer,
              const net::SocketAddress& local);
  ~HttpSession() override;

  void start(ClientInfo info);
  // Finish the request in flight (if any) and close; close at once when idle.
  void drain();
  // Close now (RST to the client when `reset`).
  void close(bool reset);

  // After a configuration change (Worker::apply_drain_deadlines): when the listener is gone, or
  // the backend of the request or tunnel in flight left the configuration, the session drains at
  // now + the listener's drain_timeout (an earlier deadline stays): the response in flight ends
  // with Connection: close and the connection closes, an idle one closes, a tunnel closes. A
  // backend that is back (or the request's end) lifts its deadline.
  void apply_generation(int64_t now_ms);

  static constexpr int64_t kNoDeadline = INT64_MAX;

 private:
  enum class Phase : uint8_t {
    kIdle,        // waiting for (or reading) a request head
    kConnecting,  // request head parsed, connecting upstream
    kExchange,    // request sent/being sent, response awaited/being relayed
    kTunnel,      // after a 101: raw bytes both ways
    kClosing,     // flushing a final answer, then close
    kClosed,
  };
  struct Side final : net::IoHandler {
    HttpSession* session = nullptr;
    void on_io(uint32_t events) override;
  };

  void on_client_io(uint32_t events);
  void on_upstream_io(uint32_t events) override;
  static void on_timer(void* self);

  // Reads what the client sent into client_in_; false when the session ended.
  bool read_client();
  // Feeds client bytes to the request parser while the phase allows.
  void process_client_input();
  void on_request_head();
  bool route_and_pick();
  void connect_upstream();
  void on_upstream_connected();
  void upstream_failed(int err, const char* what);
  void send_request_bytes(std::string_view data);
  void process_upstream_input();
  void finish_exchange();
  void answer_error(uint16_t status, std::string_view detail);
  void answer_redirect(uint16_t status, std::string_view location);
  // redirect_to_https: the same host and path on https (301 for GET/HEAD, 308 otherwise).
  void answer_https_redirect(const http::RequestHead& head, uint16_t port);
  // For a request without Host (HTTP/1.0): the name the client asked for by TLS SNI when it is a
  // valid host name, else the listener address it reached ("10.0.0.5:8080", "[2001:db8::1]:443").
  std::string reached_authority() const;
  bool flush_client();
  bool flush_upstream();
  void release_upstream(bool reusable);
  void arm_timer();
  void relay_tunnel();
  void unpark();
  void finish_gzip();
  void check_parked();
  // The request in flight is answered: counts its duration once (if its head was received).
  void observe_request_done();

  HttpContext& ctx_;
  std::shared_ptr<HttpListenerRuntime> listener_;
  net::SocketAddress peer_;
  net::SocketAddress local_;
  std::string peer_ip_;
  std::unique_ptr<net::Stream> client_;
  bool client_tls_ = false;
  std::string client_cert_subject_;
  UpstreamConn* upstream_ = nullptr;  // the connection of the request in flight (the pool owns it)
  Side client_side_;
  net::Timer timer_;
  Phase phase_ = Phase::kIdle;
  bool draining_ = false;
  bool refused_ = false;         // by the ACL, at accept
  bool corked_ = false;          // TCP_CORK still on since the TLS handshake
  bool closing_corked_ = false;  // corked for the last response (kClosing)
  bool client_eof_ = false;
  bool client_more_ = false;      // the last read stopped at the buffer cap
  bool client_hangup_ = false;    // epoll reported a hangup on the client socket
  bool upstream_hangup_ = false;  // ... on the current upstream socket
  bool upstream_paused_ = false;  // upstream reading stopped because client_out_ is full

  http::RequestParser request_parser_;
  http::ResponseParser response_parser_;
  std::string client_in_;   // bytes from the client not yet consumed by the parser
  std::string client_out_;  // bytes for the client not yet written
  std::string upstream_in_;
  std::string upstream_out_;
  size_t client_in_used_ = 0;  // consumed prefix of client_in_
  size_t upstream_in_used_ = 0;

  // The request in flight.
  std::shared_ptr<HttpListenerState> state_;  // the generation it was routed in
  size_t target_ = 0;
  uint32_t backend_ = UINT32_MAX;
  balance::HostMask tried_;
  ForwardEdits edits_;  // the current request's; a member so its buffers serve every request
  uint32_t attempts_ = 0;
  http::Method method_ = http::Method::kGet;
  uint8_t client_minor_ = 1;
  bool client_keep_alive_ = true;
  bool upgrade_requested_ = false;
  http::Framing request_framing_ = http::Framing::kNone;
  http::Framing response_framing_ = http::Framing::kNone;
  std::string request_head_;  // serialised, kept until the response head (for a retry)
  bool request_body_done_ = true;
  bool request_sent_any_ = false;  // bytes of this request reached an upstream socket
  bool response_started_ = false;  // bytes of the response reached client_out_
  bool response_done_ = false;
  bool upstream_reused_ = false;  // the connection came from the pool
  bool keep_client_ = true;
  int64_t request_deadline_ms_ = 0;
  int64_t last_activity_ms_ = 0;  // last upstream byte, once the response started
  bool force_new_connection_ = false;
  uint32_t sticky_backend_ = UINT32_MAX;  // the backend the request's sticky cookie names
  // Access log of the request in flight (filled only when the listener logs).
  void log_request(uint16_t status);
  bool logging_ = false;
  bool timing_ = false;           // request_start_ns_ belongs to a request not yet answered
  int64_t request_start_ns_ = 0;  // its head was received (monotonic)
  int64_t upstream_sent_ns_ = 0;  // its head started going to the backend; 0: not yet
  int64_t response_head_ns_ = 0;
  uint64_t bytes_in_ = 0;   // request bytes read from the client
  uint64_t bytes_out_ = 0;  // response bytes queued for the client
  std::string log_method_, log_host_, log_path_, log_request_id_, log_backend_;
  std::string accept_encoding_;        // the request's, when the listener compresses
  std::unique_ptr<GzipEncoder> gzip_;  // compressing the response in flight
  std::string gzip_out_;
  // A clean keep-alive connection kept between this client's requests (the pool owns it).
  UpstreamConn* parked_ = nullptr;
  int64_t idle_deadline_ms_ = 0;
  // Drain deadlines of configuration changes (kNoDeadline: none): the listener's removal, and
  // the backend of the request in flight leaving (lifted when the request ends).
  int64_t listener_drain_ms_ = kNoDeadline;
  int64_t backend_drain_ms_ = kNoDeadline;
  int64_t drain_at() const { return std::min(listener_drain_ms_, backend_drain_ms_); }
  void drain_deadline_passed();
};

}  // namespace fulcrum::l7
