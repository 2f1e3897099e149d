#include "document.h"

#include "config/yaml_prescan.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fulcrum::ctl {

namespace {

enum class ScalarKind : unsigned char { kNull, kBool, kInt, kFloat, kString };

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_octal(char c) {
  return c >= '0' && c <= '7';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_float_text(std::string_view s) {
  // [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = 0, frac_digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++int_digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (!all_of(s.substr(i), is_digit)) return false;
    i = s.size();
  }
  return i == s.size();
}

// The type a plain (unquoted) scalar has under the YAML 1.2 core schema.
ScalarKind classify(std::string_view s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return ScalarKind::kNull;
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    return ScalarKind::kBool;
  }
  std::string_view digits = s;
  if (digits.front() == '-' || digits.front() == '+') digits.remove_prefix(1);
  if (all_of(digits, is_digit)) return ScalarKind::kInt;
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o' && all_of(s.substr(2), is_octal)) {
    return ScalarKind::kInt;
  }
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && all_of(s.substr(2), is_hex)) {
    return ScalarKind::kInt;
  }
  if (is_float_text(s)) return ScalarKind::kFloat;
  // .inf and .nan are floats in YAML but have no JSON form: they stay strings here, and to_yaml
  // quotes them so that they read back as strings.
  return ScalarKind::kString;
}

bool looks_special(std::string_view s) {
  static constexpr std::string_view kSpecial[] = {".inf",  ".Inf",  ".INF", "-.inf", "-.Inf",
                                                  "-.INF", "+.inf", ".nan", ".NaN",  ".NAN"};
  for (std::string_view k : kSpecial) {
    if (s == k) return true;
  }
  return false;
}

base::Result<Json> scalar(const YAML::Node& node, const std::string& path) {
  const std::string& text = node.Scalar();
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return Json(text);
  if (tag != "?" && !tag.empty()) return Json(text);  // other explicit tags: keep the text
  switch (classify(text)) {
    case ScalarKind::kNull:
      return Json(nullptr);
    case ScalarKind::kBool:
      return Json(text[0] == 't' || text[0] == 'T');
    case ScalarKind::kInt: {
      std::string_view s = text;
      bool negative = false;
      if (s.front() == '-' || s.front() == '+') {
        negative = s.front() == '-';
        s.remove_prefix(1);
      }
      int base = 10;
      if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
        base = s[1] == 'o' ? 8 : 16;
        s.remove_prefix(2);
      }
      uint64_t value = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
      if (ec != std::errc() || end != s.data() + s.size() ||
          value > static_cast<uint64_t>(INT64_MAX)) {
        return base::Error::config(path, "the number " + text + " is too large");
      }
      auto v = static_cast<int64_t>(value);
      return Json(negative ? -v : v);
    }
    case ScalarKind::kFloat: {
      double value = std::strtod(text.c_str(), nullptr);
      if (!std::isfinite(value)) return base::Error::config(path, "the number is too large");
      return Json(value);
    }
    case ScalarKind::kString:
      break;
  }
  return Json(text);
}

// The server's bounds on a YAML document (src/config/yaml.cc), applied before fulcrumctl expands
// the tree into JSON: a "billion laughs" file (aliases of aliases) is refused here with the
// server's message instead of filling the memory of the client.
constexpr size_t kMaxDocumentBytes = 16u << 20;  // the API's body limit
constexpr size_t kMaxValues = 1'000'000;  // keys and list items reached, an alias at each use
constexpr size_t kMaxText = 16u << 20;    // scalar text reached, an alias at each use

struct Budget {
  size_t values = 0;
  size_t text = 0;
};

base::Status spend(Budget& budget, const YAML::Node& node) {
  if (++budget.values > kMaxValues) {
    return base::Error::config(
        "", "document too large (more than 1000000 values; an alias counts at each use)");
  }
  if (node.IsScalar() && (budget.text += node.Scalar().size()) > kMaxText) {
    return base::Error::config(
        "", "document too large (more than 16 MiB of text; an alias counts at each use)");
  }
  return {};
}

base::Result<Json> convert(const YAML::Node& node, const std::string& path, Budget& budget) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      return scalar(node, path);
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      size_t i = 0;
      for (const YAML::Node& item : node) {
        if (auto st = spend(budget, item); !st.ok()) return st.take_error();
        auto v = convert(item, path + "[" + std::to_string(i++) + "]", budget);
        if (!v.ok()) return v.take_error();
        out.push_back(std::move(*v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) return base::Error::config(path, "a key must be a scalar");
        if (auto st = spend(budget, kv.first); !st.ok()) return st.take_error();
        if (kv.second.IsScalar() && (budget.text += kv.second.Scalar().size()) > kMaxText) {
          return base::Error::config(
              "", "document too large (more than 16 MiB of text; an alias counts at each use)");
        }
        const std::string& key = kv.first.Scalar();
        std::string child = path.empty() ? key : path + "." + key;
        if (out.contains(key)) return base::Error::config(child, "duplicate key");
        auto v = convert(kv.second, child, budget);
        if (!v.ok()) return v.take_error();
        out[key] = std::move(*v);
      }
      return out;
    }
  }
  return Json(nullptr);
}

bool fits_literal_block(const std::string& s) {
  // A literal block with the default "clip" chomping reads back as text ending in exactly one
  // newline; leading spaces on the first line would need an indentation indicator.
  return s.size() >= 2 && s.back() == '\n' && s[s.size() - 2] != '\n' &&
         s.find('\r') == std::string::npos && s.front() != ' ' && s.front() != '\n' &&
         s.find('\t') == std::string::npos;
}

void emit(YAML::Emitter& out, const Json& j) {
  switch (j.type()) {
    case Json::value_t::object:
      if (j.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (const auto& [key, value] : j.items()) {
        out << YAML::Key;
        emit(out, Json(key));
        out << YAML::Value;
        emit(out, value);
      }
      out << YAML::EndMap;
      return;
    case Json::value_t::array:
      if (j.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const Json& item : j) emit(out, item);
      out << YAML::EndSeq;
      return;
    case Json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      if (s.find('\n') != std::string::npos) {
        if (fits_literal_block(s)) {
          out << YAML::Literal << s;
        } else {
          out << YAML::DoubleQuoted << s;
        }
      } else if (classify(s) != ScalarKind::kString || looks_special(s)) {
        out << YAML::DoubleQuoted << s;
      } else {
        out << s;
      }
      return;
    }
    case Json::value_t::boolean:
      out << (j.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      out << j.dump();
      return;
    case Json::value_t::null:
    case Json::value_t::discarded:
    case Json::value_t::binary:
      out << YAML::Null;
      return;
  }
}

std::string folder_of(const std::string& path) {
  if (path == "-") return ".";
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string resolve(const std::string& folder, const std::string& name) {
  if (!name.empty() && name.front() == '/') return name;
  return folder + "/" + name;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Replaces cert_file/key_file of one certificate with cert/key (JSON tree).
base::Status inline_json_certificate(Json* cert, const std::string& folder,
                                     const std::string& path) {
  if (!cert->is_object()) return {};
  for (const auto& [file_key, pem_key] : {std::pair{"cert_file", "cert"}, {"key_file", "key"}}) {
    if (!cert->contains(file_key)) continue;
    const Json& name = (*cert)[file_key];
    std::string field = path.empty() ? file_key : path + "." + file_key;
    if (!name.is_string()) return base::Error::config(field, "must be a file name");
    auto pem = read_file(resolve(folder, name.get<std::string>()));
    if (!pem.ok()) return base::Error::config(field, pem.error().message);
    cert->erase(file_key);
    (*cert)[pem_key] = std::move(*pem);
  }
  return {};
}

// The same on the YAML tree; *changed is set when a file was inlined.
base::Status inline_yaml_certificate(YAML::Node cert, const std::string& folder,
                                     const std::string& path, bool* changed) {
  if (!cert.IsMap()) return {};
  for (const auto& [file_key, pem_key] : {std::pair{"cert_file", "cert"}, {"key_file", "key"}}) {
    YAML::Node name = cert[file_key];
    if (!name) continue;
    std::string field = path.empty() ? file_key : path + "." + file_key;
    if (!name.IsScalar()) return base::Error::config(field, "must be a file name");
    auto pem = read_file(resolve(folder, name.Scalar()));
    if (!pem.ok()) return base::Error::config(field, pem.error().message);
    cert.remove(file_key);
    cert[pem_key] = *pem;
    *changed = true;
  }
  return {};
}

}  // namespace

base::Result<Json> yaml_to_json(const YAML::Node& node) {
  Budget budget;
  return convert(node, "", budget);
}

std::string to_yaml(const Json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  emit(out, value);
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

std::string to_json_text(const Json& value) {
  return value.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

base::Result<std::string> read_file(const std::string& path) {
  if (path == "-") {
    std::ostringstream text;
    text << std::cin.rdbuf();
    return text.str();
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return base::Error::system(
        errno, "cannot read " + path + ": " + std::strerror(errno ? errno : ENOENT));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

base::Result<Document> load_document(const std::string& path, Shape shape) {
  auto text = read_file(path);
  if (!text.ok()) return text.take_error();
  if (text->size() > kMaxDocumentBytes) {
    return base::Error::config("", path + ": document too large (more than 16 MiB)");
  }
  Document doc;
  doc.path = path;
  if (ends_with(path, ".json")) {
    doc.yaml = false;
  } else if (ends_with(path, ".yaml") || ends_with(path, ".yml")) {
    doc.yaml = true;
  } else {
    size_t first = text->find_first_not_of(" \t\r\n");
    doc.yaml = first == std::string::npos || ((*text)[first] != '{' && (*text)[first] != '[');
  }
  const std::string folder = folder_of(path);
  if (doc.yaml) {
    YAML::Node root;
    try {
      std::istringstream in(*text);
      YAML::Parser parser(in);
      config::YamlPrescan counter;
      parser.HandleNextDocument(counter);  // the document YAML::Load reads
      root = YAML::Load(*text);
    } catch (const config::TooManyYamlNodes&) {
      return base::Error::config("", path + ": document too large (more than 1000000 YAML nodes)");
    } catch (const YAML::Exception& e) {
      return base::Error::internal(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
    }
    bool changed = false;
    if (shape == Shape::kCertificate) {
      if (auto st = inline_yaml_certificate(root, folder, "", &changed); !st.ok()) {
        return st.take_error();
      }
    } else if (shape == Shape::kDocument && root.IsMap() && root["certificates"] &&
               root["certificates"].IsSequence()) {
      YAML::Node certs = root["certificates"];
      for (size_t i = 0; i < certs.size(); ++i) {
        std::string p = "certificates[" + std::to_string(i) + "]";
        if (auto st = inline_yaml_certificate(certs[i], folder, p, &changed); !st.ok()) {
          return st.take_error();
        }
      }
    }
    auto json = yaml_to_json(root);
    if (!json.ok()) {
      base::Error e = json.take_error();
      e.message = path + ": " + e.to_string();
      e.field.clear();
      return e;
    }
    doc.json = std::move(*json);
    if (changed) {
      doc.body = to_yaml(doc.json);  // keeps what was quoted a string
    } else {
      doc.body = std::move(*text);
    }
    doc.content_type = "application/yaml";
    return doc;
  }
  try {
    doc.json = Json::parse(*text);
  } catch (const Json::parse_error& e) {
    return base::Error::internal(path + ": " + e.what());
  }
  if (shape == Shape::kCertificate) {
    if (auto st = inline_json_certificate(&doc.json, folder, ""); !st.ok()) return st.take_error();
  } else if (shape == Shape::kDocument && doc.json.is_object() &&
             doc.json.contains("certificates") && doc.json["certificates"].is_array()) {
    Json& certs = doc.json["certificates"];
    for (size_t i = 0; i < certs.size(); ++i) {
      std::string p = "certificates[" + std::to_string(i) + "]";
      if (auto st = inline_json_certificate(&certs[i], folder, p); !st.ok()) return st.take_error();
    }
  }
  doc.body = doc.json.dump(-1, ' ', false, Json::error_handler_t::replace);
  doc.content_type = "application/json";
  return doc;
}

}  // namespace fulcrum::ctl
