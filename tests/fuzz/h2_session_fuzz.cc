// Fuzz target: H2ServerSession over arbitrary client bytes (the connection preface is prepended,
// so the frame layer is reached). The handler answers every request it sees (a response with a
// small body, from the queue of the codec) and passes body bytes on at once, as Http2Session
// does. Aborts when:
//  - the handler sees a request that breaks what the codec promises: an empty :method or
//    :path (CONNECT aside), no authority, an uppercase or pseudo field name among the regular
//    fields, CR/LF/NUL in a value, a connection-specific field, a TE other than "trailers";
//  - data, an end or a close arrives for a stream the handler was never told about, or after
//    its close; a stream is closed twice;
//  - more request body bytes arrive than the request's content-length.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "http/h2_session.h"

namespace {

using fulcrum::http::H2Handler;
using fulcrum::http::H2Limits;
using fulcrum::http::H2Request;
using fulcrum::http::H2ServerSession;
using fulcrum::http::Header;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Stream {
  H2Request request;
  uint64_t body = 0;
  bool ended = false;
};

class Handler final : public H2Handler {
 public:
  H2ServerSession* session = nullptr;
  std::map<int32_t, Stream> open;
  std::vector<int32_t> to_answer;

  void on_h2_request(int32_t id, H2Request& r) override {
    check(open.find(id) == open.end());
    check(!r.method.empty() && !r.authority.empty());
    check(r.method == "CONNECT" || !r.path.empty());
    for (const auto& [name, value] : r.fields) {
      check(!name.empty() && name[0] != ':');
      for (char c : name) check(!(c >= 'A' && c <= 'Z'));
      for (char c : value) check(c != '\r' && c != '\n' && c != '\0');
      check(name != "connection" && name != "keep-alive" && name != "proxy-connection" &&
            name != "transfer-encoding" && name != "upgrade" && name != "host");
      if (name == "te") check(value == "trailers");
    }
    open[id].request = r;
    to_answer.push_back(id);
  }
  void on_h2_data(int32_t id, std::string_view data) override {
    auto it = open.find(id);
    check(it != open.end() && !it->second.ended);
    it->second.body += data.size();
    if (it->second.request.content_length) {
      check(it->second.body <= *it->second.request.content_length);
    }
    session->consumed(id, data.size());
  }
  void on_h2_request_end(int32_t id) override {
    auto it = open.find(id);
    check(it != open.end() && !it->second.ended);
    it->second.ended = true;
  }
  void on_h2_stream_closed(int32_t id, uint32_t) override { check(open.erase(id) == 1); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Handler handler;
  H2Limits limits;
  limits.max_header_list_bytes = 4096;
  limits.max_resets_per_window = 16;
  H2ServerSession session(&handler, limits);
  handler.session = &session;
  std::string input = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  input.append(reinterpret_cast<const char*>(data), size);
  std::string out;
  // Two reads: the first input byte says where the cut is.
  size_t cut = size > 0 ? 24 + data[0] % (size + 1) : input.size();
  std::string_view all(input);
  for (std::string_view piece : {all.substr(0, cut), all.substr(cut)}) {
    if (!session.feed(piece)) break;
    for (int32_t id : handler.to_answer) {
      if (handler.open.count(id) == 0) continue;
      std::vector<Header> fields = {{"Content-Type", "text/plain"}};
      if (session.respond(id, 200, fields, false)) session.send_data(id, "fuzz", true);
    }
    handler.to_answer.clear();
    out.clear();
    if (!session.produce(&out, 1 << 20)) break;
  }
  return 0;
}
