#include "base/id_map.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace fulcrum::base {
namespace {

TEST(IdMap, InsertFindTakeInAnyOrder) {
  IdMap<int32_t, std::string> m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.find(1), nullptr);
  m[5] = "five";
  m[1] = "one";  // before the back: a real insert
  m[9] = "nine";
  m[3] = "three";
  ASSERT_EQ(m.size(), 4u);
  ASSERT_NE(m.find(3), nullptr);
  EXPECT_EQ(*m.find(3), "three");
  EXPECT_EQ(m.find(4), nullptr);
  EXPECT_EQ(m.find(10), nullptr);
  std::string ids;
  for (const auto& [id, value] : m) ids += std::to_string(id) + ",";
  EXPECT_EQ(ids, "1,3,5,9,");  // id order
  EXPECT_EQ(m.take(5), "five");
  EXPECT_EQ(m.take(5), "");  // absent: value-initialized
  EXPECT_FALSE(m.erase(5));
  EXPECT_TRUE(m.erase(9));
  EXPECT_EQ(m.size(), 2u);
  m[3] += "!";  // operator[] on a present id does not insert
  EXPECT_EQ(*m.find(3), "three!");
  EXPECT_EQ(m.size(), 2u);
}

// The same operations on IdMap and std::map agree, whatever the order of the ids.
TEST(IdMap, AgreesWithStdMap) {
  std::mt19937 rng(7);
  IdMap<int32_t, int> m;
  std::map<int32_t, int> ref;
  for (int step = 0; step < 20000; ++step) {
    // Mostly increasing ids, as HTTP/2 streams open; sometimes an old one.
    int32_t id = (rng() % 4 == 0)
                     ? static_cast<int32_t>(rng() % 200)
                     : static_cast<int32_t>(static_cast<uint32_t>(step / 50) + rng() % 8);
    switch (rng() % 3) {
      case 0:
        m[id] = step;
        ref[id] = step;
        break;
      case 1: {
        auto it = ref.find(id);
        int expected = it == ref.end() ? 0 : it->second;
        if (it != ref.end()) ref.erase(it);
        ASSERT_EQ(m.take(id), expected);
        break;
      }
      default: {
        auto it = ref.find(id);
        const int* got = m.find(id);
        ASSERT_EQ(got != nullptr, it != ref.end());
        if (got) {
          ASSERT_EQ(*got, it->second);
        }
      }
    }
    ASSERT_EQ(m.size(), ref.size());
  }
  auto it = ref.begin();
  for (const auto& [id, value] : m) {
    ASSERT_EQ(id, it->first);
    ASSERT_EQ(value, it->second);
    ++it;
  }
}

TEST(Spares, KeepsAtMostTheLimitAndHandsThemBack) {
  Spares<std::string> spares(2);
  std::unique_ptr<std::string> a = spares.take();  // none kept: a new one
  ASSERT_NE(a, nullptr);
  *a = "kept";
  std::string* raw = a.get();
  spares.give(std::move(a));
  spares.give(std::make_unique<std::string>("b"));
  spares.give(std::make_unique<std::string>("c"));  // over the limit: freed
  spares.give(nullptr);                             // ignored
  EXPECT_EQ(spares.size(), 2u);
  EXPECT_EQ(*spares.take(), "b");  // last in, first out
  std::unique_ptr<std::string> again = spares.take();
  EXPECT_EQ(again.get(), raw);  // the same object, as its last user left it
  EXPECT_EQ(*again, "kept");
  EXPECT_EQ(spares.size(), 0u);
}

TEST(ClearBounded, KeepsSmallBuffersAndFreesLargeOnes) {
  std::string small(100, 'x');
  const size_t small_capacity = small.capacity();
  clear_bounded(&small, 1024);
  EXPECT_TRUE(small.empty());
  EXPECT_EQ(small.capacity(), small_capacity);
  std::string large(100000, 'x');
  clear_bounded(&large, 1024);
  EXPECT_TRUE(large.empty());
  EXPECT_LE(large.capacity(), 1024u);
}

}  // namespace
}  // namespace fulcrum::base
