#include "api/tokens.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace fulcrum::api {
namespace {

class TokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fulcrum-tokens-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TokensTest, CreatesPrivateRandomTokensOnceAndReadsThemBack) {
  auto first = load_or_create_tokens(dir_, "");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->admin.size(), 64u);
  EXPECT_EQ(first->reader.size(), 64u);
  EXPECT_NE(first->admin, first->reader);
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_ + "/reader.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = load_or_create_tokens(dir_, "");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->admin, first->admin);
  EXPECT_EQ(second->reader, first->reader);
}

TEST_F(TokensTest, TokenFileOverridesTheAdminToken) {
  std::string path = dir_ + "/mine";
  std::ofstream(path) << "operator-chosen-token-123\n";
  auto t = load_or_create_tokens(dir_, path);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->admin, "operator-chosen-token-123");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/admin.token"));
}

TEST_F(TokensTest, RefusesShortOrMissingTokenFiles) {
  std::string path = dir_ + "/short";
  std::ofstream(path) << "abc\n";
  auto t = load_or_create_tokens(dir_, path);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("16–512"), std::string::npos);
  EXPECT_FALSE(load_or_create_tokens(dir_, dir_ + "/absent").ok());
}

TEST(Authorize, GrantsRolesByToken) {
  Tokens t{"a-very-secret-admin-token", "a-very-secret-reader-token", ""};
  EXPECT_EQ(authorize(t, "Bearer a-very-secret-admin-token"), Role::kAdmin);
  EXPECT_EQ(authorize(t, "bearer a-very-secret-admin-token"), Role::kAdmin);
  EXPECT_EQ(authorize(t, "Bearer a-very-secret-reader-token"), Role::kReader);
  EXPECT_EQ(authorize(t, "Bearer a-very-secret-admin-toke"), Role::kNone);
  EXPECT_EQ(authorize(t, "Bearer a-very-secret-admin-tokenX"), Role::kNone);
  EXPECT_EQ(authorize(t, "Basic a-very-secret-admin-token"), Role::kNone);
  EXPECT_EQ(authorize(t, "Bearer "), Role::kNone);
  EXPECT_EQ(authorize(t, ""), Role::kNone);
}

TEST(ConstantTimeEqual, ComparesWholeStrings) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

}  // namespace
}  // namespace fulcrum::api
