// H2ServerSession driven with hand-made client frames (HPACK literals without indexing, no
// Huffman), its output parsed back into frames.
#include "http/h2_session.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fulcrum::http {
namespace {

constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kGoaway = 0x7,
                  kWindowUpdate = 0x8, kContinuation = 0x9;
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4, kAck = 0x1;

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f += static_cast<char>((payload.size() >> 16) & 0xff);
  f += static_cast<char>((payload.size() >> 8) & 0xff);
  f += static_cast<char>(payload.size() & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>((stream >> shift) & 0xff);
  return f + payload;
}

void hpack_length(size_t n, std::string* out) {  // 7-bit prefix integer, Huffman bit clear
  if (n < 127) {
    *out += static_cast<char>(n);
    return;
  }
  *out += static_cast<char>(127);
  n -= 127;
  while (n >= 128) {
    *out += static_cast<char>((n & 0x7f) | 0x80);
    n >>= 7;
  }
  *out += static_cast<char>(n);
}

std::string hpack(const Fields& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    out += '\0';  // literal field line without indexing, literal name
    hpack_length(name.size(), &out);
    out += name;
    hpack_length(value.size(), &out);
    out += value;
  }
  return out;
}

Fields get(std::string path = "/", std::string authority = "a.example") {
  return {{":method", "GET"}, {":scheme", "https"}, {":authority", authority}, {":path", path}};
}

struct Frame {
  uint8_t type;
  uint8_t flags;
  uint32_t stream;
  std::string payload;
  uint32_t u32(size_t at) const {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(payload[at + i]);
    return v;
  }
};

std::vector<Frame> parse(const std::string& bytes) {
  std::vector<Frame> frames;
  size_t at = 0;
  while (at + 9 <= bytes.size()) {
    auto b = [&](size_t i) { return static_cast<uint8_t>(bytes[at + i]); };
    size_t length = static_cast<size_t>(b(0)) << 16 | static_cast<size_t>(b(1)) << 8 | b(2);
    uint32_t stream = (static_cast<uint32_t>(b(5)) << 24 | static_cast<uint32_t>(b(6)) << 16 |
                       static_cast<uint32_t>(b(7)) << 8 | b(8)) &
                      0x7fffffff;
    frames.push_back({b(3), b(4), stream, bytes.substr(at + 9, length)});
    at += 9 + length;
  }
  return frames;
}

class Recorder final : public H2Handler {
 public:
  void on_h2_request(int32_t stream, H2Request& request) override {
    requests.emplace_back(stream, std::move(request));
  }
  void on_h2_data(int32_t stream, std::string_view data) override { body[stream].append(data); }
  void on_h2_request_end(int32_t stream) override { ended.push_back(stream); }
  void on_h2_stream_closed(int32_t stream, uint32_t error_code) override {
    closed.emplace_back(stream, error_code);
  }
  void on_h2_malformed() override { ++malformed; }
  int malformed = 0;

  std::vector<std::pair<int32_t, H2Request>> requests;
  std::map<int32_t, std::string> body;
  std::vector<int32_t> ended;
  std::vector<std::pair<int32_t, uint32_t>> closed;
};

class H2SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The preface, our (empty) SETTINGS, and the ACK of the server's.
    ASSERT_TRUE(session.feed("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(kSettings, 0, 0, "")));
    out();
    ASSERT_TRUE(session.feed(frame(kSettings, kAck, 0, "")));
  }

  std::vector<Frame> out() {
    std::string bytes;
    EXPECT_TRUE(session.produce(&bytes, 1 << 20));
    return parse(bytes);
  }

  static const Frame* find(const std::vector<Frame>& frames, uint8_t type, uint32_t stream) {
    for (const Frame& f : frames) {
      if (f.type == type && f.stream == stream) return &f;
    }
    return nullptr;
  }

  static bool has(const std::vector<Frame>& frames, uint8_t type, uint32_t stream) {
    return find(frames, type, stream) != nullptr;
  }

  // Sends `fields` on `stream`; returns the RST_STREAM error code the server answers, or -1.
  int64_t reset_code(uint32_t stream, const Fields& fields, uint8_t flags = kEndStream) {
    // HEADERS and CONTINUATION frames of at most 16 KiB (SETTINGS_MAX_FRAME_SIZE).
    std::string block = hpack(fields);
    std::string bytes;
    size_t at = 0;
    do {
      std::string piece = block.substr(at, 16384);
      at += piece.size();
      uint8_t f = at >= block.size() ? kEndHeaders : 0;
      bytes += bytes.empty() ? frame(kHeaders, flags | f, stream, piece)
                             : frame(kContinuation, f, stream, piece);
    } while (at < block.size());
    EXPECT_TRUE(session.feed(bytes));
    auto frames = out();
    for (const Frame& fr : frames) {
      if (fr.type == kGoaway) ADD_FAILURE() << "GOAWAY " << fr.u32(4);
    }
    const Frame* rst = find(frames, kRstStream, stream);
    return rst ? static_cast<int64_t>(rst->u32(0)) : -1;
  }

  Recorder rec;
  H2ServerSession session{&rec, H2Limits{}};
};

TEST_F(H2SessionTest, ValidRequestIsReportedAndAnswered) {
  Fields f = get("/x?y=1");
  f.push_back({"cookie", "a=1"});
  f.push_back({"accept", "*/*"});
  f.push_back({"cookie", "b=2"});
  EXPECT_EQ(reset_code(1, f), -1);
  ASSERT_EQ(rec.requests.size(), 1u);
  const H2Request& r = rec.requests[0].second;
  EXPECT_EQ(rec.requests[0].first, 1);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.scheme, "https");
  EXPECT_EQ(r.authority, "a.example");
  EXPECT_EQ(r.path, "/x?y=1");
  EXPECT_TRUE(r.end_stream);
  Fields want = {{"cookie", "a=1; b=2"}, {"accept", "*/*"}};
  EXPECT_EQ(r.fields, want);
  EXPECT_EQ(rec.ended, std::vector<int32_t>{1});

  std::vector<Header> fields = {{"Content-Type", "text/plain"}};
  ASSERT_TRUE(session.respond(1, 200, fields, false));
  session.send_data(1, "hello", true);
  auto frames = out();
  ASSERT_NE(find(frames, kHeaders, 1), nullptr);
  const Frame* data = find(frames, kData, 1);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->payload, "hello");
  EXPECT_TRUE(data->flags & kEndStream);
  ASSERT_EQ(rec.closed.size(), 1u);
  EXPECT_EQ(rec.closed[0], std::make_pair(1, 0u));
}

TEST_F(H2SessionTest, HostAlonePassesAsAuthorityAndMustMatchIt) {
  Fields f = {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {"host", "h.example"}};
  EXPECT_EQ(reset_code(1, f), -1);
  ASSERT_EQ(rec.requests.size(), 1u);
  EXPECT_EQ(rec.requests[0].second.authority, "h.example");
  EXPECT_TRUE(rec.requests[0].second.fields.empty());
  Fields same = get();
  same.push_back({"host", "A.Example"});
  EXPECT_EQ(reset_code(3, same), -1);
  Fields other = get();
  other.push_back({"host", "b.example"});
  EXPECT_EQ(reset_code(5, other), kH2ProtocolError);
  Fields none = {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}};
  EXPECT_EQ(reset_code(7, none), kH2ProtocolError);
  EXPECT_EQ(rec.requests.size(), 2u);  // the refused ones never reach the handler
}

// Per-stream records are reused for later streams: a refused request (never handed over) must
// leave none of its fields, Host or flags behind.
TEST_F(H2SessionTest, RefusedRequestsLeaveNothingToLaterStreams) {
  for (uint32_t stream = 1; stream < 200; stream += 4) {
    Fields refused = get("/refused");
    refused.push_back({"x-left-over", "1"});
    refused.push_back({"cookie", "stale=1"});
    refused.push_back({"content-length", "5"});
    refused.push_back({"host", "other.example"});  // not :authority: refused
    ASSERT_EQ(reset_code(stream, refused), kH2ProtocolError) << stream;
    Fields good = get("/good");
    good.push_back({"cookie", "fresh=1"});
    ASSERT_EQ(reset_code(stream + 2, good), -1) << stream;  // a Host left over would refuse it
    ASSERT_FALSE(rec.requests.empty());
    const H2Request& r = rec.requests.back().second;
    EXPECT_EQ(rec.requests.back().first, static_cast<int32_t>(stream + 2));
    EXPECT_EQ(r.path, "/good");
    Fields want = {{"cookie", "fresh=1"}};
    EXPECT_EQ(r.fields, want);
    EXPECT_FALSE(r.content_length.has_value());
    EXPECT_TRUE(r.end_stream);
    std::vector<Header> none;
    ASSERT_TRUE(session.respond(static_cast<int32_t>(stream + 2), 204, none, true));
    out();
  }
  EXPECT_EQ(rec.requests.size(), 50u);
}

TEST_F(H2SessionTest, MalformedRequestsAreStreamErrors) {
  std::vector<Fields> bad;
  for (const char* name :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}) {
    Fields f = get();
    f.push_back({name, "x"});
    bad.push_back(f);
  }
  Fields te = get();
  te.push_back({"te", "gzip"});
  bad.push_back(te);
  Fields upper = get();
  upper.push_back({"X-Upper", "1"});
  bad.push_back(upper);
  for (const char* value : {"a\r\nb", "a\nb", "a\rb"}) {
    Fields f = get();
    f.push_back({"x-v", value});
    bad.push_back(f);
  }
  Fields nul = get();
  nul.push_back({"x-v", std::string("a\0b", 3)});
  bad.push_back(nul);
  Fields no_path = {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}};
  bad.push_back(no_path);
  Fields no_method = {{":scheme", "https"}, {":authority", "a"}, {":path", "/"}};
  bad.push_back(no_method);
  Fields late_pseudo = {
      {"x-a", "1"}, {":method", "GET"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}};
  bad.push_back(late_pseudo);
  Fields big = get();
  for (int i = 0; i < 70; ++i) big.push_back({"x-" + std::to_string(i), std::string(1000, 'v')});
  bad.push_back(big);
  uint32_t stream = 1;
  for (const Fields& f : bad) {
    EXPECT_EQ(reset_code(stream, f), kH2ProtocolError) << "stream " << stream;
    stream += 2;
  }
  EXPECT_TRUE(rec.requests.empty());
  EXPECT_EQ(rec.malformed, static_cast<int>(bad.size()));
  EXPECT_EQ(reset_code(stream, get()), -1);  // the connection goes on
  EXPECT_EQ(rec.requests.size(), 1u);
}

TEST_F(H2SessionTest, ContentLengthMustMatchTheData) {
  Fields f = get();
  f[0].second = "POST";
  f.push_back({"content-length", "10"});
  EXPECT_EQ(reset_code(1, f, 0), -1);
  ASSERT_EQ(rec.requests.size(), 1u);
  EXPECT_EQ(rec.requests[0].second.content_length, 10u);
  ASSERT_TRUE(session.feed(frame(kData, kEndStream, 1, "12345")));
  auto frames = out();
  const Frame* rst = find(frames, kRstStream, 1);
  ASSERT_NE(rst, nullptr);
  EXPECT_EQ(rst->u32(0), kH2ProtocolError);
  EXPECT_TRUE(rec.ended.empty());  // never a complete request
  ASSERT_EQ(rec.closed.size(), 1u);
}

TEST_F(H2SessionTest, RequestBodyWindowIsGivenBackWhenConsumed) {
  Fields f = get();
  f[0].second = "POST";
  EXPECT_EQ(reset_code(1, f, 0), -1);
  std::string piece(16384, 'x');
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(session.feed(frame(kData, 0, 1, piece)));
  EXPECT_EQ(rec.body[1].size(), 9u * 16384);
  EXPECT_FALSE(has(out(), kWindowUpdate, 1));  // not passed on yet
  session.consumed(1, 9 * 16384);
  EXPECT_TRUE(has(out(), kWindowUpdate, 1));
}

TEST_F(H2SessionTest, ResponseBodyWaitsForTheClientWindow) {
  std::string settings = {0, 4, 0, 0, 0, 100};  // SETTINGS_INITIAL_WINDOW_SIZE = 100
  ASSERT_TRUE(session.feed(frame(kSettings, 0, 0, settings)));
  EXPECT_EQ(reset_code(1, get()), -1);
  ASSERT_TRUE(session.respond(1, 200, {}, false));
  session.send_data(1, std::string(1000, 'b'), true);
  auto frames = out();
  size_t sent = 0;
  for (const Frame& fr : frames) {
    if (fr.type == kData && fr.stream == 1) sent += fr.payload.size();
  }
  EXPECT_EQ(sent, 100u);
  EXPECT_EQ(session.queued(1), 900u);
  std::string increment = {0, 0, 0x03, static_cast<char>(0x84)};  // +900
  ASSERT_TRUE(session.feed(frame(kWindowUpdate, 0, 1, increment)));
  sent = 0;
  for (const Frame& fr : out()) {
    if (fr.type == kData && fr.stream == 1) sent += fr.payload.size();
  }
  EXPECT_EQ(sent, 900u);
  EXPECT_EQ(session.queued(1), 0u);
}

TEST_F(H2SessionTest, StreamsOverTheConcurrencyLimitEndTheConnection) {
  // 100 open streams are fine; a 101st, after SETTINGS_MAX_CONCURRENT_STREAMS = 100 was
  // acknowledged, is refused by nghttp2 with a connection error (RFC 9113 §5.1.2).
  for (uint32_t i = 0; i < 100; ++i) EXPECT_EQ(reset_code(1 + 2 * i, get()), -1);
  EXPECT_EQ(rec.requests.size(), 100u);
  ASSERT_TRUE(session.feed(frame(kHeaders, kEndStream | kEndHeaders, 201, hpack(get()))));
  auto frames = out();
  const Frame* goaway = find(frames, kGoaway, 0);
  ASSERT_NE(goaway, nullptr);
  EXPECT_EQ(goaway->u32(4), kH2ProtocolError);
  EXPECT_EQ(rec.requests.size(), 100u);
}

TEST_F(H2SessionTest, RapidResetEndsTheConnectionWithEnhanceYourCalm) {
  std::string burst;
  std::string cancel = {0, 0, 0, 0x8};
  for (uint32_t i = 0; i < 202; ++i) {
    burst += frame(kHeaders, kEndStream | kEndHeaders, 1 + 2 * i, hpack(get()));
    burst += frame(kRstStream, 0, 1 + 2 * i, cancel);
  }
  session.feed(burst);
  auto frames = out();
  const Frame* goaway = find(frames, kGoaway, 0);
  ASSERT_NE(goaway, nullptr);
  EXPECT_EQ(goaway->u32(4), kH2EnhanceYourCalm);
  EXPECT_FALSE(session.wants_read());
}

TEST_F(H2SessionTest, ShutdownSendsGoawayAndLetsOpenStreamsFinish) {
  EXPECT_EQ(reset_code(1, get()), -1);
  session.shutdown();
  auto frames = out();
  const Frame* goaway = find(frames, kGoaway, 0);
  ASSERT_NE(goaway, nullptr);
  EXPECT_EQ(goaway->u32(0), 1u);  // the last stream processed
  EXPECT_EQ(goaway->u32(4), kH2NoError);
  ASSERT_TRUE(session.respond(1, 204, {}, true));
  EXPECT_TRUE(has(out(), kHeaders, 1));
  EXPECT_FALSE(session.wants_read() && session.open_streams() > 0);
}

}  // namespace
}  // namespace fulcrum::http
