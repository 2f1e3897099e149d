#include "net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace fulcrum::net {
namespace {

SocketAddress addr(const char* text) {
  return *SocketAddress::parse(text);
}

TEST(ProxyProtocol, V1Tcp4) {
  char out[kProxyHeaderMax];
  size_t n = encode_proxy_v1(addr("192.0.2.10:51234"), addr("198.51.100.1:80"), out);
  EXPECT_EQ(std::string(out, n), "PROXY TCP4 192.0.2.10 198.51.100.1 51234 80\r\n");
}

TEST(ProxyProtocol, V1MixedFamiliesUseTcp6) {
  char out[kProxyHeaderMax];
  size_t n = encode_proxy_v1(addr("192.0.2.10:1"), addr("[2001:db8::1]:443"), out);
  EXPECT_EQ(std::string(out, n), "PROXY TCP6 ::ffff:192.0.2.10 2001:db8::1 1 443\r\n");
}

TEST(ProxyProtocol, V2Tcp4Bytes) {
  char out[kProxyHeaderMax];
  size_t n =
      encode_proxy_v2(addr("10.0.0.1:4660"), addr("10.0.0.2:80"), ProxyTransport::kStream, out);
  const unsigned char want[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C, 10,   0,    0,    1,
                                10,   0,    0,    2,    0x12, 0x34, 0x00, 0x50};
  ASSERT_EQ(n, sizeof want);
  EXPECT_EQ(std::string(out, n), std::string(reinterpret_cast<const char*>(want), sizeof want));
}

TEST(ProxyProtocol, V2Udp6Length) {
  char out[kProxyHeaderMax];
  size_t n = encode_proxy_v2(addr("[2001:db8::5]:53"), addr("[2001:db8::1]:53"),
                             ProxyTransport::kDatagram, out);
  EXPECT_EQ(n, 52u);
  EXPECT_EQ(static_cast<unsigned char>(out[13]), 0x22);
  EXPECT_EQ(static_cast<unsigned char>(out[15]), 36);
}

}  // namespace
}  // namespace fulcrum::net
