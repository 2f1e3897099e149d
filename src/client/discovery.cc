#include "client/discovery.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fulcrum::client {

namespace {

std::string trim(std::string text) {
  const char* ws = " \t\r\n";
  size_t start = text.find_first_not_of(ws);
  if (start == std::string::npos) return {};
  size_t end = text.find_last_not_of(ws);
  return text.substr(start, end - start + 1);
}

// The trimmed contents of `path`; nullopt when it cannot be opened (then *err holds errno).
std::optional<std::string> read_trimmed(const std::string& path, int* err) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = errno;
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return trim(text.str());
}

bool given(const std::optional<std::string>& v) {
  return v.has_value() && !v->empty();
}

std::string join_path(std::string_view dir, std::string_view name) {
  std::string out(dir.empty() ? "." : dir);
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

}  // namespace

std::string url_file(std::string_view data_dir) {
  return join_path(data_dir, "admin.url");
}
std::string token_file(std::string_view data_dir) {
  return join_path(data_dir, "admin.token");
}

Discovered discover(const DiscoveryInput& input) {
  Discovered out;
  out.data_dir = input.data_dir.empty() ? std::string(kDefaultDataDir) : input.data_dir;
  int err = 0;
  if (given(input.server_flag)) {
    out.server = *input.server_flag;
    out.server_source = Source::kFlag;
  } else if (given(input.server_env)) {
    out.server = *input.server_env;
    out.server_source = Source::kEnv;
  } else if (auto url = read_trimmed(url_file(out.data_dir), &err); url && !url->empty()) {
    out.server = *url;
    out.server_source = Source::kFile;
  } else {
    out.server = std::string(kDefaultServer);
    out.server_source = Source::kDefault;
  }

  if (given(input.token_flag)) {
    out.token = *input.token_flag;
    out.token_source = Source::kFlag;
  } else if (given(input.token_env)) {
    out.token = *input.token_env;
    out.token_source = Source::kEnv;
  } else {
    err = 0;
    auto token = read_trimmed(token_file(out.data_dir), &err);
    if (token && !token->empty()) {
      out.token = *token;
      out.token_source = Source::kFile;
    } else if (!token && err != ENOENT && err != 0) {
      out.token_file_problem = token_file(out.data_dir) + ": " + std::strerror(err);
    }
  }
  return out;
}

std::string describe_source(Source source, std::string_view flag, std::string_view env,
                            std::string_view file) {
  switch (source) {
    case Source::kFlag:
      return std::string(flag);
    case Source::kEnv:
      return "$" + std::string(env);
    case Source::kFile:
      return std::string(file);
    case Source::kDefault:
      return "the default";
    case Source::kNone:
      break;
  }
  return "nowhere";
}

std::string discovery_help(const Discovered& found) {
  return "the server URL came from " +
         describe_source(found.server_source, "--server", "FULCRUM_SERVER",
                         url_file(found.data_dir)) +
         ". fulcrumctl uses --server, else $FULCRUM_SERVER, else " + url_file(found.data_dir) +
         " (written by fulcrumd; choose the folder with --data-dir), else " +
         std::string(kDefaultServer) + ". Is fulcrumd running?";
}

}  // namespace fulcrum::client
