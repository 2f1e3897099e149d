#include "tls/server_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include "tls/stream.h"

namespace fulcrum::tls {

namespace {

std::string openssl_error(std::string_view what) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  return std::string(what) + ": " + buf;
}

// The index of our ServerContext pointer in each SSL_CTX's ex_data.
int context_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

const ServerContext* context_of(SSL* ssl) {
  // The session's original context (SSL_get_SSL_CTX may be the SNI choice; both carry it).
  return static_cast<const ServerContext*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
}

EVP_CIPHER* ticket_cipher() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

// Encrypts new tickets with the current key, decrypts with the current or previous one (RFC
// 5077's recommended layout, as OpenSSL's own default callback). Returns 1 (ok), 2 (ok, and
// issue a fresh ticket), 0 (unknown key: full handshake), -1 (error).
//
// A fresh ticket is issued on every TLS 1.3 resumption, not only when the previous key decrypted
// it: TLS 1.3 clients use a ticket once (RFC 8446 C.4; OpenSSL's client marks it spent), and
// OpenSSL sends no NewSessionTicket after a resumption the callback answered with 1 — so a
// client making one connection after another would resume only every second time. TLS 1.2
// clients keep their ticket: a fresh one there only for an old key.
int on_ticket_key(SSL* ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                  EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  const ServerContext* ctx = context_of(ssl);
  if (!ctx || !ctx->options().tickets || !ticket_cipher()) return -1;
  const TicketKeys& keys = *ctx->options().tickets;
  const TicketKey* key = nullptr;
  int ok = 1;
  if (encrypt) {
    key = &keys.current();
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(ticket_cipher())) != 1) return -1;
    std::memcpy(key_name, key->name.data(), key->name.size());
    if (EVP_EncryptInit_ex(cipher, ticket_cipher(), nullptr, key->aes_key.data(), iv) != 1) {
      return -1;
    }
  } else {
    key = keys.find(key_name);
    if (!key) return 0;
    if (key != &keys.current() || SSL_version(ssl) >= TLS1_3_VERSION) ok = 2;
    if (EVP_DecryptInit_ex(cipher, ticket_cipher(), nullptr, key->aes_key.data(), iv) != 1) {
      return -1;
    }
  }
  OSSL_PARAM params[3];
  params[0] = OSSL_PARAM_construct_octet_string(
      OSSL_MAC_PARAM_KEY, const_cast<uint8_t*>(key->hmac_key.data()), key->hmac_key.size());
  params[1] =
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
  params[2] = OSSL_PARAM_construct_end();
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  return ok;
}

}  // namespace

base::Result<std::shared_ptr<const ServerContext>> ServerContext::create(ServerOptions options) {
  if (options.certificates.empty()) return base::Error::internal("tls: no certificate");
  std::shared_ptr<ServerContext> out(new ServerContext(std::move(options)));
  if (auto s = out->build(); !s.ok()) return s.take_error();
  return std::shared_ptr<const ServerContext>(std::move(out));
}

ServerContext::~ServerContext() {
  for (SSL_CTX* c : contexts_) SSL_CTX_free(c);
}

base::Status ServerContext::build() {
  for (const std::string& p : options_.alpn) {
    if (p.empty() || p.size() > 255) return base::Error::internal("tls: bad ALPN name");
    alpn_wire_.push_back(static_cast<char>(p.size()));
    alpn_wire_ += p;
  }
  unsigned char sid_ctx[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(options_.session_context.data()),
         options_.session_context.size(), sid_ctx);
  const PolicySpec& policy = spec(options_.policy);

  // Certificates with the same names and different key types share one context.
  std::vector<std::vector<const ServerCertificate*>> groups;
  for (const auto& cert : options_.certificates) {
    bool placed = false;
    for (auto& g : groups) {
      bool same_names = g[0]->names() == cert->names();
      bool type_free = true;
      for (const ServerCertificate* c : g)
        type_free = type_free && c->key_type() != cert->key_type();
      if (same_names && type_free && cert->key_type() != KeyType::kOther) {
        g.push_back(cert.get());
        placed = true;
        break;
      }
    }
    if (!placed) groups.push_back({cert.get()});
  }

  for (size_t gi = 0; gi < groups.size(); ++gi) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return base::Error::internal(openssl_error("tls: SSL_CTX_new"));
    contexts_.push_back(ctx);
    SSL_CTX_set_ex_data(ctx, context_index(), this);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_SINGLE_ECDH_USE | SSL_OP_SINGLE_DH_USE);
    // Partial writes: SSL_write returns after each record, so the caller erases what went out;
    // the caller's buffer may move between retries (std::string grows).
    // RELEASE_BUFFERS: an idle keep-alive connection holds no 16 KiB read/write buffers.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);  // one recv for several records
    if (SSL_CTX_set_min_proto_version(ctx, policy.min_version) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, policy.max_version) != 1) {
      return base::Error::internal(openssl_error("tls: protocol versions"));
    }
    if (SSL_CTX_set_cipher_list(ctx, policy.ciphers) != 1) {
      return base::Error::internal(openssl_error("tls: cipher list"));
    }
    // Stateless tickets only: no server-side cache (per worker and locked).
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (options_.tickets) {
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
      SSL_CTX_set_timeout(ctx, kTicketRotationS);
      // TLS 1.3: one ticket per handshake, not OpenSSL's default two. Each costs a session
      // encryption, a record and a client wake-up on every full handshake; a client resumes
      // with one, and gets a fresh one on each resumption.
      SSL_CTX_set_num_tickets(ctx, 1);
    } else {
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(ctx, 0);
    }
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx);
    SSL_CTX_set_tlsext_servername_callback(ctx, &ServerContext::on_server_name);
    SSL_CTX_set_tlsext_servername_arg(ctx, this);
    if (!alpn_wire_.empty()) SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::on_alpn, this);
    if (options_.client_ca) {
      X509_STORE* store = SSL_CTX_get_cert_store(ctx);
      for (X509* ca : options_.client_ca->certificates()) {
        if (X509_STORE_add_cert(store, ca) != 1 || SSL_CTX_add_client_CA(ctx, ca) != 1) {
          return base::Error::internal(openssl_error("tls: CA certificate"));
        }
      }
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    for (const ServerCertificate* cert : groups[gi]) {
      if (SSL_CTX_use_cert_and_key(ctx, cert->leaf(), cert->key(), cert->chain(), 1) != 1) {
        return base::Error::internal(openssl_error("tls: certificate"));
      }
      for (const std::string& name : cert->names()) {
        names_.add(name, static_cast<uint32_t>(gi));
      }
    }
  }
  return {};
}

std::unique_ptr<TlsStream> ServerContext::accept(net::UniqueFd fd) const {
  SSL* ssl = SSL_new(contexts_[0]);
  if (!ssl) {
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return std::make_unique<TlsStream>(std::move(fd), ssl, shared_from_this());
}

int ServerContext::on_server_name(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name || self->contexts_.size() == 1) return SSL_TLSEXT_ERR_OK;
  auto index = self->names_.find(name);
  if (index && *index != 0) SSL_set_SSL_CTX(ssl, self->contexts_[*index]);
  return SSL_TLSEXT_ERR_OK;
}

int ServerContext::on_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  unsigned char* selected = nullptr;
  int r = SSL_select_next_proto(&selected, outlen,
                                reinterpret_cast<const unsigned char*>(self->alpn_wire_.data()),
                                static_cast<unsigned int>(self->alpn_wire_.size()), in, inlen);
  if (r != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace fulcrum::tls
