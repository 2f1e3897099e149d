// How fulcrumctl shows the API's answers in table mode (-o json / -o yaml print the answer as it
// is). Every function takes the parsed answer and tolerates missing fields (shown as "-"). Pure.
// [cli]
#pragma once

#include <cstdint>
#include <string>

#include "document.h"

namespace fulcrum::ctl {

// A field as table text: strings as they are, numbers and booleans as JSON, null/missing "".
std::string cell(const Json& object, const char* key);
// "http:8080" from a listener object.
std::string listener_id(const Json& listener);

// Lists (the arrays of the GET answers).
std::string loadbalancers_table(const Json& lbs);  // NAME ADDRESS TYPE STATUS LISTENERS GROUPS
std::string listeners_table(const Json& listeners, size_t indent = 0);
std::string servergroups_table(const Json& groups, size_t indent = 0);
std::string backends_table(const Json& backends);  // ADDRESS PORT WEIGHT ZONE DESCRIPTION
std::string rules_table(const Json& rules);        // NAME DOMAIN PATH TARGET
std::string certificates_table(const Json& certs);
std::string acls_table(const Json& acls);

// GET /v1/loadbalancers/{lb}/health: LISTENER GROUP BACKEND STATUS WEIGHT.
std::string health_table(const Json& health, size_t indent = 0);
// describe lb: the load balancer's fields, its listeners, groups and health.
std::string describe_loadbalancer(const Json& lb, const Json& health);
// GET /v1/status. "store" is either the object of cluster-capable builds ({kind, endpoints,
// revision, reachable}) or the older string ("sqlite:/path"); both are shown.
std::string status_text(const Json& status);
// GET /v1/nodes: NAME ZONE STATE REVISION GENERATION LAST-SEEN ADMIN, in the API's order.
// LAST-SEEN is `last_seen` (RFC 3339; made from `last_seen_unix_ms` when absent) and, when
// `now_unix_ms` > 0, how long ago that was ("2025-06-01T10:00:00Z (4s ago)").
std::string nodes_table(const Json& nodes, int64_t now_unix_ms = 0);
// Unix milliseconds as RFC 3339 UTC with second precision ("2025-06-01T10:00:00Z").
std::string rfc3339_utc(int64_t unix_ms);
// A duration as the coarse age a table shows: "4s", "3m", "5h", "2d" (negative counts as 0).
std::string age_text(int64_t ms);
// The explain answer: which rule, group and backend, and why.
std::string explain_text(const Json& answer);
// POST /v1/apply: "+ create KEY" / "~ update KEY" / "- delete KEY" lines and the revision.
std::string apply_text(const Json& answer);

}  // namespace fulcrum::ctl
