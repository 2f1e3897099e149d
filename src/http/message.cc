#include "http/message.h"

#include <array>
#include <string>

namespace fulcrum::http {
namespace {

constexpr std::array<std::string_view, 9> kMethodNames = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"};
static_assert(static_cast<size_t>(Method::kOther) == kMethodNames.size());

constexpr struct {
  uint16_t status;
  std::string_view text;
} kReasonPhrases[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

}  // namespace

Method method_from_text(std::string_view text) {
  for (size_t i = 0; i < kMethodNames.size(); ++i) {
    if (kMethodNames[i] == text) return static_cast<Method>(i);
  }
  return Method::kOther;
}

std::string_view method_name(Method method) {
  const auto i = static_cast<size_t>(method);
  return i < kMethodNames.size() ? kMethodNames[i] : std::string_view();
}

base::Error ParseError::to_error(base::ErrorSource source) const {
  base::Error error;
  error.source = source;
  error.retryable = false;
  error.message = "HTTP " + std::to_string(status) + ": " + std::string(reason);
  return error;
}

std::string_view reason_phrase(uint16_t status) {
  for (const auto& r : kReasonPhrases) {
    if (r.status == status) return r.text;
  }
  return "Unknown";
}

}  // namespace fulcrum::http
