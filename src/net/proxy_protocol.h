// PROXY protocol headers (v1 text, v2 binary) that tell a backend the real client address.
// Pure encoders. Spec: haproxy.org/download/2.6/doc/proxy-protocol.txt. [any]
#pragma once

#include <cstddef>

#include "net/address.h"

namespace fulcrum::net {

inline constexpr size_t kProxyHeaderMax = 108;  // v1 worst case 107 bytes; v2 TCP6 is 52

enum class ProxyTransport { kStream, kDatagram };

// Writes the header for a connection from `client` to `local` into `out` (at least
// kProxyHeaderMax bytes) and returns its length. When the families differ, IPv4 addresses are
// written as IPv4-mapped IPv6.
size_t encode_proxy_v1(const SocketAddress& client, const SocketAddress& local, char* out);
size_t encode_proxy_v2(const SocketAddress& client, const SocketAddress& local,
                       ProxyTransport transport, char* out);

}  // namespace fulcrum::net
