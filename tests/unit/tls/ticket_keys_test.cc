#include "tls/ticket_keys.h"

#include <gtest/gtest.h>

namespace fulcrum::tls {
namespace {

TEST(TicketKeysTest, RotationKeepsThePreviousKeyForDecryptionOnly) {
  TicketKeys keys;
  TicketKey first = keys.current();
  ASSERT_EQ(keys.find(first.name.data()), &keys.current());
  keys.rotate();
  TicketKey second = keys.current();
  EXPECT_NE(first.name, second.name);
  EXPECT_NE(first.aes_key, second.aes_key);
  const TicketKey* old = keys.find(first.name.data());
  ASSERT_NE(old, nullptr);  // tickets of the previous hour still resume
  EXPECT_EQ(old->aes_key, first.aes_key);
  EXPECT_EQ(old->hmac_key, first.hmac_key);
  keys.rotate();
  EXPECT_EQ(keys.find(first.name.data()), nullptr);  // two rotations old: a full handshake
  EXPECT_NE(keys.find(second.name.data()), nullptr);
  std::array<uint8_t, 16> unknown{};
  EXPECT_EQ(keys.find(unknown.data()), nullptr);
}

TEST(TicketKeysTest, EachProcessStartsWithItsOwnKeys) {
  TicketKeys a, b;
  EXPECT_NE(a.current().name, b.current().name);
  EXPECT_NE(a.current().hmac_key, b.current().hmac_key);
}

}  // namespace
}  // namespace fulcrum::tls
