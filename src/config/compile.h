// Compiles a validated configuration model into one immutable Snapshot: resolved addresses,
// server groups, and balancer tables built once here for all workers. [control]
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "config/model.h"
#include "snapshot/snapshot.h"
#include "tls/certificate.h"
#include "tls/server_context.h"
#include "tls/ticket_keys.h"

namespace fulcrum::config {

struct Compiled {
  std::shared_ptr<const snapshot::Snapshot> snapshot;
  // For snapshot->listeners[i]: its field path in the document ("loadbalancers[0].listeners[1]"),
  // so that errors found later (a port in use) name the field.
  std::vector<std::string> listener_paths;
};

// What TLS compilation keeps from one generation to the next. [control]
struct TlsState {
  // Session ticket keys shared by every HTTPS listener's contexts (and so by every worker and
  // every generation); the Server rotates them.
  std::shared_ptr<tls::TicketKeys> tickets = std::make_shared<tls::TicketKeys>();
  // What the last compile loaded, keyed by content: certificates by their PEM text, contexts by
  // their settings. A generation that changes nothing TLS (a backend's health, a weight) reuses
  // them instead of parsing keys and building contexts again; a changed certificate is loaded
  // and checked anew.
  std::map<std::string, std::shared_ptr<const tls::ServerCertificate>> certificates;
  std::map<std::string, std::shared_ptr<const tls::CaCertificates>> cas;
  std::map<std::string, std::shared_ptr<const tls::ServerContext>> contexts;
};

// Reads a certificate's PEM text and key from its files, or takes them from the model (YAML's
// cert/key or the API's). Errors name the field (certificates[1].cert_file: cannot read ...).
base::Status read_certificate_pem(const Certificate& c, const std::string& path, std::string* cert,
                                  std::string* key);

// `config` must have passed validate(). Fails with a field path when the document asks for
// something this build cannot serve yet. `health` (may be null: every backend unchecked) gives
// each listener's view of its backends; unhealthy ones get weight 0 in the balancer table.
// `sticky_secret` keys the sticky-session tokens (snapshot::sticky_token); keep it across
// generations so that cookies stay valid over reloads and health changes.
// Every certificate of the document is loaded (files read, PEM parsed) and checked: a key that
// does not match its certificate, or a certificate outside its validity period, refuses the
// whole document with the certificate's field (certificates[1].key: does not match the
// certificate). `tls` (may be null: fresh ticket keys, nothing reused) is read and updated.
base::Result<Compiled> compile(const Config& config, uint64_t generation,
                               const snapshot::HealthTable* health = nullptr,
                               uint64_t sticky_secret = 0, TlsState* tls = nullptr);

}  // namespace fulcrum::config
