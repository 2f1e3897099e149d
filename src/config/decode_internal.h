// Internal to config/, included only by yaml.cc and json.cc: the one strict decoder of the
// configuration document, run over a yaml-cpp node tree. The YAML form builds that tree with
// yaml-cpp's parser, the JSON form with its own (json.cc), so both share every rule, default and
// error message. The tree follows yaml-cpp's conventions:
//   - a scalar's tag is "?" when it was written plain, "!" when it was quoted, or an explicit
//     type tag (kIntTag, ...). A quoted scalar is never an integer nor a boolean ("100" is
//     refused where an integer is required); a scalar tagged int, float or bool (every JSON
//     number and boolean) is never a string;
//   - a null value is the same as an absent key.
// [control] — CPU-bound.
#pragma once

#include <yaml-cpp/node/node.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"
#include "config/model.h"

namespace fulcrum::config::internal {

// Work budget: keys and list items visited. YAML aliases let a small document name the same
// subtree many times over (k aliases per level give k^depth objects); this bounds the work and the
// size of the decoded Config whatever the input. A million is far beyond any real file. The text
// of the scalars visited is bounded likewise, to kMaxYamlBytes (config/yaml.h) in all: what an
// alias-free document can hold, so that an alias of a long scalar is not copied without end.
inline constexpr size_t kMaxValues = 1'000'000;

// yaml-cpp tags: "?" for plain scalars, "!" for quoted ones, or an explicit "!!type".
inline constexpr std::string_view kPlainTag = "?";
inline constexpr std::string_view kQuotedTag = "!";
inline constexpr std::string_view kIntTag = "tag:yaml.org,2002:int";
inline constexpr std::string_view kFloatTag = "tag:yaml.org,2002:float";
inline constexpr std::string_view kBoolTag = "tag:yaml.org,2002:bool";

// Whether a listener key ("gzip", "proxy_protocol", ...) applies to protocol `p`. The decoder
// refuses keys that do not; the JSON encoder writes only those that do.
bool listener_key_applies(std::string_view key, Protocol p);

// Decodes the document `root` ({loadbalancers, certificates, acls}) and applies every default
// (those that depend on the protocol once it is known). Relative cert_file/key_file names are
// resolved against `base_dir` (kept as written when it is empty). Does NOT run validate().
// Errors are Error::config(field path, message); nothing throws out of it.
base::Result<Config> decode_tree(const YAML::Node& root, const std::string& base_dir);

}  // namespace fulcrum::config::internal
