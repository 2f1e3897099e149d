#include "snapshot/snapshot.h"

#include "base/hash.h"

namespace fulcrum::snapshot {

std::string_view to_string(Health h) {
  switch (h) {
    case Health::kUnchecked:
      return "unchecked";
    case Health::kHealthy:
      return "healthy";
    case Health::kUnhealthy:
      return "unhealthy";
  }
  return "unchecked";
}

std::string_view backend_status(uint32_t weight, Health h) {
  return weight == 0 ? "draining" : to_string(h);
}

std::string sticky_token(uint64_t secret, uint64_t backend_id) {
  uint64_t h = base::mix64(base::mix64(secret ^ 0x5ca1ab1e5eedULL) ^ backend_id);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (size_t i = 0; i < 16; ++i) out[i] = kHex[(h >> (60 - 4 * i)) & 0xf];
  return out;
}

std::string health_key(std::string_view lb_name, std::string_view listener_id,
                       std::string_view backend_name) {
  std::string key;
  key.reserve(lb_name.size() + listener_id.size() + backend_name.size() + 2);
  key.append(lb_name).append("/").append(listener_id).append("/").append(backend_name);
  return key;
}

}  // namespace fulcrum::snapshot
