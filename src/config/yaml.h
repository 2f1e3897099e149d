// Decoding the declarative YAML file (PRODUCT.md §3) into a validated Config. Strict: unknown keys,
// wrong types and keys that do not apply to a listener's protocol are errors. Every error names
// the full field path ("loadbalancers[0].server_groups[0].backends[1].weight: must be 0–100");
// YAML syntax errors carry line and column. No exception leaves these functions.
// [control] — CPU-bound (load_yaml_file also reads one file); run off the data plane.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"
#include "config/model.h"

namespace fulcrum::config {

// Larger documents are refused before parsing: a real configuration is far smaller.
inline constexpr size_t kMaxYamlBytes = 16u << 20;

// Decodes `text`, applies every default (those that depend on the protocol once it is known) and
// runs validate(). A certificate names its files (cert_file, key_file) or carries the PEM text
// itself (cert, key), as in JSON (config/json.h). Relative cert_file/key_file names are resolved
// against `base_dir` (kept as written when base_dir is empty); the files are not read here.
base::Result<Config> decode_yaml(std::string_view text, const std::string& base_dir);

// Reads `path` and decodes it with base_dir = the file's folder.
base::Result<Config> load_yaml_file(const std::string& path);

}  // namespace fulcrum::config
