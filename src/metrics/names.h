// The metric families Fulcrum exports: their names, types and help texts. These names are API
// (dashboards and alerts depend on them; docs/metrics.md lists them, tests pin them): add families
// freely, never rename or retype one.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "base/counters.h"

namespace fulcrum::metrics {

enum class Type : uint8_t { kCounter, kGauge, kHistogram };

struct Family {
  std::string_view name;
  Type type;
  std::string_view help;  // one line, no backslash
};

// Process.
inline constexpr Family kBuildInfo{"fulcrum_build_info", Type::kGauge,
                                   "Always 1; the version label says which Fulcrum runs."};
inline constexpr Family kConfigGeneration{"fulcrum_config_generation", Type::kGauge,
                                          "Generation of the configuration the workers run."};
inline constexpr Family kWorkers{"fulcrum_workers", Type::kGauge, "Worker threads."};
inline constexpr Family kStoreRevision{"fulcrum_store_revision", Type::kGauge,
                                       "Store revision of the configuration this node serves."};
inline constexpr Family kStoreReachable{
    "fulcrum_store_reachable", Type::kGauge,
    "1 while the configuration store answers (always 1 for SQLite), else 0."};
inline constexpr Family kClusterNodes{"fulcrum_cluster_nodes", Type::kGauge,
                                      "Nodes of the cluster by state (up, down)."};

// Listeners, labels {lb, listener}.
inline constexpr Family kListenerConnections{"fulcrum_listener_connections_total", Type::kCounter,
                                             "Client connections accepted."};
inline constexpr Family kListenerActive{"fulcrum_listener_active_connections", Type::kGauge,
                                        "Client connections open now."};
inline constexpr Family kListenerDropped{
    "fulcrum_listener_dropped_connections_total", Type::kCounter,
    "Client connections closed without a backend serving them (no backend available or "
    "reachable, worker draining)."};
inline constexpr Family kListenerAclDenied{
    "fulcrum_listener_acl_denied_total", Type::kCounter,
    "Client connections (UDP: datagrams of clients without a flow) refused by the listener's "
    "access control list; also counted in dropped connections."};
inline constexpr Family kListenerBytesIn{"fulcrum_listener_bytes_in_total", Type::kCounter,
                                         "Bytes received from clients."};
inline constexpr Family kListenerBytesOut{"fulcrum_listener_bytes_out_total", Type::kCounter,
                                          "Bytes sent to clients."};
// UDP listeners only (rendered only when some listener reports packets).
inline constexpr Family kListenerPacketsIn{"fulcrum_listener_packets_in_total", Type::kCounter,
                                           "Datagrams received from clients (UDP)."};
inline constexpr Family kListenerPacketsOut{"fulcrum_listener_packets_out_total", Type::kCounter,
                                            "Datagrams sent to clients (UDP)."};
inline constexpr Family kUdpFlowTableFull{
    "fulcrum_udp_flow_table_full_total", Type::kCounter,
    "Datagrams of new clients dropped because the flow table was full (UDP)."};

// HTTP listeners, labels {lb, listener} (+ code_class).
inline constexpr Family kHttpRequests{
    "fulcrum_http_requests_total", Type::kCounter,
    "HTTP requests answered, by status class of the answer (Fulcrum's own answers included)."};
inline constexpr Family kHttpRequestDuration{
    "fulcrum_http_request_duration_seconds", Type::kHistogram,
    "Time from a request head received to its response complete."};
inline constexpr Family kHttpUpstreamResponse{
    "fulcrum_http_upstream_response_seconds", Type::kHistogram,
    "Time from a request sent to the backend to the response head received."};

// HTTPS listeners, labels {lb, listener} (+ outcome, reason, version, protocol).
inline constexpr Family kTlsHandshakes{
    "fulcrum_tls_handshakes_total", Type::kCounter,
    "TLS handshakes ended, by outcome: full, resumed (session ticket) or failed."};
inline constexpr Family kTlsHandshakeFailures{"fulcrum_tls_handshake_failures_total",
                                              Type::kCounter,
                                              "TLS handshakes that failed, by reason."};
inline constexpr Family kTlsVersions{"fulcrum_tls_versions_total", Type::kCounter,
                                     "TLS handshakes completed, by negotiated protocol version."};
inline constexpr Family kTlsAlpn{"fulcrum_tls_alpn_total", Type::kCounter,
                                 "TLS handshakes completed, by ALPN protocol (none: no ALPN)."};
inline constexpr Family kTlsClientCertFailures{
    "fulcrum_tls_client_cert_failures_total", Type::kCounter,
    "TLS handshakes of a mutual TLS listener that failed because the client certificate was "
    "missing or not verified."};
inline constexpr Family kTlsSniUnmatched{
    "fulcrum_tls_sni_unmatched_total", Type::kCounter,
    "TLS ClientHellos naming a server no certificate covers (served the first certificate)."};

// Label values of the TLS families, indexed by base::TlsFailure, TlsVersion and TlsAlpn.
inline constexpr std::array<std::string_view, base::kTlsFailures> kTlsFailureReasons = {
    "no_shared_cipher",
    "bad_certificate",
    "client_certificate",
    "protocol",
    "timeout",
    "closed",
    "other"};
inline constexpr std::array<std::string_view, base::kTlsVersions> kTlsVersionNames = {
    "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
inline constexpr std::array<std::string_view, base::kTlsAlpns> kTlsAlpnNames = {"h2", "http/1.1",
                                                                                "none"};

// Backends, labels {lb, listener, server_group, backend}.
inline constexpr Family kBackendConnections{"fulcrum_backend_connections_total", Type::kCounter,
                                            "Connections opened to the backend (failed ones "
                                            "included)."};
inline constexpr Family kBackendActive{
    "fulcrum_backend_active_connections", Type::kGauge,
    "Connections (TCP) or requests (HTTP) in flight to the backend."};
inline constexpr Family kBackendConnectFailures{"fulcrum_backend_connect_failures_total",
                                                Type::kCounter,
                                                "Connections to the backend that failed to "
                                                "open (refused, timed out, unreachable)."};
inline constexpr Family kBackendHttpResponses{"fulcrum_backend_http_responses_total",
                                              Type::kCounter,
                                              "HTTP responses from the backend, by status class."};
inline constexpr Family kBackendUp{
    "fulcrum_backend_up", Type::kGauge,
    "1 when the backend takes new connections (healthy or unchecked), else 0."};
inline constexpr Family kBackendHealth{
    "fulcrum_backend_health", Type::kGauge,
    "1 for the backend's current status (healthy, unhealthy, draining, unchecked), 0 for the "
    "others."};

// Health checks, labels {lb, listener, backend, result}.
inline constexpr Family kHealthChecks{"fulcrum_health_checks_total", Type::kCounter,
                                      "Active health checks finished, by result."};

inline constexpr std::array kFamilies = {
    kBuildInfo,
    kConfigGeneration,
    kWorkers,
    kStoreRevision,
    kStoreReachable,
    kClusterNodes,
    kListenerConnections,
    kListenerActive,
    kListenerDropped,
    kListenerBytesIn,
    kListenerBytesOut,
    kListenerPacketsIn,
    kListenerPacketsOut,
    kUdpFlowTableFull,
    kHttpRequests,
    kHttpRequestDuration,
    kHttpUpstreamResponse,
    kBackendConnections,
    kBackendActive,
    kBackendConnectFailures,
    kBackendHttpResponses,
    kBackendUp,
    kBackendHealth,
    kHealthChecks,
    kListenerAclDenied,
    kTlsHandshakes,
    kTlsHandshakeFailures,
    kTlsVersions,
    kTlsAlpn,
    kTlsClientCertFailures,
    kTlsSniUnmatched,
};

}  // namespace fulcrum::metrics
