#include "http/request_parser.h"

#include "http/field_facts.h"
#include "http/syntax.h"

namespace fulcrum::http {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool reject(ParseError* error, uint16_t status, std::string_view reason) {
  *error = ParseError{status, reason};
  return false;
}

// "http://" or "https://", any case: the length of the prefix, else 0.
size_t scheme_prefix(std::string_view target) {
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (target.size() >= scheme.size() &&
        detail::iequals(target.substr(0, scheme.size()), scheme)) {
      return scheme.size();
    }
  }
  return 0;
}

}  // namespace

RequestParser::RequestParser(const Limits& limits) : MessageParser(/*is_request=*/true, limits) {}

bool RequestParser::on_start_line(std::string_view line, ParseError* error) {
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return reject(error, 400, "malformed request line");
  const std::string_view method = line.substr(0, sp1);
  if (!detail::is_token(method)) return reject(error, 400, "invalid method");
  const std::string_view rest = line.substr(sp1 + 1);
  const size_t sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos || sp2 == 0)
    return reject(error, 400, "malformed request line");
  const std::string_view target = rest.substr(0, sp2);
  const std::string_view version = rest.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !is_digit(version[5]) ||
      version[6] != '.' || !is_digit(version[7])) {
    return reject(error, 400, "malformed HTTP version");
  }
  if (target.size() > limits().max_uri_bytes) return reject(error, 414, "request-target too long");
  for (char c : target) {
    if (!detail::is_target_char(static_cast<unsigned char>(c))) {
      return reject(error, 400, "invalid character in request-target");
    }
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
    return reject(error, 505, "HTTP version not supported");
  }
  const Method m = method_from_text(method);
  if (m == Method::kConnect) return reject(error, 501, "CONNECT is not supported");

  // Target forms (RFC 9112 §3.2): origin-form, asterisk-form for OPTIONS, absolute-form.
  if (target.front() != '/') {
    if (target == "*") {
      if (m != Method::kOptions) return reject(error, 400, "asterisk-form outside OPTIONS");
    } else {
      const size_t prefix = scheme_prefix(target);
      if (prefix == 0) return reject(error, 400, "unsupported request-target form");
      const std::string_view after = target.substr(prefix);
      const std::string_view authority = after.substr(0, after.find_first_of("/?#"));
      if (authority.find('@') != std::string_view::npos) {
        return reject(error, 400, "userinfo in request-target");
      }
      if (!detail::is_valid_authority(authority, /*allow_empty=*/false)) {
        return reject(error, 400, "invalid authority in request-target");
      }
    }
  }
  method_size_ = sp1;
  target_offset_ = sp1 + 1;
  target_size_ = target.size();
  head_.version_minor = static_cast<uint8_t>(version[7] - '0');
  return true;
}

bool RequestParser::on_head(std::string_view bytes, std::span<const Header> fields,
                            detail::BodyMode* mode, uint64_t* length, ParseError* error) {
  const uint8_t version_minor = head_.version_minor;
  head_ = RequestHead{};
  head_.version_minor = version_minor;
  head_.method_text = bytes.substr(0, method_size_);
  head_.method = method_from_text(head_.method_text);
  head_.target = bytes.substr(target_offset_, target_size_);
  head_.headers = fields;
  connection_tokens_.clear();

  detail::FieldFacts f;
  detail::collect_field_facts(fields, &f, &connection_tokens_);
  if (f.connection_invalid) return reject(error, 400, "invalid Connection");
  if (f.host_count == 0 && version_minor == 1) return reject(error, 400, "missing Host");
  if (f.host_count > 1) return reject(error, 400, "more than one Host");
  if (!detail::is_valid_authority(f.host, /*allow_empty=*/true)) {
    return reject(error, 400, "invalid Host");
  }
  if (!detail::check_framing(f, version_minor, error)) return false;
  if (f.length_count > 0 && f.content_length > limits().max_body_bytes) {
    return reject(error, 413, "request body too large");
  }

  // Where the request goes: an absolute-form target's authority wins over Host (RFC 9112
  // §3.2.2), and its path and query become the upstream target.
  const std::string_view target = head_.target;
  if (target.front() == '/' || target == "*") {
    head_.path = target;
    head_.host = f.host;
  } else {
    const std::string_view after = target.substr(scheme_prefix(target));
    const size_t path_start = after.find_first_of("/?#");
    head_.host = after.substr(0, path_start);
    const std::string_view rest =
        path_start == std::string_view::npos ? std::string_view() : after.substr(path_start);
    if (!rest.empty() && rest.front() == '/') {
      head_.path = rest;
    } else if (!rest.empty() && rest.front() == '?') {
      path_storage_.clear();
      path_storage_.push_back('/');
      path_storage_.append(rest.data(), rest.size());
      head_.path = path_storage_;
    } else {
      head_.path = "/";
    }
  }

  head_.chunked = f.transfer_encoding;
  if (f.length_count > 0) head_.content_length = f.content_length;
  head_.keep_alive = detail::persistent(f, version_minor);
  head_.expect_continue = f.expect_continue && version_minor == 1;
  head_.upgrade = f.connection_upgrade && f.has_upgrade && !f.upgrade.empty();
  if (head_.upgrade) head_.upgrade_protocol = f.upgrade;
  head_.connection_tokens = connection_tokens_;

  *length = f.content_length;
  if (f.transfer_encoding) {
    *mode = detail::BodyMode::kChunked;
  } else if (f.length_count > 0) {
    *mode = detail::BodyMode::kLength;
  } else {
    *mode = detail::BodyMode::kNone;
  }
  return true;
}

}  // namespace fulcrum::http
