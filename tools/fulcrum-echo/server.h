// fulcrum-echo: a single-threaded, epoll-driven TCP/HTTP/UDP test backend.
//
// Every socket is non-blocking and registered level-triggered with one epoll instance. Each
// connection owns one fixed 64 KiB buffer (plus a second one for HTTP `/bytes` bodies), and the
// server stops reading from a peer whenever that buffer is full, so memory stays bounded no matter
// how fast peers send or how slowly they read.
#pragma once

#include <llhttp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "stream.h"

namespace echo {

struct Options {
  std::string name;
  std::vector<std::string> tcp;
  std::vector<std::string> http;
  std::vector<std::string> udp;
  std::string ready_file;
  bool quiet = false;
};

// Runs the server until SIGTERM/SIGINT. Returns the process exit code.
int RunServer(const Options& options);

// Parses "A.B.C.D:PORT" or "[IPv6]:PORT". Returns false (and sets *error) on failure.
bool ParseAddress(const std::string& text, sockaddr_storage* addr, socklen_t* len,
                  std::string* error);
std::string FormatAddress(const sockaddr_storage& addr);

using Clock = std::chrono::steady_clock;

// A fixed-capacity byte buffer: the live bytes are [start, end).
struct Buffer {
  static constexpr size_t kCapacity = 64 * 1024;

  std::unique_ptr<char[]> data = std::make_unique_for_overwrite<char[]>(kCapacity);
  size_t start = 0;
  size_t end = 0;

  size_t size() const { return end - start; }
  bool empty() const { return start == end; }
  bool full() const { return size() == kCapacity; }
  char* begin_ptr() { return data.get() + start; }
  // Moves the live bytes to the front if that makes room at the tail.
  void Compact();
  void Consume(size_t n);
  void Clear() { start = end = 0; }
  void Assign(const std::string& text);
};

// The TCP protocol's per-connection states.
enum class TcpState : uint8_t {
  kCommand,  // reading the first line
  kEcho,     // echoing every byte
  kSink,     // counting and checksumming until EOF
  kSource,   // sending the deterministic stream
  kStall,    // doing nothing until the peer closes
  kFlush,    // writing the rest of `buf`, then finishing
};

// TCP per-command connection counters, in the order they are reported.
enum TcpCommand : uint8_t {
  kCmdName,
  kCmdEcho,
  kCmdSink,
  kCmdSource,
  kCmdStall,
  kCmdClose,
  kCmdReset,
  kCmdError,
  kCmdCount
};
inline constexpr std::array<const char*, kCmdCount> kCommandNames = {
    "NAME", "ECHO", "SINK", "SOURCE", "STALL", "CLOSE", "RESET", "ERR"};

class Server;
struct Conn;

// HTTP/1.1 per-connection state. The parser is paused after each complete request, so requests
// on one connection are answered strictly in order (pipelining) and at most one is in progress.
struct HttpState {
  llhttp_t parser;
  Server* server = nullptr;
  Conn* conn = nullptr;

  // The request being parsed.
  bool in_message = false;
  bool message_ready = false;  // on_message_complete fired; not yet answered
  bool head_too_large = false;
  bool field_open = false;  // the last header callback was for a field name
  size_t head_bytes = 0;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  bool keep_body = false;  // /echo: collect the body (up to kMaxEchoBody)
  bool body_too_large = false;
  std::string body;
  bool sink_body = false;  // /sink: count and checksum the body
  uint64_t body_count = 0;
  unsigned long body_crc = 0;
  bool keep_alive = true;
  bool upgrade = false;
  bool is_head = false;
  bool http10 = false;
  std::string request_line;  // "GET /path HTTP/1.1"

  // Output, in order: `out[out_off..]`, then `gen_left` bytes of the deterministic stream.
  std::string out;
  size_t out_off = 0;
  uint64_t gen_left = 0;  // stream bytes not yet generated into gen_buf
  ByteStream gen;
  std::unique_ptr<char[]> gen_buf;
  size_t gen_start = 0;
  size_t gen_end = 0;

  enum class Wait : uint8_t { kNone, kDelay, kStall };
  Wait wait = Wait::kNone;
  std::string delayed;         // the response sent when the /delay timer fires
  bool delayed_close = false;  // ... and whether the connection closes after it
  bool close_after = false;    // finish the connection once the output is flushed
  bool reset_after = false;    // reset the connection once the output is flushed

  bool output_pending() const {
    return out_off < out.size() || gen_left > 0 || gen_start < gen_end;
  }
  size_t out_pending_bytes() const { return out.size() - out_off; }
};

struct Conn {
  int fd = -1;
  uint32_t serial = 0;
  bool http = false;
  uint32_t events = 0;  // current epoll interest
  bool read_eof = false;
  bool finishing = false;  // SHUT_WR sent; discarding input until EOF or the linger timeout
  uint64_t timer_token = 0;
  Buffer buf;

  // TCP
  TcpState state = TcpState::kCommand;
  uint64_t source_left = 0;  // stream bytes not yet generated into `buf`
  ByteStream source;
  uint64_t sink_count = 0;
  unsigned long sink_crc = 0;

  // HTTP
  std::unique_ptr<HttpState> hs;
};

struct Listener {
  enum class Kind : uint8_t { kTcp, kHttp, kUdp, kSignal };
  Kind kind;
  int fd = -1;
  std::string label;  // "tcp 127.0.0.1:9001"
  bool paused = false;
};

class Server {
 public:
  explicit Server(Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int Run();

  // Used by the llhttp callbacks.
  const std::string& name() const { return opt_.name; }

 private:
  friend struct HttpCallbacks;

  struct Timer {
    Clock::time_point when;
    int fd;
    uint32_t serial;  // 0: a listener to resume
    uint64_t token;
    bool operator>(const Timer& o) const { return when > o.when; }
  };

  bool Setup();
  bool AddListener(Listener::Kind kind, const std::string& address);
  void WriteReadyLines();
  void Log(const char* fmt, ...) __attribute__((format(printf, 2, 3)));

  void OnListener(Listener& l);
  void OnUdp(Listener& l);
  void OnConnEvent(Conn& c, uint32_t events);
  void UpdateInterest(Conn& c, uint32_t want);
  void CloseConn(Conn& c, bool reset = false);
  void SetTimer(Conn& c, std::chrono::milliseconds delay);
  void RunTimers();
  int NextTimeoutMs() const;

  // Shared helpers. Each `bool` function returns false if it closed (and freed) the connection.
  enum class Io : uint8_t { kData, kEof, kAgain, kError };
  Io Recv(Conn& c, char* dst, size_t cap, size_t* got);
  Io Send(Conn& c, const char* src, size_t len, size_t* sent, bool more = false);
  bool StartFinish(Conn& c);  // SHUT_WR, then close on EOF or after the linger timeout
  bool PumpFinishing(Conn& c);
  void DrainAndClose(Conn& c);  // read what is queued (so close sends FIN, not RST), then close

  // TCP protocol (tcp.cpp).
  bool TcpPump(Conn& c);
  bool TcpCommandLine(Conn& c, const std::string& line);
  uint32_t TcpInterest(const Conn& c) const;

  // HTTP protocol (http.cpp).
  void HttpInit(Conn& c);
  bool HttpPump(Conn& c);
  bool HttpParse(Conn& c);
  bool HttpWrite(Conn& c, bool* progress);
  bool HttpAnswer(Conn& c);
  // Appends a status line and headers (Content-Length: `length`) to `dst`.
  void HttpAppendHead(const HttpState& h, std::string* dst, int status, uint64_t length,
                      bool closing, const char* content_type = "text/plain") const;
  void HttpOnTimer(Conn& c);
  uint32_t HttpInterest(const Conn& c) const;
  std::string StatsJson() const;

  Options opt_;
  int epfd_ = -1;
  int sigfd_ = -1;
  bool stop_ = false;
  uint32_t next_serial_ = 1;
  std::vector<Listener> listeners_;
  std::vector<int> listener_by_fd_;  // fd -> index into listeners_, or -1
  std::vector<std::unique_ptr<Conn>> conns_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::unique_ptr<char[]> scratch_;  // discarded input and UDP datagrams

  // Counters.
  std::array<uint64_t, kCmdCount> tcp_commands_{};
  uint64_t tcp_connections_ = 0;
  uint64_t http_connections_ = 0;
  uint64_t http_requests_ = 0;
  uint64_t udp_datagrams_ = 0;
  uint64_t active_ = 0;
  bool failing_ = false;
};

}  // namespace echo
