// Files fulcrumctl reads (apply -f, create KIND -f) and YAML output. Documents are handled as
// generic JSON/YAML trees: fulcrumctl knows no configuration rules, the API validates. [cli]
#pragma once

#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "base/result.h"

namespace fulcrum::ctl {

// Ordered, so that answers print in the API's (model) order.
using Json = nlohmann::ordered_json;

// A YAML tree as JSON, by the YAML 1.2 core schema: plain scalars `null`/`~`/empty are null,
// `true`/`false` booleans, integers (decimal, 0x, 0o) and floats numbers, everything else (and
// every quoted scalar) a string. Errors: a duplicate or non-scalar mapping key, a number that does
// not fit, with the path of the offending node.
base::Result<Json> yaml_to_json(const YAML::Node& node);

// A JSON value as block YAML that yaml_to_json reads back as the same value: strings that would
// read as another type ("80", "true", "") are quoted, multi-line strings (PEM) are literal blocks.
std::string to_yaml(const Json& value);

// Pretty JSON (two spaces), invalid UTF-8 replaced, ending with a newline.
std::string to_json_text(const Json& value);

// What a file holds and how it is sent.
enum class Shape : unsigned char {
  kDocument,     // {loadbalancers, certificates, acls}: certificates[i] get their files inlined
  kCertificate,  // one certificate object: its files are inlined
  kObject,       // any other object
};

struct Document {
  std::string path;  // as given
  bool yaml = false;
  Json json;  // the content, certificate files inlined
  // The body for POST /v1/apply: YAML stays YAML (the original text when nothing was inlined,
  // else re-emitted), JSON is sent as JSON.
  std::string body;
  std::string content_type;  // application/yaml or application/json
};

// Reads `path` ("-" = standard input). JSON when the name ends in .json, YAML for .yaml/.yml,
// else JSON when the first non-blank byte is '{' or '['. Certificates of `shape` given with
// `cert_file`/`key_file` get `cert`/`key` with the PEM text instead, read relative to the file's
// folder (the server cannot read the operator's files). Errors name the file and line, or the
// field path of a certificate file that cannot be read.
base::Result<Document> load_document(const std::string& path, Shape shape);

// Reads a whole file (a PEM given with --cert/--key). Errors name the file.
base::Result<std::string> read_file(const std::string& path);

}  // namespace fulcrum::ctl
