// The JSON form of the configuration (the REST API's bodies and the store's values): the same
// shape and field names as the YAML file (PRODUCT.md §3), decoded by the same strict decoder, so
// every error names the field. Durations are written as seconds (a JSON number, fractions allowed).
// [control]
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "base/result.h"
#include "config/model.h"

namespace fulcrum::config {

inline constexpr size_t kMaxJsonBytes = 16u << 20;

// Strict JSON (RFC 8259: no comments, no trailing commas, no duplicate keys) of a whole document
// {loadbalancers, certificates, acls} -> a validated Config, as decode_yaml. Certificates carry
// PEM text in `cert`/`key` (no file names).
base::Result<Config> decode_json(std::string_view text);

// Secrets: kOmit leaves certificate keys out (API answers); kInclude keeps them (the store).
enum class Secrets : uint8_t { kOmit, kInclude };

// The canonical JSON of a document / of one object: every field with its value, defaults
// included, in model order; decode_json(encode_json(c)) == c for every valid c.
std::string encode_json(const Config& config, Secrets secrets = Secrets::kOmit);

// The store layout of a document: one key per resource —
//   /fulcrum/lb/<lb>                         the load balancer's own fields
//   /fulcrum/lb/<lb>/servergroup/<sg>        a server group with its backends
//   /fulcrum/lb/<lb>/listener/<proto>:<port> a listener with its rules
//   /fulcrum/certificate/<name>              (secrets included)
//   /fulcrum/acl/<name>
// Values are canonical JSON objects.
std::map<std::string, std::string> to_store(const Config& config);
// The inverse (sorted by key, as the store returns them); validates the result.
base::Result<Config> from_store(const std::map<std::string, std::string>& kvs);

}  // namespace fulcrum::config
