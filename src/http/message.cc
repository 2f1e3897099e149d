#include "http/message.h"

#include <array>
#include <string>

namespace fulcrum::http {
namespace {

constexpr std::array<std::string_view, 9> kMethodNames = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"};
static_assert(static_cast<size_t>(Method::kOther) == kMethodNames.size());

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
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace fulcrum::http
