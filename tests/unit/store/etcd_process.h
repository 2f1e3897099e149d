// A real etcd for the tests: one member on free loopback ports, its data in a folder of its own.
//
// ctest runs every test in a process of its own, so each process that needs etcd starts one
// (shared_etcd(): ~0.2 s with the short election timeout below) and stops it when the tests end.
// Tests sharing it keep apart by key prefix and guard key (store_harness.h).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace fulcrum::store {

class EtcdProcess {
 public:
  explicit EtcdProcess(std::filesystem::path dir);
  ~EtcdProcess();  // stop(), then the data folder is removed
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // Starts etcd (new free ports the first time, the same ones afterwards) and waits until it
  // answers /health. False, with why in error(), when it did not within 10 s.
  bool start();
  // SIGTERM to our etcd's pid, SIGKILL if it has not exited after 5 s.
  void stop();

  // "http://127.0.0.1:P"
  std::string endpoint() const;
  const std::string& error() const { return error_; }
  bool running() const { return pid_ > 0; }

 private:
  bool start_once(bool* exited);
  bool healthy() const;
  std::string log_tail() const;

  std::filesystem::path dir_;
  int client_port_ = 0;
  int peer_port_ = 0;
  pid_t pid_ = -1;
  std::string error_;
};

// The etcd of this test process, started on first use and stopped after the last test.
// Fails the calling test (ADD_FAILURE) and returns nullptr when etcd does not start.
EtcdProcess* shared_etcd();

}  // namespace fulcrum::store
