// Character classes and small field-value grammars of RFC 9110/9112 used by the parsers and
// serialisers of this module. Internal to http/. Pure. [any]
#pragma once

#include <cstdint>
#include <string_view>

namespace fulcrum::http::detail {

// tchar: the characters of a token (method, field name, transfer coding, connection option).
bool is_tchar(unsigned char c);
// A non-empty token.
bool is_token(std::string_view s);
// A byte allowed inside a field value: VCHAR, obs-text, SP or HTAB.
inline bool is_field_value_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}
// A byte allowed in a request-target: visible ASCII.
inline bool is_target_char(unsigned char c) {
  return c > 0x20 && c < 0x7f;
}

inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}
std::string_view trim_ows(std::string_view s);

// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b);

// Calls f(element) for each non-empty element of a comma-separated list (RFC 9110 §5.6.1), with
// surrounding whitespace removed. Stops early and returns false when f returns false.
template <class F>
bool for_each_list_element(std::string_view value, F&& f) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view element = trim_ows(value.substr(0, comma));
    if (!element.empty() && !f(element)) return false;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return true;
}

// Content-Length: 1*DIGIT, no sign, no list, no overflow.
bool parse_content_length(std::string_view value, uint64_t* out);

// uri-host [ ":" port ] (RFC 3986 reg-name, IPv4 or a bracketed IPv6 literal; port ≤ 5 digits).
// The empty string is valid only when `allow_empty`.
bool is_valid_authority(std::string_view authority, bool allow_empty);

}  // namespace fulcrum::http::detail
