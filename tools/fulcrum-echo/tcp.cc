// The line-command TCP protocol: NAME, ECHO, SINK, SOURCE, STALL, CLOSE, RESET.
#include <sys/epoll.h>
#include <zlib.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "server.h"

namespace echo {

namespace {

constexpr size_t kMaxCommandLine = 256;  // including the '\n'
constexpr int kPumpRounds = 16;          // fairness: at most this many read/write rounds per event
const std::string kUnknown = "ERR unknown command\n";

bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  *out = v;
  return true;
}

unsigned long Crc(unsigned long crc, const char* data, size_t len) {
  while (len > 0) {
    auto chunk = static_cast<uInt>(len > (1u << 30) ? (1u << 30) : len);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    len -= chunk;
  }
  return crc;
}

}  // namespace

uint32_t Server::TcpInterest(const Conn& c) const {
  switch (c.state) {
    case TcpState::kCommand:
    case TcpState::kSink:
      return EPOLLIN;
    case TcpState::kEcho: {
      uint32_t ev = 0;
      if (!c.read_eof && !c.buf.full()) ev |= EPOLLIN;
      if (!c.buf.empty()) ev |= EPOLLOUT;
      return ev;
    }
    case TcpState::kSource:
      return (c.read_eof ? 0u : static_cast<uint32_t>(EPOLLIN)) | EPOLLOUT;
    case TcpState::kStall:
      return EPOLLRDHUP;
    case TcpState::kFlush:
      return EPOLLOUT;
  }
  return EPOLLIN;
}

// Handles the command line (without its '\n'). Returns false if the connection was closed.
bool Server::TcpCommandLine(Conn& c, const std::string& raw) {
  std::string line = raw;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::istringstream words(line);
  std::string cmd;
  words >> cmd;
  std::vector<std::string> args;
  for (std::string w; words >> w;) args.push_back(w);

  if (cmd == "NAME" && args.empty()) {
    ++tcp_commands_[kCmdName];
    // Put "<name>\n" in front of whatever followed the command line; then echo.
    std::string reply = opt_.name + "\n";
    c.buf.Compact();
    std::memmove(c.buf.data.get() + reply.size(), c.buf.data.get(), c.buf.end);
    std::memcpy(c.buf.data.get(), reply.data(), reply.size());
    c.buf.end += reply.size();
    c.state = TcpState::kEcho;
    return true;
  }
  if (cmd == "ECHO" && args.empty()) {
    ++tcp_commands_[kCmdEcho];
    c.state = TcpState::kEcho;
    return true;
  }
  if (cmd == "SINK" && args.empty()) {
    ++tcp_commands_[kCmdSink];
    c.sink_crc = crc32(0, nullptr, 0);
    c.sink_count = c.buf.size();
    c.sink_crc = Crc(c.sink_crc, c.buf.begin_ptr(), c.buf.size());
    c.buf.Clear();
    c.state = TcpState::kSink;
    return true;
  }
  uint64_t n = 0;
  uint64_t seed = 1;
  if (cmd == "SOURCE" && (args.size() == 1 || args.size() == 2) && ParseU64(args[0], &n) &&
      (args.size() == 1 || ParseU64(args[1], &seed))) {
    ++tcp_commands_[kCmdSource];
    c.buf.Clear();  // anything the client sent after the command is ignored
    c.source = ByteStream(seed);
    c.source_left = n;
    c.state = TcpState::kSource;
    return true;
  }
  if (cmd == "STALL" && args.empty()) {
    ++tcp_commands_[kCmdStall];
    c.state = TcpState::kStall;
    return true;
  }
  if (cmd == "CLOSE" && args.empty()) {
    ++tcp_commands_[kCmdClose];
    DrainAndClose(c);
    return false;
  }
  if (cmd == "RESET" && args.empty()) {
    ++tcp_commands_[kCmdReset];
    CloseConn(c, /*reset=*/true);
    return false;
  }
  ++tcp_commands_[kCmdError];
  c.buf.Assign(kUnknown);
  c.state = TcpState::kFlush;
  return true;
}

bool Server::TcpPump(Conn& c) {
  for (int round = 0; round < kPumpRounds; ++round) {
    bool progress = false;
    size_t got = 0;
    switch (c.state) {
      case TcpState::kCommand: {
        // Read no further than the longest command line, so that what follows it always fits
        // behind the NAME reply.
        Io io = c.read_eof
                    ? Io::kEof
                    : Recv(c, c.buf.data.get() + c.buf.end, kMaxCommandLine - c.buf.end, &got);
        if (io == Io::kError) {
          CloseConn(c);
          return false;
        }
        if (io == Io::kData) c.buf.end += got;
        size_t scan = c.buf.size() < kMaxCommandLine ? c.buf.size() : kMaxCommandLine;
        const char* nl = static_cast<const char*>(std::memchr(c.buf.begin_ptr(), '\n', scan));
        if (nl != nullptr) {
          std::string line(static_cast<const char*>(c.buf.begin_ptr()), nl);
          c.buf.Consume(static_cast<size_t>(nl - c.buf.begin_ptr()) + 1);
          if (!TcpCommandLine(c, line)) return false;
          progress = true;
        } else if (c.buf.size() >= kMaxCommandLine || io == Io::kEof) {
          if (io == Io::kEof && c.buf.empty()) {  // connected and left without a word
            CloseConn(c);
            return false;
          }
          ++tcp_commands_[kCmdError];
          c.buf.Assign(kUnknown);
          c.state = TcpState::kFlush;
          progress = true;
        } else {
          progress = io == Io::kData;
        }
        break;
      }

      case TcpState::kEcho: {
        if (!c.read_eof) {
          if (c.buf.end == Buffer::kCapacity) c.buf.Compact();
          if (c.buf.end < Buffer::kCapacity) {
            Io io = Recv(c, c.buf.data.get() + c.buf.end, Buffer::kCapacity - c.buf.end, &got);
            if (io == Io::kError) {
              CloseConn(c);
              return false;
            }
            if (io == Io::kData) c.buf.end += got;
            if (io == Io::kData || io == Io::kEof) progress = true;
          }
        }
        if (!c.buf.empty()) {
          size_t sent = 0;
          Io io = Send(c, c.buf.begin_ptr(), c.buf.size(), &sent);
          if (io == Io::kError) {
            CloseConn(c);
            return false;
          }
          if (io == Io::kData && sent > 0) {
            c.buf.Consume(sent);
            progress = true;
          }
        }
        if (c.read_eof && c.buf.empty()) return StartFinish(c);  // closes: the peer is done
        break;
      }

      case TcpState::kSink: {
        Io io = Recv(c, c.buf.data.get(), Buffer::kCapacity, &got);
        if (io == Io::kError) {
          CloseConn(c);
          return false;
        }
        if (io == Io::kData) {
          c.sink_count += got;
          c.sink_crc = Crc(c.sink_crc, c.buf.data.get(), got);
          progress = true;
        } else if (io == Io::kEof) {
          char reply[64];
          std::snprintf(reply, sizeof reply, "%" PRIu64 " %08lx\n", c.sink_count,
                        c.sink_crc & 0xffffffffUL);
          c.buf.Assign(reply);
          c.state = TcpState::kFlush;
          progress = true;
        }
        break;
      }

      case TcpState::kSource: {
        if (!c.read_eof) {  // discard whatever the client sends meanwhile
          Io io = Recv(c, scratch_.get(), Buffer::kCapacity, &got);
          if (io == Io::kError) {
            CloseConn(c);
            return false;
          }
          if (io == Io::kData || io == Io::kEof) progress = true;
        }
        if (c.buf.empty() && c.source_left > 0) {
          // Always generate whole buffers so the stream stays word-aligned across refills.
          c.source.Fill(c.buf.data.get(), Buffer::kCapacity / 8);
          c.buf.start = 0;
          c.buf.end = c.source_left < Buffer::kCapacity ? static_cast<size_t>(c.source_left)
                                                        : Buffer::kCapacity;
          c.source_left -= c.buf.end;
        }
        if (!c.buf.empty()) {
          size_t sent = 0;
          Io io = Send(c, c.buf.begin_ptr(), c.buf.size(), &sent);
          if (io == Io::kError) {
            CloseConn(c);
            return false;
          }
          if (io == Io::kData && sent > 0) {
            c.buf.Consume(sent);
            progress = true;
          }
        }
        if (c.buf.empty() && c.source_left == 0) return StartFinish(c);
        break;
      }

      case TcpState::kStall:
        return true;

      case TcpState::kFlush: {
        if (!c.buf.empty()) {
          size_t sent = 0;
          Io io = Send(c, c.buf.begin_ptr(), c.buf.size(), &sent);
          if (io == Io::kError) {
            CloseConn(c);
            return false;
          }
          if (io == Io::kData && sent > 0) {
            c.buf.Consume(sent);
            progress = true;
          }
        }
        if (c.buf.empty()) return StartFinish(c);
        break;
      }
    }
    if (!progress) break;
  }
  return true;
}

}  // namespace echo
