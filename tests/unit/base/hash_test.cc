#include "base/hash.h"

#include <gtest/gtest.h>

#include <set>

namespace fulcrum::base {
namespace {

// Golden values: these decide which backend a client lands on under consistent hashing.
// Changing them moves every sticky client; do it only on purpose, with a release note.
TEST(Hash, GoldenOutputs) {
  EXPECT_EQ(hash_string(""), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(hash_string("10.0.0.1"), 0xdd05a4c3c4a08ddeULL);
  EXPECT_EQ(hash_string("abcdefghijk", 7), 0x3d66322ede9881d7ULL);
  EXPECT_EQ(hash_string("a"), hash_string("a"));
  EXPECT_NE(hash_string("a"), hash_string(std::string_view("a\0", 2)));
  EXPECT_NE(hash_string("abc", 1), hash_string("abc", 2));
}

TEST(Hash, SpreadsSequentialKeys) {
  std::set<uint64_t> low_bits;
  for (uint32_t i = 0; i < 4096; ++i) low_bits.insert(hash_bytes(&i, sizeof i) & 0xfff);
  // A good hash fills about 63 % of 4096 buckets with 4096 keys.
  EXPECT_GT(low_bits.size(), 2400u);
}

}  // namespace
}  // namespace fulcrum::base
