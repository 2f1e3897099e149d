#include "snapshot/snapshot.h"

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

std::string health_key(std::string_view lb_name, std::string_view listener_id,
                       std::string_view backend_name) {
  std::string key;
  key.reserve(lb_name.size() + listener_id.size() + backend_name.size() + 2);
  key.append(lb_name).append("/").append(listener_id).append("/").append(backend_name);
  return key;
}

}  // namespace fulcrum::snapshot
