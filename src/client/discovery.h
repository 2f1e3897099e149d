// Where fulcrumctl finds the admin API and its token when it is not told. [any]
//
// Server: --server, else $FULCRUM_SERVER, else the URL in <data-dir>/admin.url (fulcrumd writes
// it at start), else http://127.0.0.1:9901 (fulcrumd's default --admin).
// Token:  --token, else $FULCRUM_TOKEN, else <data-dir>/admin.token (fulcrumd creates it at first
// start, mode 0600), else none (the API then answers 401).
// An empty flag or variable counts as not given. <data-dir> is --data-dir, default ./fulcrum-data.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fulcrum::client {

inline constexpr std::string_view kDefaultServer = "http://127.0.0.1:9901";
inline constexpr std::string_view kDefaultDataDir = "./fulcrum-data";

enum class Source : unsigned char { kFlag, kEnv, kFile, kDefault, kNone };

struct DiscoveryInput {
  std::optional<std::string> server_flag;
  std::optional<std::string> server_env;
  std::optional<std::string> token_flag;
  std::optional<std::string> token_env;
  std::string data_dir = std::string(kDefaultDataDir);
};

struct Discovered {
  std::string server;  // a URL, not yet parsed
  Source server_source = Source::kDefault;
  std::string token;  // empty when none was found
  Source token_source = Source::kNone;
  std::string data_dir;
  // Set when <data-dir>/admin.token exists but could not be read (permissions): worth saying
  // when the API answers 401.
  std::string token_file_problem;
};

// Applies the order above; reads the two files of data_dir (whitespace around their contents is
// dropped). Never fails: what is missing falls through to the next source.
Discovered discover(const DiscoveryInput& input);

// "--server", "$FULCRUM_SERVER", "./fulcrum-data/admin.url", "the default": where a value came
// from, for messages. `file` is the file that was read for kFile.
std::string describe_source(Source source, std::string_view flag, std::string_view env,
                            std::string_view file);

// One paragraph for connection failures: how the server is found and where it was found now.
std::string discovery_help(const Discovered& found);

// The file names discovery reads.
std::string url_file(std::string_view data_dir);
std::string token_file(std::string_view data_dir);

}  // namespace fulcrum::client
