// Which certificate answers a TLS server name (SNI): an exact DNS name of a certificate first,
// then a wildcard ("*.example.com" covers exactly one more label: a.example.com, not
// a.b.example.com nor example.com, as RFC 6125 §6.4.3). Pure; built on the control thread,
// read by workers. [any]
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace fulcrum::tls {

class NameTable {
 public:
  // Names are compared without case. When two certificates cover one name, the first added wins.
  void add(std::string_view name, uint32_t index);
  // The index of the certificate for `server_name`, or nullopt (the caller's default).
  std::optional<uint32_t> find(std::string_view server_name) const;
  bool empty() const { return exact_.empty() && wildcard_.empty(); }

 private:
  // Looked up by string_view: no allocation per handshake.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>>;
  Map exact_;
  Map wildcard_;  // "example.com" for "*.example.com"
};

}  // namespace fulcrum::tls
