#include "tls/names.h"

namespace fulcrum::tls {

namespace {
constexpr size_t kMaxName = 253;  // the longest DNS name

// Lower-cases `in` into `out` (kMaxName bytes); false when too long.
bool lower_into(std::string_view in, char* out) {
  if (in.size() > kMaxName) return false;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    out[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
  }
  return true;
}
}  // namespace

void NameTable::add(std::string_view name, uint32_t index) {
  char buf[kMaxName];
  if (name.empty() || !lower_into(name, buf)) return;
  std::string_view n(buf, name.size());
  if (n.starts_with("*.")) {
    wildcard_.emplace(std::string(n.substr(2)), index);
  } else {
    exact_.emplace(std::string(n), index);
  }
}

std::optional<uint32_t> NameTable::find(std::string_view server_name) const {
  char buf[kMaxName];
  if (server_name.empty() || !lower_into(server_name, buf)) return std::nullopt;
  std::string_view key(buf, server_name.size());
  if (auto it = exact_.find(key); it != exact_.end()) return it->second;
  size_t dot = key.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  if (auto it = wildcard_.find(key.substr(dot + 1)); it != wildcard_.end()) return it->second;
  return std::nullopt;
}

}  // namespace fulcrum::tls
