// Socket addresses: IPv4 and IPv6 literals with a port. Pure value type. [any]
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fulcrum::net {

class SocketAddress {
 public:
  SocketAddress() = default;
  // "1.2.3.4" or "::1" plus a port. nullopt when `ip` is not an address literal.
  static std::optional<SocketAddress> from_ip_port(std::string_view ip, uint16_t port);
  // "1.2.3.4:80" or "[::1]:80".
  static std::optional<SocketAddress> parse(std::string_view host_port);
  static SocketAddress from_sockaddr(const sockaddr* sa, socklen_t len);

  int family() const { return storage_.ss_family; }
  bool is_v4() const { return family() == AF_INET; }
  uint16_t port() const;
  // The same IP with another port.
  SocketAddress with_port(uint16_t port) const;
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t len() const { return len_; }
  // The address bytes (4 or 16) without the port: what source-IP hashing uses.
  std::string_view ip_bytes() const;
  std::string ip_string() const;
  std::string to_string() const;  // "1.2.3.4:80", "[::1]:80"
  bool operator==(const SocketAddress& o) const;

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace fulcrum::net
