#include "client/discovery.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace fulcrum::client {
namespace {

class Discovery : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fulcrumctl-discovery-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  DiscoveryInput input() const {
    DiscoveryInput in;
    in.data_dir = dir_;
    return in;
  }
  std::string dir_;
};

TEST_F(Discovery, DefaultsWhenNothingIsThere) {
  Discovered d = discover(input());
  EXPECT_EQ(d.server, "http://127.0.0.1:9901");
  EXPECT_EQ(d.server_source, Source::kDefault);
  EXPECT_EQ(d.token, "");
  EXPECT_EQ(d.token_source, Source::kNone);
  EXPECT_EQ(d.token_file_problem, "");
}

TEST_F(Discovery, FilesOfTheDataDirAreTrimmed) {
  write("admin.url", "http://127.0.0.1:41234\n");
  write("admin.token", "  s3cret\n");
  Discovered d = discover(input());
  EXPECT_EQ(d.server, "http://127.0.0.1:41234");
  EXPECT_EQ(d.server_source, Source::kFile);
  EXPECT_EQ(d.token, "s3cret");
  EXPECT_EQ(d.token_source, Source::kFile);
}

TEST_F(Discovery, EnvironmentBeatsFiles) {
  write("admin.url", "http://127.0.0.1:41234\n");
  write("admin.token", "from-file\n");
  DiscoveryInput in = input();
  in.server_env = "http://127.0.0.1:1";
  in.token_env = "from-env";
  Discovered d = discover(in);
  EXPECT_EQ(d.server, "http://127.0.0.1:1");
  EXPECT_EQ(d.server_source, Source::kEnv);
  EXPECT_EQ(d.token, "from-env");
  EXPECT_EQ(d.token_source, Source::kEnv);
}

TEST_F(Discovery, FlagsBeatEnvironment) {
  write("admin.url", "http://127.0.0.1:41234\n");
  DiscoveryInput in = input();
  in.server_env = "http://127.0.0.1:1";
  in.server_flag = "http://127.0.0.1:2";
  in.token_env = "from-env";
  in.token_flag = "from-flag";
  Discovered d = discover(in);
  EXPECT_EQ(d.server, "http://127.0.0.1:2");
  EXPECT_EQ(d.server_source, Source::kFlag);
  EXPECT_EQ(d.token, "from-flag");
  EXPECT_EQ(d.token_source, Source::kFlag);
}

TEST_F(Discovery, EmptyValuesCountAsNotGiven) {
  write("admin.url", "\n");  // an empty file falls through to the default too
  write("admin.token", "tok\n");
  DiscoveryInput in = input();
  in.server_flag = "";
  in.server_env = "";
  in.token_flag = "";
  in.token_env = "";
  Discovered d = discover(in);
  EXPECT_EQ(d.server_source, Source::kDefault);
  EXPECT_EQ(d.token, "tok");
  EXPECT_EQ(d.token_source, Source::kFile);
}

TEST_F(Discovery, UnreadableTokenFileIsReported) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  write("admin.token", "tok\n");
  chmod((dir_ + "/admin.token").c_str(), 0);
  Discovered d = discover(input());
  EXPECT_EQ(d.token_source, Source::kNone);
  EXPECT_NE(d.token_file_problem.find("admin.token"), std::string::npos);
}

TEST(DiscoveryText, HelpNamesEverySourceButNeverTheToken) {
  Discovered d;
  d.server = "http://127.0.0.1:9901";
  d.server_source = Source::kFile;
  d.data_dir = "/srv/fulcrum";
  d.token = "topsecret";
  std::string help = discovery_help(d);
  EXPECT_NE(help.find("/srv/fulcrum/admin.url"), std::string::npos) << help;
  EXPECT_NE(help.find("--server"), std::string::npos);
  EXPECT_NE(help.find("$FULCRUM_SERVER"), std::string::npos);
  EXPECT_NE(help.find("http://127.0.0.1:9901"), std::string::npos);
  EXPECT_EQ(help.find("topsecret"), std::string::npos);
  EXPECT_EQ(url_file("data"), "data/admin.url");
  EXPECT_EQ(token_file("data/"), "data/admin.token");
  EXPECT_EQ(describe_source(Source::kEnv, "--token", "FULCRUM_TOKEN", "f"), "$FULCRUM_TOKEN");
}

}  // namespace
}  // namespace fulcrum::client
