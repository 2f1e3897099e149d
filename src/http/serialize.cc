#include "http/serialize.h"

#include <array>
#include <charconv>
#include <optional>

#include "http/syntax.h"

namespace fulcrum::http {
namespace {

constexpr std::array<std::string_view, 7> kHopByHop = {
    "connection", "keep-alive",        "proxy-connection", "te",
    "trailer",    "transfer-encoding", "upgrade"};

void append_number(uint64_t value, int base, std::string* out) {
  std::array<char, 24> digits;
  const auto result = std::to_chars(digits.data(), digits.data() + digits.size(), value, base);
  out->append(digits.data(), result.ptr);
}

void append_field(std::string_view name, std::string_view value, std::string* out) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

bool listed(std::span<const std::string_view> names, std::string_view name) {
  for (std::string_view n : names) {
    if (detail::iequals(n, name)) return true;
  }
  return false;
}

// Received fields that are written as they came: not hop-by-hop, not rewritten here, not named
// by Connection, not removed by the caller.
void append_forwarded_fields(std::span<const Header> headers,
                             std::span<const std::string_view> connection_tokens,
                             const HeaderEdits& edits, bool drop_host, std::string* out) {
  for (const Header& h : headers) {
    if (is_hop_by_hop(h.name) || detail::iequals(h.name, "content-length")) continue;
    if (drop_host && detail::iequals(h.name, "host")) continue;
    if (listed(connection_tokens, h.name) || listed(edits.remove, h.name)) continue;
    append_field(h.name, h.value, out);
  }
}

void append_framing(std::optional<uint64_t> content_length, bool chunked, std::string* out) {
  if (content_length.has_value()) {
    out->append("Content-Length: ");
    append_number(*content_length, 10, out);
    out->append("\r\n");
  }
  if (chunked) out->append("Transfer-Encoding: chunked\r\n");
}

void append_added(const HeaderEdits& edits, std::string* out) {
  for (const Header& h : edits.add) append_field(h.name, h.value, out);
}

}  // namespace

bool is_hop_by_hop(std::string_view name) {
  for (std::string_view h : kHopByHop) {
    if (detail::iequals(h, name)) return true;
  }
  return false;
}

Framing request_framing(const RequestHead& head) {
  if (head.chunked) return Framing::kChunked;
  if (head.content_length.value_or(0) > 0) return Framing::kLength;
  return Framing::kNone;
}

void write_request_head(const RequestHead& head, const HeaderEdits& edits, std::string* out) {
  out->append(head.method_text);
  out->push_back(' ');
  out->append(head.path);
  out->append(" HTTP/1.1\r\n");
  append_field("Host", head.host.empty() ? edits.default_host : head.host, out);
  append_forwarded_fields(head.headers, head.connection_tokens, edits, /*drop_host=*/true, out);
  append_framing(head.content_length, head.chunked, out);
  if (head.upgrade) {
    out->append("Connection: upgrade\r\n");
    append_field("Upgrade", head.upgrade_protocol, out);
  }
  append_added(edits, out);
  out->append("\r\n");
}

Framing response_framing(const ResponseHead& head, uint8_t client_version_minor) {
  if (head.no_body) return Framing::kNone;
  if (head.content_length.has_value()) return Framing::kLength;
  return client_version_minor >= 1 ? Framing::kChunked : Framing::kUntilClose;
}

bool response_keeps_client(const ResponseHead& head, const ResponseWriteOptions& options) {
  return options.keep_alive && !head.upgrade &&
         response_framing(head, options.client_version_minor) != Framing::kUntilClose;
}

void write_response_head(const ResponseHead& head, const ResponseWriteOptions& options,
                         std::string* out) {
  const Framing framing = response_framing(head, options.client_version_minor);
  out->append("HTTP/1.1 ");
  append_number(head.status, 10, out);
  out->push_back(' ');
  out->append(head.reason);
  out->append("\r\n");
  append_forwarded_fields(head.headers, head.connection_tokens, options.edits,
                          /*drop_host=*/false, out);
  append_framing(head.content_length, framing == Framing::kChunked, out);
  if (head.upgrade) {
    out->append("Connection: upgrade\r\n");
    append_field("Upgrade", head.upgrade_protocol, out);
  } else if (!head.informational()) {
    if (!response_keeps_client(head, options)) {
      out->append("Connection: close\r\n");
    } else if (options.client_version_minor == 0) {
      out->append("Connection: keep-alive\r\n");
    }
  }
  append_added(options.edits, out);
  out->append("\r\n");
}

void write_chunk_header(uint64_t size, std::string* out) {
  append_number(size, 16, out);
  out->append("\r\n");
}

void write_chunk(std::string_view payload, std::string* out) {
  if (payload.empty()) return;
  write_chunk_header(payload.size(), out);
  out->append(payload);
  out->append(kChunkEnd);
}

void write_last_chunk(std::span<const Header> trailers, std::string* out) {
  out->append("0\r\n");
  for (const Header& h : trailers) {
    if (is_hop_by_hop(h.name) || detail::iequals(h.name, "content-length") ||
        detail::iequals(h.name, "host")) {
      continue;
    }
    append_field(h.name, h.value, out);
  }
  out->append("\r\n");
}

void write_error_response(uint16_t status, std::string* out) {
  out->append("HTTP/1.1 ");
  append_number(status, 10, out);
  out->push_back(' ');
  out->append(reason_phrase(status));
  out->append("\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

}  // namespace fulcrum::http
