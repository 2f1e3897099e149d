// Semantic validation of a Config: names, references, addresses, ranges (PRODUCT.md §1–§2) and
// port conflicts. Pure; runs on any thread. decode_yaml() runs it; the API runs it on every
// change before applying it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/result.h"
#include "config/model.h"

namespace fulcrum::config {

inline constexpr size_t kMaxNameLength = 64;        // names of every resource
inline constexpr size_t kMaxAclEntries = 300;       // PRODUCT.md §1
inline constexpr int32_t kMaxBandwidthMbps = 5120;  // PRODUCT.md §2
inline constexpr size_t kMaxTags = 20;              // per load balancer, as cloud SLBs allow

// Beyond names, references, ranges and conflicts: every text is valid UTF-8 (PEM text printable
// ASCII); a certificate has exactly one of cert_file / cert_pem (server: one of key_file /
// key_pem); fields that do not apply to a listener's protocol or to a health check's type keep
// their defaults (no document form could carry another value).
//
// Ok, or the first problem in document order (load balancers, then certificates, then ACLs; inside
// each object its fields in model order) as Error::config(field path, message), e.g.
// "loadbalancers[0].listeners[1].health_check.interval: must be 1–50 s".
base::Status validate(const Config& config);

}  // namespace fulcrum::config
