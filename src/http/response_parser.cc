#include "http/response_parser.h"

#include "http/field_facts.h"
#include "http/syntax.h"

namespace fulcrum::http {
namespace {

// "HTTP/1.1 200 " — the reason phrase starts here.
constexpr size_t kReasonOffset = 13;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool reject(ParseError* error, std::string_view reason) {
  *error = ParseError{502, reason};
  return false;
}

}  // namespace

ResponseParser::ResponseParser(const Limits& limits)
    : MessageParser(/*is_request=*/false, limits) {}

bool ResponseParser::on_start_line(std::string_view line, ParseError* error) {
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]; a missing final SP is
  // tolerated (RFC 9112 §4 asks clients to be lenient about the reason).
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || !is_digit(line[5]) || line[6] != '.' ||
      !is_digit(line[7]) || line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) ||
      !is_digit(line[11]) || (line.size() > 12 && line[12] != ' ')) {
    return reject(error, "malformed status line");
  }
  if (line[5] != '1' || (line[7] != '0' && line[7] != '1')) {
    return reject(error, "unsupported HTTP version");
  }
  const auto status =
      static_cast<uint16_t>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  if (status < 100 || status > 599) return reject(error, "status code out of range");
  const std::string_view reason = line.size() > 12 ? line.substr(kReasonOffset) : "";
  for (char c : reason) {
    if (!detail::is_field_value_char(static_cast<unsigned char>(c))) {
      return reject(error, "invalid character in reason phrase");
    }
  }
  status_ = status;
  version_minor_ = static_cast<uint8_t>(line[7] - '0');
  reason_size_ = reason.size();
  return true;
}

bool ResponseParser::on_head(std::string_view bytes, std::span<const Header> fields,
                             detail::BodyMode* mode, uint64_t* length, ParseError* error) {
  head_ = ResponseHead{};
  head_.status = status_;
  head_.version_minor = version_minor_;
  head_.reason = reason_size_ > 0 ? bytes.substr(kReasonOffset, reason_size_) : "";
  head_.headers = fields;
  connection_tokens_.clear();

  detail::FieldFacts f;
  detail::collect_field_facts(fields, &f, &connection_tokens_);
  if (f.connection_invalid) return reject(error, "invalid Connection");
  if (!detail::check_framing(f, version_minor_, error)) {
    error->status = 502;
    return false;
  }

  if (status_ == 101) {
    if (!upgrade_requested_) return reject(error, "101 without an upgrade request");
    if (!f.connection_upgrade || !f.has_upgrade || f.upgrade.empty()) {
      return reject(error, "101 without Connection: upgrade and Upgrade");
    }
    head_.upgrade = true;
    head_.upgrade_protocol = f.upgrade;
  }
  head_.no_body =
      request_method_ == Method::kHead || status_ < 200 || status_ == 204 || status_ == 304;
  head_.chunked = f.transfer_encoding;
  if (f.length_count > 0) head_.content_length = f.content_length;
  head_.body_until_close = !head_.no_body && !f.transfer_encoding && f.length_count == 0;
  head_.keep_alive = detail::persistent(f, version_minor_) && !head_.body_until_close;
  head_.connection_tokens = connection_tokens_;

  *length = f.content_length;
  if (head_.no_body) {
    *mode = detail::BodyMode::kNone;
  } else if (f.transfer_encoding) {
    *mode = detail::BodyMode::kChunked;
  } else if (f.length_count > 0) {
    *mode = detail::BodyMode::kLength;
  } else {
    *mode = detail::BodyMode::kUntilClose;
  }
  return true;
}

}  // namespace fulcrum::http
