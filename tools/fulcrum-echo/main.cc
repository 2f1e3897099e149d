// fulcrum-echo: the TCP/HTTP/UDP backend used by Fulcrum's integration tests and demo.
// See README.md in this directory for the protocols.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "server.h"

int main(int argc, char** argv) {
  echo::Options opt;
  CLI::App app{
      "fulcrum-echo: a test and demo backend speaking a line-command TCP protocol, HTTP/1.1 and "
      "UDP echo. ADDR:PORT is an IPv4 address or a bracketed IPv6 address ([::1]:9000); port 0 "
      "picks a free port. Each listener is announced on stdout as 'listening <proto> "
      "<addr:port>'."};
  app.add_option("--name", opt.name, "Name this backend reports (NAME, X-Echo-Name, ...)")
      ->required();
  app.add_option("--tcp", opt.tcp, "Listen for the TCP command protocol (repeatable)")
      ->allow_extra_args(false)
      ->type_name("ADDR:PORT");
  app.add_option("--http", opt.http, "Listen for HTTP/1.1 (repeatable)")
      ->allow_extra_args(false)
      ->type_name("ADDR:PORT");
  app.add_option("--udp", opt.udp, "Listen for UDP datagrams (repeatable)")
      ->allow_extra_args(false)
      ->type_name("ADDR:PORT");
  app.add_option("--ready-file", opt.ready_file,
                 "Once listening, atomically write the 'listening ...' lines to this file");
  app.add_flag("--quiet,-q", opt.quiet, "Log nothing but fatal errors to stderr");
  CLI11_PARSE(app, argc, argv);

  if (opt.name.empty() || opt.name.size() > 128) {
    std::fprintf(stderr, "fulcrum-echo: --name must be 1 to 128 characters\n");
    return 2;
  }
  for (char ch : opt.name) {
    if (ch <= ' ' || ch > '~') {
      std::fprintf(stderr, "fulcrum-echo: --name must be printable ASCII without spaces\n");
      return 2;
    }
  }
  if (opt.tcp.empty() && opt.http.empty() && opt.udp.empty()) {
    std::fprintf(stderr, "fulcrum-echo: nothing to do: give at least one --tcp, --http or --udp\n");
    return 2;
  }
  return echo::RunServer(opt);
}
