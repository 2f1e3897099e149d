// RequestParser rejections: one named case per rule of TESTING.md "Rules a proxy must follow"
// and PRODUCT.md §2's limits. Every case is also fed byte by byte and cut at every offset: the
// verdict (status and reason) must not depend on how the bytes arrived.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "http/request_parser.h"
#include "unit/http/http_test_util.h"

namespace fulcrum::http {
namespace {

using testing::every_byte;
using testing::parse_requests;
using testing::RequestRun;
using namespace std::string_literals;

struct Reject {
  std::string name;
  std::string input;
  uint16_t status;
  Limits limits = Limits();
};

std::string post(std::string_view fields, std::string_view rest = "") {
  return "POST / HTTP/1.1\r\nHost: a\r\n" + std::string(fields) + "\r\n" + std::string(rest);
}
std::string chunked(std::string_view body) {
  return post("Transfer-Encoding: chunked\r\n", body);
}
std::string get_with(std::string_view fields) {
  return "GET / HTTP/1.1\r\nHost: a\r\n" + std::string(fields) + "\r\n";
}
std::string line(std::string_view request_line) {
  return std::string(request_line) + "\r\nHost: a\r\n\r\n";
}
Limits small(size_t header_bytes, size_t headers, size_t uri, uint64_t body = UINT64_MAX) {
  Limits l;
  l.max_header_bytes = header_bytes;
  l.max_headers = headers;
  l.max_uri_bytes = uri;
  l.max_body_bytes = body;
  return l;
}

std::vector<Reject> cases() {
  const Limits tiny = small(256, 5, 64, 10);
  return {
      // Ambiguous or invalid framing.
      {"ContentLengthWithTransferEncoding",
       post("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400},
      {"TransferEncodingWithContentLength",
       post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "abc"), 400},
      {"ContentLengthNotDigits", post("Content-Length: abc\r\n"), 400},
      {"ContentLengthSigned", post("Content-Length: +3\r\n", "abc"), 400},
      {"ContentLengthNegative", post("Content-Length: -1\r\n"), 400},
      {"ContentLengthList", post("Content-Length: 3, 3\r\n", "abc"), 400},
      {"ContentLengthInnerSpace", post("Content-Length: 3 3\r\n", "abc"), 400},
      {"ContentLengthRepeatedSameValue", post("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"),
       400},
      {"ContentLengthRepeatedDiffering", post("Content-Length: 3\r\ncontent-length: 4\r\n", "abcd"),
       400},
      {"ContentLengthOverflow", post("Content-Length: 18446744073709551616\r\n"), 400},
      {"ContentLengthEmpty", post("Content-Length:\r\n"), 400},
      {"TransferEncodingNotChunked", post("Transfer-Encoding: gzip\r\n", "abc"), 400},
      {"TransferEncodingChunkedNotFinal", post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
       400},
      {"TransferEncodingChunkedNotFinalAcrossFields",
       post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "0\r\n\r\n"), 400},
      {"TransferEncodingChunkedTwice", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"),
       400},
      {"TransferEncodingChunkedWithParameters",
       post("Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"), 400},
      {"TransferEncodingEmpty", post("Transfer-Encoding:\r\n"), 400},
      {"TransferEncodingInHttp10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"TransferEncodingUnsupportedCodingBeforeChunked",
       post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501},

      // Chunk framing.
      {"ChunkSizeNotHex", chunked("zz\r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeHexPrefix", chunked("0x5\r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeNegative", chunked("-5\r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeLeadingSpace", chunked(" 5\r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeTrailingSpace", chunked("5 \r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeOverflow", chunked("fffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeMissing", chunked("\r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeBareLf", chunked("5\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkSizeBareCr", chunked("5\rhello\r\n0\r\n\r\n"), 400},
      {"ChunkExtensionInvalid", chunked("5;a b\r\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkExtensionBareLf", chunked("5;a\nhello\r\n0\r\n\r\n"), 400},
      {"ChunkExtensionQuotedCr", chunked("5;a=\"x\ry\"\r\nhello\r\n0\r\n\r\n"), 400},
      // llhttp's loose mode takes any two bytes here; strict mode (src/http/CMakeLists.txt) not.
      {"MissingCrlfAfterChunkData", chunked("5\r\nhelloXX0\r\n\r\n"), 400},
      {"BareLfAfterChunkData", chunked("5\r\nhello\n0\r\n\r\n"), 400},
      {"ChunkDataLongerThanSize", chunked("3\r\nhello\r\n0\r\n\r\n"), 400},
      {"LastChunkBareLf", chunked("0\r\n\n"), 400},
      {"TrailerBareLf", chunked("0\r\nX: 1\n\r\n"), 400},
      {"TrailerBareCr", chunked("0\r\n\rX\r\n"), 400},
      {"TrailerObsFold", chunked("0\r\nX: 1\r\n y\r\n\r\n"), 400},
      {"TrailerSpaceBeforeColon", chunked("0\r\nX : 1\r\n\r\n"), 400},
      {"TrailerNulInValue", chunked("0\r\nX: a\0b\r\n\r\n"s), 400},

      // Line endings and field syntax in the head.
      {"RequestLineBareLf", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"FieldBareLf", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
      {"EndOfHeadBareLf", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
      {"LeadingEmptyLineBareLf", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"RequestLineBareCr", line("GET /\r HTTP/1.1"), 400},
      {"FieldBareCr", get_with("X: a\rb\r\n"), 400},
      {"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"TabBeforeColon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400},
      {"EmptyFieldName", get_with(": a\r\n"), 400},
      {"FieldWithoutColon", get_with("X-Novalue\r\n"), 400},
      {"InvalidFieldNameChar", get_with("X(a): b\r\n"), 400},
      {"ObsFoldSpace", get_with("X: a\r\n b\r\n"), 400},
      {"ObsFoldTab", get_with("X: a\r\n\tb\r\n"), 400},
      {"ObsFoldFirstField", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
      {"NulInValue", get_with("X: a\0b\r\n"s), 400},
      {"NulInName", get_with("X\0: b\r\n"s), 400},
      {"ControlCharInValue", get_with("X: a\x01z\r\n"), 400},
      {"DelInValue", get_with("X: a\x7fz\r\n"), 400},

      // Host.
      {"MissingHost", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400},
      {"MissingHostWithAbsoluteForm", "GET http://a/ HTTP/1.1\r\n\r\n", 400},
      {"DuplicateHostSameValue", get_with("Host: a\r\n"), 400},
      {"DuplicateHostDiffering", get_with("host: b\r\n"), 400},
      {"HostWithSpace", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"HostWithPath", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"HostWithUserinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},

      // Method and target.
      {"MethodInvalidChar", line("G@T / HTTP/1.1"), 400},
      {"MethodWithSlash", line("GE/T / HTTP/1.1"), 400},
      {"MethodUnknown", line("FOO / HTTP/1.1"), 501},
      {"MethodLowercase", line("get / HTTP/1.1"), 501},
      {"MethodConnect", line("CONNECT example.com:443 HTTP/1.1"), 501},
      {"TargetControlChar", line("GET /a\x01z HTTP/1.1"), 400},
      {"TargetDel", line("GET /a\x7fz HTTP/1.1"), 400},
      {"TargetNonAscii", line("GET /caf\xc3\xa9 HTTP/1.1"), 400},
      {"TargetTab", line("GET /a\tb HTTP/1.1"), 400},
      {"TargetRelative", line("GET index.html HTTP/1.1"), 400},
      {"TargetAsteriskOutsideOptions", line("GET * HTTP/1.1"), 400},
      {"TargetAuthorityFormOutsideConnect", line("GET example.com:80 HTTP/1.1"), 400},
      {"TargetAbsoluteWithUserinfo", line("GET http://u:p@a/ HTTP/1.1"), 400},
      {"TargetAbsoluteEmptyAuthority", line("GET http:///x HTTP/1.1"), 400},
      {"TargetAbsoluteOtherScheme", line("GET ftp://a/x HTTP/1.1"), 400},
      {"RequestLineDoubleSpace", line("GET  / HTTP/1.1"), 400},
      {"RequestLineLeadingSpace", line(" GET / HTTP/1.1"), 400},
      {"RequestLineTrailingSpace", line("GET / HTTP/1.1 "), 400},
      {"RequestLineWithoutVersion", "GET /\r\n\r\n", 400},
      {"VersionLowercase", line("GET / http/1.1"), 400},
      {"VersionTwoDigitMinor", line("GET / HTTP/1.10"), 400},
      {"VersionMalformed", line("GET / HTTP/1"), 400},

      // Versions other than 1.0 and 1.1: 505.
      {"Version09", line("GET / HTTP/0.9"), 505},
      {"Version12", line("GET / HTTP/1.2"), 505},
      {"Version20", line("GET / HTTP/2.0"), 505},
      {"Version30", line("GET / HTTP/3.0"), 505},
      {"Http2Preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},

      // Limits (small ones here so that every split can be tried; defaults in
      // HttpRequestLimitsTest).
      {"UriOverLimit", line("GET /" + std::string(64, 'u') + " HTTP/1.1"), 414, tiny},
      {"UriOverLimitWithoutLineEnd", "GET /" + std::string(200, 'u'), 414, tiny},
      {"GarbageOverRequestLineLimit", std::string(200, 'A'), 400, tiny},
      {"HeadOverLimit", get_with("X: " + std::string(240, 'v') + "\r\n"), 431, tiny},
      {"HeadOverLimitWithoutEnd", "GET / HTTP/1.1\r\nX: " + std::string(300, 'v'), 431, tiny},
      {"TooManyFields", get_with("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n"), 431, tiny},
      {"TrailersOverLimit", chunked("1\r\na\r\n0\r\nX: " + std::string(300, 't') + "\r\n\r\n"), 431,
       tiny},
      {"TooManyTrailers", chunked("0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n"), 431,
       tiny},
      {"BodyOverLimitContentLength", post("Content-Length: 11\r\n", "0123456789a"), 413, tiny},
      {"BodyOverLimitChunked", chunked("6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n"), 413, tiny},
  };
}

// gtest prints a failing case by its name, not its bytes.
void PrintTo(const Reject& c, std::ostream* os) {
  *os << c.name;
}

class HttpRequestRejectTest : public ::testing::TestWithParam<Reject> {};

TEST_P(HttpRequestRejectTest, RejectsWithStatusWhateverTheSplit) {
  const Reject& c = GetParam();
  const RequestRun whole = parse_requests(c.input, {}, c.limits);
  ASSERT_TRUE(whole.error) << "accepted: " << c.name;
  EXPECT_EQ(whole.status, c.status) << whole.reason;
  EXPECT_TRUE(whole.messages.empty());
  EXPECT_EQ(parse_requests(c.input, every_byte(c.input), c.limits), whole) << "byte by byte";
  for (size_t cut = 0; cut <= c.input.size(); ++cut) {
    ASSERT_EQ(parse_requests(c.input, {cut}, c.limits), whole) << "cut at " << cut;
  }
}

TEST_P(HttpRequestRejectTest, ErrorIsTerminal) {
  const Reject& c = GetParam();
  RequestParser parser(c.limits);
  std::string_view data = c.input;
  size_t consumed = 0;
  Step step = Step::kNeedMore;
  do {
    step = parser.feed(data, &consumed);
    ASSERT_LE(consumed, data.size());
    data.remove_prefix(consumed);
  } while (step != Step::kError && !(step == Step::kNeedMore && data.empty()));
  ASSERT_EQ(step, Step::kError);
  const ParseError error = parser.error();
  EXPECT_EQ(parser.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed), Step::kError);
  EXPECT_EQ(parser.feed("", &consumed), Step::kError);
  EXPECT_EQ(parser.finish(), Step::kError);
  EXPECT_EQ(parser.error().status, error.status);
  EXPECT_EQ(parser.error().reason, error.reason);
}

INSTANTIATE_TEST_SUITE_P(Rules, HttpRequestRejectTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Reject>& param_info) {
                           return param_info.param.name;
                         });

// Both sides of every limit at PRODUCT.md's defaults.
TEST(HttpRequestLimitsTest, UriAtAndOverDefaultLimit) {
  const Limits limits;
  ASSERT_EQ(limits.max_uri_bytes, 16u * 1024);
  const std::string at = "/" + std::string(limits.max_uri_bytes - 1, 'u');
  RequestRun run = parse_requests(line("GET " + at + " HTTP/1.1"));
  ASSERT_FALSE(run.error) << run.reason;
  EXPECT_EQ(run.messages.at(0).target.size(), limits.max_uri_bytes);
  run = parse_requests(line("GET " + at + "u HTTP/1.1"));
  EXPECT_EQ(run.status, 414);
  const std::string huge = "GET /" + std::string(1024 * 1024, 'u');
  run = parse_requests(huge);
  EXPECT_EQ(run.status, 414);
  EXPECT_EQ(parse_requests(huge, every_byte(huge)), run);
}

TEST(HttpRequestLimitsTest, HeadAtAndOverDefaultLimit) {
  const Limits limits;
  ASSERT_EQ(limits.max_header_bytes, 64u * 1024);
  const std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  const std::string at =
      start + std::string(limits.max_header_bytes - start.size() - end.size(), 'p') + end;
  ASSERT_EQ(at.size(), limits.max_header_bytes);
  RequestRun run = parse_requests(at);
  ASSERT_FALSE(run.error) << run.reason;
  EXPECT_EQ(parse_requests(at, every_byte(at)), run);
  const std::string over =
      start + std::string(limits.max_header_bytes - start.size() - end.size() + 1, 'p') + end;
  run = parse_requests(over);
  EXPECT_EQ(run.status, 431);
  EXPECT_EQ(parse_requests(over, every_byte(over)), run);
  // Empty lines before the request line count too (they cannot be sent forever).
  std::string crlfs;
  for (size_t i = 0; i < limits.max_header_bytes / 2 + 1; ++i) crlfs += "\r\n";
  run = parse_requests(crlfs);
  EXPECT_EQ(run.status, 431);
}

TEST(HttpRequestLimitsTest, FieldCountAtAndOverDefaultLimit) {
  const Limits limits;
  ASSERT_EQ(limits.max_headers, 100u);
  std::string fields;
  for (size_t i = 1; i < limits.max_headers; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  RequestRun run = parse_requests(get_with(fields));  // Host + 99 = 100 fields
  ASSERT_FALSE(run.error) << run.reason;
  EXPECT_EQ(run.messages.at(0).headers.size(), 100u);
  run = parse_requests(get_with(fields + "X-101: v\r\n"));
  EXPECT_EQ(run.status, 431);
}

TEST(HttpRequestLimitsTest, BodyAtLimit) {
  const Limits limits = small(1024, 10, 64, 10);
  RequestRun run = parse_requests(post("Content-Length: 10\r\n", "0123456789"), {}, limits);
  ASSERT_FALSE(run.error) << run.reason;
  run = parse_requests(chunked("6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n"), {}, limits);
  ASSERT_FALSE(run.error) << run.reason;
  EXPECT_EQ(run.messages.at(0).body, "0123456789");
}

}  // namespace
}  // namespace fulcrum::http
