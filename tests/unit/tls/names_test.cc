#include "tls/names.h"

#include <gtest/gtest.h>

namespace fulcrum::tls {
namespace {

TEST(NameTableTest, ExactThenOneLabelWildcardWithoutCase) {
  NameTable t;
  t.add("a.example.com", 1);
  t.add("*.example.com", 2);
  t.add("B.Example.Org", 3);
  EXPECT_EQ(t.find("a.example.com"), 1u);
  EXPECT_EQ(t.find("A.EXAMPLE.COM"), 1u);
  EXPECT_EQ(t.find("x.example.com"), 2u);
  EXPECT_EQ(t.find("b.example.org"), 3u);
  EXPECT_EQ(t.find("example.com"), std::nullopt);      // a wildcard needs one more label
  EXPECT_EQ(t.find("x.y.example.com"), std::nullopt);  // ... exactly one
  EXPECT_EQ(t.find(""), std::nullopt);
  EXPECT_EQ(t.find(".example.com"), std::nullopt);
  EXPECT_EQ(t.find(std::string(300, 'a')), std::nullopt);
}

TEST(NameTableTest, FirstCertificateWinsAName) {
  NameTable t;
  t.add("a.example.com", 0);
  t.add("a.example.com", 1);
  t.add("*.example.com", 2);
  t.add("*.EXAMPLE.com", 3);
  EXPECT_EQ(t.find("a.example.com"), 0u);
  EXPECT_EQ(t.find("b.example.com"), 2u);
}

}  // namespace
}  // namespace fulcrum::tls
