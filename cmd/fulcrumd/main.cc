// fulcrumd: the Fulcrum node daemon. Serves the load balancers of its store (and of --config,
// applied at start) on one worker per CPU (or --workers N), with the admin API on --admin, until
// SIGTERM (graceful drain) or SIGINT. With no arguments: store under ./fulcrum-data, API on
// 127.0.0.1:9901.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "base/log.h"
#include "server/server.h"

int main(int argc, char** argv) {
  using namespace fulcrum;
  server::ServerOptions options;
  std::string log_level = "info";
  bool check_only = false;
  CLI::App app{"fulcrumd: the Fulcrum load balancer node daemon"};
  app.add_option("-c,--config", options.config_path,
                 "YAML file applied at start and on SIGHUP (load balancers, certificates, acls)")
      ->check(CLI::ExistingFile);
  app.add_option("--data-dir", options.data_dir,
                 "state directory: the SQLite store, API tokens, admin.url")
      ->capture_default_str();
  app.add_option("--admin", options.admin, "admin API address IP:PORT, or off")
      ->capture_default_str();
  app.add_option("--token-file", options.token_file,
                 "file holding the admin token (default: <data-dir>/admin.token, created)")
      ->check(CLI::ExistingFile);
  app.add_option("--store", options.store,
                 "configuration store: sqlite (this node alone, in --data-dir) or "
                 "etcd://HOST:PORT[,HOST:PORT...] (cluster mode; http:// or https:// per endpoint)")
      ->capture_default_str();
  app.add_option("--reader-token-file", options.reader_token_file,
                 "file holding the reader token (default: <data-dir>/reader.token, created)")
      ->check(CLI::ExistingFile);
  app.add_option("--etcd-cacert", options.etcd_cacert, "CA certificate (PEM) of the etcd members")
      ->check(CLI::ExistingFile);
  app.add_option("--etcd-cert", options.etcd_cert, "client certificate (PEM) for etcd")
      ->check(CLI::ExistingFile);
  app.add_option("--etcd-key", options.etcd_key, "client key (PEM) for etcd")
      ->check(CLI::ExistingFile);
  app.add_option("--etcd-user", options.etcd_user, "etcd user name (with --etcd-password-file)");
  app.add_option("--etcd-password-file", options.etcd_password_file,
                 "file holding the etcd user's password");
  app.add_option("--node", options.node, "this node's name (default: the host name)");
  app.add_option("--zone", options.zone, "this node's zone");
  app.add_option("-w,--workers", options.workers, "worker threads (default: one per CPU)")
      ->check(CLI::Range(0, 256));
  app.add_option("--access-log", options.access_log,
                 "file for the access log of HTTP listeners with access_log: true (- = stdout)");
  app.add_option("--log-level", log_level, "debug|info|warn|error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  app.add_flag("--check", check_only, "validate --config and exit (0 = valid)");
  CLI11_PARSE(app, argc, argv);

  base::LogLevel level;
  base::parse_log_level(log_level, &level);
  base::set_log_level(level);

  if (check_only) {
    auto st = server::Server::check(options.config_path);
    if (!st.ok()) {
      std::fprintf(stderr, "fulcrumd: %s: %s\n", options.config_path.c_str(),
                   st.error().to_string().c_str());
      return 2;
    }
    std::printf("%s: ok\n", options.config_path.c_str());
    return 0;
  }

  // Signals are taken by the control thread through signalfd: block them before any thread
  // starts so that every thread inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (options.node.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) options.node = host;
  }
  if (options.store != "sqlite" && options.store.rfind("etcd://", 0) != 0) {
    std::fprintf(stderr,
                 "fulcrumd: --store: must be sqlite or etcd://HOST:PORT[,HOST:PORT...], not '%s'\n",
                 options.store.c_str());
    return 2;
  }
  server::Server server(options);
  if (auto st = server.start(); !st.ok()) {
    std::fprintf(stderr, "fulcrumd: %s%s%s\n",
                 options.config_path.empty() ? "" : options.config_path.c_str(),
                 options.config_path.empty() ? "" : ": ", st.error().to_string().c_str());
    return 2;
  }
  FLOG_INFO("fulcrumd ready (pid {})", static_cast<long>(getpid()));
  return server.run();
}
