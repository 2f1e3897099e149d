#include "unit/store/etcd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

namespace fulcrum::store {
namespace {

constexpr const char* kEtcdBinary = "/usr/bin/etcd";  // Debian's etcd-server
constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr auto kStopTimeout = std::chrono::seconds(5);
constexpr int kStartAttempts = 5;  // a free port may be taken by someone else before etcd binds it

int loopback_socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// Two distinct ports the kernel considers free now (both bound at once, then released).
std::pair<int, int> free_ports() {
  int a = loopback_socket();
  int b = loopback_socket();
  std::pair<int, int> ports{a >= 0 ? port_of(a) : 0, b >= 0 ? port_of(b) : 0};
  if (a >= 0) ::close(a);
  if (b >= 0) ::close(b);
  return ports;
}

// GET /health over plain HTTP/1.0; etcd answers {"health":"true"} once it has a leader.
bool health_ok(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{0, 500 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[1024];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return answer.find("\"health\":\"true\"") != std::string::npos;
}

}  // namespace

EtcdProcess::EtcdProcess(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::filesystem::remove_all(dir_);
}

EtcdProcess::~EtcdProcess() {
  stop();
  std::filesystem::remove_all(dir_);
}

std::string EtcdProcess::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(client_port_);
}

bool EtcdProcess::start() {
  if (running()) return true;
  const bool fixed = client_port_ != 0;  // a restart keeps its ports: clients reconnect to them
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    if (!fixed) std::tie(client_port_, peer_port_) = free_ports();
    bool exited = false;
    if (start_once(&exited)) return true;
    if (!exited) return false;  // it ran but never became healthy: trying again will not help
  }
  return false;
}

bool EtcdProcess::start_once(bool* exited) {
  std::filesystem::create_directories(dir_);
  const std::string name = "fulcrum-test";
  const std::string client = endpoint();
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  // Short raft timings: a single member elects itself in ~0.1 s instead of ~1 s.
  std::vector<std::string> args = {kEtcdBinary,
                                   "--name",
                                   name,
                                   "--data-dir",
                                   (dir_ / "data").string(),
                                   "--listen-client-urls",
                                   client,
                                   "--advertise-client-urls",
                                   client,
                                   "--listen-peer-urls",
                                   peer,
                                   "--initial-advertise-peer-urls",
                                   peer,
                                   "--initial-cluster",
                                   name + "=" + peer,
                                   "--heartbeat-interval",
                                   "10",
                                   "--election-timeout",
                                   "100",
                                   "--logger",
                                   "zap",
                                   "--log-level",
                                   "warn"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log_path = (dir_ / "etcd.log").string();
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) {
    error_ = "cannot open " + log_path;
    return false;
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // etcd dies with the test process, even when that is SIGKILLed by a ctest timeout. The
    // signal follows the forking thread: start() runs on the test's main thread.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    ::execv(kEtcdBinary, argv.data());
    ::_exit(127);
  }
  ::close(log);
  if (pid < 0) {
    error_ = "fork failed";
    return false;
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      *exited = true;
      error_ = std::string(kEtcdBinary) + " exited at start (status " + std::to_string(status) +
               "): " + log_tail();
      return false;
    }
    if (healthy()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  error_ = "etcd did not become healthy within 10 s: " + log_tail();
  stop();
  return false;
}

void EtcdProcess::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

bool EtcdProcess::healthy() const {
  return health_ok(client_port_);
}

std::string EtcdProcess::log_tail() const {
  std::ifstream in(dir_ / "etcd.log", std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  std::string all = s.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

namespace {

// Owns the shared etcd; gtest calls TearDown after the last test of the process.
class SharedEtcd : public ::testing::Environment {
 public:
  void TearDown() override { etcd_.reset(); }

  EtcdProcess* get() {
    if (!etcd_ && failed_.empty()) {
      etcd_ = std::make_unique<EtcdProcess>(std::filesystem::path(::testing::TempDir()) /
                                            ("fulcrum_etcd_" + std::to_string(::getpid())));
      if (!etcd_->start()) {
        failed_ = etcd_->error();
        etcd_.reset();
      }
    }
    if (!etcd_) ADD_FAILURE() << "cannot start etcd: " << failed_;
    return etcd_.get();
  }

 private:
  std::unique_ptr<EtcdProcess> etcd_;
  std::string failed_;
};

SharedEtcd* const g_shared_etcd =
    static_cast<SharedEtcd*>(::testing::AddGlobalTestEnvironment(new SharedEtcd));

}  // namespace

EtcdProcess* shared_etcd() {
  return g_shared_etcd->get();
}

}  // namespace fulcrum::store
