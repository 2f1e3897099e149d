// API tokens: an admin token and a reader token, each a file of one line under the data
// directory (mode 0600), created with 256 random bits at first start. Comparison is constant
// time; a token never appears in a log line, a metric or an error body. [control]
#pragma once

#include <string>
#include <string_view>

#include "api/router.h"
#include "base/result.h"

namespace fulcrum::api {

struct Tokens {
  std::string admin;
  std::string reader;
  std::string admin_path;  // where the admin token lives (shown in the start-up log)
};

// Reads the admin token from `token_file` when given (it must exist), else from
// `<data_dir>/admin.token`, creating it when missing; the reader token likewise from
// `reader_token_file` when given, else `<data_dir>/reader.token`. `data_dir` must exist. The nodes
// of a cluster are started with the same two files, so a token works on every node.
base::Result<Tokens> load_or_create_tokens(const std::string& data_dir,
                                           const std::string& token_file,
                                           const std::string& reader_token_file = {});

// The role an "Authorization: Bearer <token>" header value grants: kAdmin, kReader, or kNone
// (missing, malformed or unknown token). Constant time in the token's content.
Role authorize(const Tokens& tokens, std::string_view authorization);

// True when a and b are equal; the time taken depends only on their lengths. [any]
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace fulcrum::api
