#include "net/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace fulcrum::net {

std::optional<SocketAddress> SocketAddress::from_ip_port(std::string_view ip, uint16_t port) {
  if (ip.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char text[INET6_ADDRSTRLEN] = {};
  std::memcpy(text, ip.data(), ip.size());
  SocketAddress out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage_);
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.len_ = sizeof(sockaddr_in);
    return out;
  }
  out.storage_ = {};
  if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.len_ = sizeof(sockaddr_in6);
    return out;
  }
  return std::nullopt;
}

std::optional<SocketAddress> SocketAddress::parse(std::string_view host_port) {
  std::string_view host, port_text;
  if (!host_port.empty() && host_port.front() == '[') {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return std::nullopt;
    }
    host = host_port.substr(1, close - 1);
    port_text = host_port.substr(close + 2);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = host_port.substr(0, colon);
    port_text = host_port.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // bare IPv6 needs []
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty() ||
      value > 65535) {
    return std::nullopt;
  }
  return from_ip_port(host, static_cast<uint16_t>(value));
}

SocketAddress SocketAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
  SocketAddress out;
  if (len > sizeof(out.storage_)) len = sizeof(out.storage_);
  std::memcpy(&out.storage_, sa, len);
  out.len_ = len;
  return out;
}

uint16_t SocketAddress::port() const {
  if (is_v4()) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string_view SocketAddress::ip_bytes() const {
  if (is_v4()) {
    const auto* a = &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr;
    return {reinterpret_cast<const char*>(a), 4};
  }
  if (family() == AF_INET6) {
    const auto* a = &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr;
    return {reinterpret_cast<const char*>(a), 16};
  }
  return {};
}

std::string SocketAddress::ip_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text,
              sizeof text);
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, text,
              sizeof text);
  }
  return text;
}

std::string SocketAddress::to_string() const {
  if (family() == AF_INET6) return "[" + ip_string() + "]:" + std::to_string(port());
  return ip_string() + ":" + std::to_string(port());
}

bool SocketAddress::operator==(const SocketAddress& o) const {
  return len_ == o.len_ && std::memcmp(&storage_, &o.storage_, len_) == 0;
}

SocketAddress SocketAddress::with_port(uint16_t port) const {
  SocketAddress out = *this;
  if (is_v4()) {
    reinterpret_cast<sockaddr_in*>(&out.storage_)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&out.storage_)->sin6_port = htons(port);
  }
  return out;
}

}  // namespace fulcrum::net
