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
// PEM text in `cert`/`key` (cert_file/key_file are accepted too and kept as written). JSON types
// are kept: a string is never an integer or a boolean, a number or a boolean never a string;
// null is an absent key. Duplicate keys ("...port: duplicate key"), nesting beyond 64 levels and
// more than 1,000,000 values are refused with their field path; syntax errors say "JSON syntax
// error at line L, column C: ..." and never quote the input (it may hold a private key).
// Errors are Error::config; nothing throws.
base::Result<Config> decode_json(std::string_view text);

// Secrets: kOmit leaves certificate keys out (API answers); kInclude keeps them (the store).
enum class Secrets : uint8_t { kOmit, kInclude };

// The canonical JSON of a document / of one object: every field with its value, defaults
// included, in model order; decode_json(encode_json(c)) == c for every valid c.
// Compact (no spaces). Durations are seconds (2, 0.5); optional blocks (zones, acl,
// sticky_session, redirect_to_https, health_check.port) only when set; listener keys only for the
// protocols they apply to, health check keys only for their type; a certificate has `cert` when
// its PEM text is set (else cert_file) and `key` only with kInclude (else key_file when set).
std::string encode_json(const Config& config, Secrets secrets = Secrets::kOmit);

// The store layout of a document: one key per resource —
//   /fulcrum/lb/<lb>                         the load balancer's own fields
//   /fulcrum/lb/<lb>/servergroup/<sg>        a server group with its backends
//   /fulcrum/lb/<lb>/listener/<proto>:<port> a listener with its rules
//   /fulcrum/certificate/<name>              (secrets included)
//   /fulcrum/acl/<name>
// Values are canonical JSON objects (the load balancer's without server_groups and listeners).
// Names are letters, digits, '.', '_' and '-' (validate.h), never '/', so keys are unambiguous.
// `config` should be valid (of duplicate names, the last one wins).
std::map<std::string, std::string> to_store(const Config& config);
// The inverse (sorted by key, as the store returns them); validates the result. Every list comes in
// key order (load balancers, server groups, certificates and ACLs by name, listeners by
// "<protocol>:<port>" as text), so from_store(to_store(c)) is c with its lists so sorted. Keys
// outside /fulcrum/lb/, /fulcrum/certificate/ and /fulcrum/acl/ are skipped; a malformed key
// under them, a value's name (or protocol:port) that differs from its key, or a server group or
// listener without its load balancer is an error. Errors name the key: Error::config(key,
// "health_check.interval: must be 1–50 s"), and document paths in messages become keys too.
base::Result<Config> from_store(const std::map<std::string, std::string>& kvs);

}  // namespace fulcrum::config
