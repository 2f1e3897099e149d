#include "net/proxy_protocol.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace fulcrum::net {
namespace {

// 16 bytes of IPv6 for any address (IPv4 becomes ::ffff:a.b.c.d).
void as_v6(const SocketAddress& a, unsigned char out[16]) {
  std::string_view ip = a.ip_bytes();
  if (ip.size() == 16) {
    std::memcpy(out, ip.data(), 16);
    return;
  }
  std::memset(out, 0, 10);
  out[10] = out[11] = 0xff;
  std::memcpy(out + 12, ip.data(), 4);
}

std::string v6_text(const SocketAddress& a) {
  unsigned char raw[16];
  as_v6(a, raw);
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, raw, text, sizeof text);
  return text;
}

}  // namespace

size_t encode_proxy_v1(const SocketAddress& client, const SocketAddress& local, char* out) {
  int n;
  if (client.is_v4() && local.is_v4()) {
    n = std::snprintf(out, kProxyHeaderMax, "PROXY TCP4 %s %s %u %u\r\n",
                      client.ip_string().c_str(), local.ip_string().c_str(), client.port(),
                      local.port());
  } else {
    n = std::snprintf(out, kProxyHeaderMax, "PROXY TCP6 %s %s %u %u\r\n", v6_text(client).c_str(),
                      v6_text(local).c_str(), client.port(), local.port());
  }
  return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t encode_proxy_v2(const SocketAddress& client, const SocketAddress& local,
                       ProxyTransport transport, char* out) {
  static constexpr unsigned char kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
  auto* p = reinterpret_cast<unsigned char*>(out);
  std::memcpy(p, kSignature, 12);
  p[12] = 0x21;  // version 2, command PROXY
  unsigned char proto = transport == ProxyTransport::kStream ? 0x1 : 0x2;
  size_t body;
  if (client.is_v4() && local.is_v4()) {
    p[13] = static_cast<unsigned char>(0x10 | proto);  // AF_INET
    std::memcpy(p + 16, client.ip_bytes().data(), 4);
    std::memcpy(p + 20, local.ip_bytes().data(), 4);
    uint16_t sp = htons(client.port()), dp = htons(local.port());
    std::memcpy(p + 24, &sp, 2);
    std::memcpy(p + 26, &dp, 2);
    body = 12;
  } else {
    p[13] = static_cast<unsigned char>(0x20 | proto);  // AF_INET6
    as_v6(client, p + 16);
    as_v6(local, p + 32);
    uint16_t sp = htons(client.port()), dp = htons(local.port());
    std::memcpy(p + 48, &sp, 2);
    std::memcpy(p + 50, &dp, 2);
    body = 36;
  }
  p[14] = static_cast<unsigned char>(body >> 8);
  p[15] = static_cast<unsigned char>(body & 0xff);
  return 16 + body;
}

}  // namespace fulcrum::net
