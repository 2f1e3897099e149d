#include "client/discovery.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
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

// What discover() found, as an unprivileged user: root reads any file whatever its mode, and the
// README's test command runs as root. As root, a child process drops to nobody (groups, gid, uid:
// no capability is left) and sends the result back through a pipe; otherwise it runs here.
struct TokenSeen {
  Source source = Source::kNone;
  std::string token;
  std::string problem;
};

TokenSeen discover_unprivileged(const DiscoveryInput& in) {
  if (geteuid() != 0) {
    Discovered d = discover(in);
    return {d.token_source, d.token, d.token_file_problem};
  }
  int fds[2];
  if (pipe(fds) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return {};
  }
  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return {};
  }
  if (pid == 0) {
    close(fds[0]);
    const passwd* nobody = getpwnam("nobody");
    uid_t uid = nobody ? nobody->pw_uid : 65534;
    gid_t gid = nobody ? nobody->pw_gid : 65534;
    if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0 || geteuid() == 0) {
      _exit(3);
    }
    Discovered d = discover(in);
    std::string out = std::to_string(static_cast<int>(d.token_source)) + "\n" + d.token + "\n" +
                      d.token_file_problem;
    bool sent = ::write(fds[1], out.data(), out.size()) == static_cast<ssize_t>(out.size());
    _exit(sent ? 0 : 4);
  }
  close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the child as nobody failed (status " << status << "; 3: cannot drop root)";
  TokenSeen seen;
  size_t a = got.find('\n');
  size_t b = a == std::string::npos ? a : got.find('\n', a + 1);
  if (b == std::string::npos) {
    ADD_FAILURE() << "no answer from the child: " << got;
    return seen;
  }
  seen.source = static_cast<Source>(std::stoi(got.substr(0, a)));
  seen.token = got.substr(a + 1, b - a - 1);
  seen.problem = got.substr(b + 1);
  return seen;
}

TEST_F(Discovery, UnreadableTokenFileIsReported) {
  write("admin.token", "tok\n");
  // The folder lets anyone through, so that only the file's own mode can refuse.
  ASSERT_EQ(chmod(dir_.c_str(), 0711), 0);
  ASSERT_EQ(chmod((dir_ + "/admin.token").c_str(), 0644), 0);
  TokenSeen readable = discover_unprivileged(input());  // the control: the same user reads it
  EXPECT_EQ(readable.source, Source::kFile);
  EXPECT_EQ(readable.token, "tok");
  EXPECT_EQ(readable.problem, "");
  ASSERT_EQ(chmod((dir_ + "/admin.token").c_str(), 0), 0);
  TokenSeen d = discover_unprivileged(input());
  EXPECT_EQ(d.source, Source::kNone);
  EXPECT_EQ(d.token, "");
  EXPECT_EQ(d.problem, dir_ + "/admin.token: " + std::strerror(EACCES));
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
