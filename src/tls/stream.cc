#include "tls/stream.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>

#include "base/log.h"
#include "tls/failure.h"
#include "tls/server_context.h"

namespace fulcrum::tls {

namespace {

// The socket BIO: recv/send on the stream's fd. Its data pointer is the TlsStream.
int bio_read(BIO* bio, char* buf, int len) {
  BIO_clear_retry_flags(bio);
  auto* stream = static_cast<TlsStream*>(BIO_get_data(bio));
  for (;;) {
    ssize_t n = ::recv(stream->fd(), buf, static_cast<size_t>(len), 0);
    if (n >= 0) {
      stream->note_read(static_cast<size_t>(len), static_cast<size_t>(n));
      return static_cast<int>(n);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      stream->note_read(1, 0);
      BIO_set_retry_read(bio);
    }
    return -1;
  }
}

int bio_write(BIO* bio, const char* buf, int len) {
  BIO_clear_retry_flags(bio);
  auto* stream = static_cast<TlsStream*>(BIO_get_data(bio));
  for (;;) {
    ssize_t n = ::send(stream->fd(), buf, static_cast<size_t>(len), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
    return -1;
  }
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* socket_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "fulcrum socket");
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

void log_failure(const char* what) {
  if (base::log_level() <= base::LogLevel::kDebug) {
    unsigned long e = ERR_peek_error();
    char buf[256] = "no detail";
    if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
    FLOG_DEBUG("tls: {}: {}", what, buf);
  }
  ERR_clear_error();  // OpenSSL's queue is per thread: leave it empty for the next connection
}

}  // namespace

TlsStream::TlsStream(net::UniqueFd fd, SSL* ssl, std::shared_ptr<const ServerContext> context)
    : net::Stream(std::move(fd)), ssl_(ssl), context_(std::move(context)) {
  BIO* bio = BIO_new(socket_method());
  if (bio) {
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);  // one reference, for both directions
  } else {
    failed_ = true;
    ERR_clear_error();
  }
}

TlsStream::~TlsStream() {
  SSL_free(ssl_);
}

net::IoStatus TlsStream::handshake() {
  if (done_) return net::IoStatus::kOk;
  if (failed_) return net::IoStatus::kError;
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    done_ = true;
    read_wants_write_ = false;
    return net::IoStatus::kOk;
  }
  int error = SSL_get_error(ssl_, r);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      read_wants_write_ = false;
      return net::IoStatus::kBlocked;
    case SSL_ERROR_WANT_WRITE:
      read_wants_write_ = true;
      return net::IoStatus::kBlocked;
    default:
      failed_ = true;
      failure_ = classify_handshake_failure(error, ERR_peek_error());
      log_failure("handshake");
      return net::IoStatus::kError;
  }
}

net::IoResult TlsStream::read(char* buf, size_t n) {
  if (failed_) return {net::IoStatus::kError, 0, false};
  size_t got = 0;
  n = std::min<size_t>(n, INT_MAX);
  if (SSL_read_ex(ssl_, buf, n, &got) == 1) {
    read_wants_write_ = false;
    done_ = true;
    bool more = !last_read_short_ || SSL_has_pending(ssl_) == 1;
    return {net::IoStatus::kOk, got, more};
  }
  switch (SSL_get_error(ssl_, 0)) {
    case SSL_ERROR_WANT_READ:
      read_wants_write_ = false;
      return {net::IoStatus::kBlocked, 0, false};
    case SSL_ERROR_WANT_WRITE:
      read_wants_write_ = true;
      return {net::IoStatus::kBlocked, 0, false};
    case SSL_ERROR_ZERO_RETURN:
      return {net::IoStatus::kEof, 0, false};
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      ERR_clear_error();
      if (errno == 0) return {net::IoStatus::kEof, 0, false};
      return {net::IoStatus::kError, 0, false};
    default:
      failed_ = true;
      log_failure("read");
      errno = EPROTO;
      return {net::IoStatus::kError, 0, false};
  }
}

net::IoResult TlsStream::write(const char* buf, size_t n) {
  if (failed_) return {net::IoStatus::kError, 0, false};
  size_t put = 0;
  n = std::min<size_t>(n, INT_MAX);
  if (SSL_write_ex(ssl_, buf, n, &put) == 1) {
    write_wants_read_ = false;
    return {net::IoStatus::kOk, put, true};
  }
  switch (SSL_get_error(ssl_, 0)) {
    case SSL_ERROR_WANT_WRITE:
      write_wants_read_ = false;
      return {net::IoStatus::kBlocked, 0, false};
    case SSL_ERROR_WANT_READ:
      write_wants_read_ = true;
      return {net::IoStatus::kBlocked, 0, false};
    default:
      failed_ = true;
      log_failure("write");
      errno = EPIPE;
      return {net::IoStatus::kError, 0, false};
  }
}

std::string_view TlsStream::protocol() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string_view(reinterpret_cast<const char*>(p), len) : std::string_view();
}

std::string_view TlsStream::server_name() const {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name ? std::string_view(name) : std::string_view();
}

void TlsStream::shutdown() {
  if (!done_ || failed_ || !fd_) return;
  SSL_shutdown(ssl_);  // our close_notify, once; the peer's is not awaited
  ERR_clear_error();
}

std::string TlsStream::peer_subject() const {
  X509* peer = SSL_get0_peer_certificate(ssl_);
  if (!peer) return {};
  BIO* mem = BIO_new(BIO_s_mem());
  if (!mem) return {};
  X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(mem, &data);
  std::string out(data ? data : "", len > 0 ? static_cast<size_t>(len) : 0);
  BIO_free(mem);
  return out;
}

bool TlsStream::resumed() const {
  return SSL_session_reused(ssl_) == 1;
}

std::string_view TlsStream::version() const {
  return SSL_get_version(ssl_);
}

base::TlsVersion TlsStream::version_id() const {
  switch (SSL_version(ssl_)) {
    case TLS1_VERSION:
      return base::TlsVersion::kTls1_0;
    case TLS1_1_VERSION:
      return base::TlsVersion::kTls1_1;
    case TLS1_2_VERSION:
      return base::TlsVersion::kTls1_2;
    default:
      return base::TlsVersion::kTls1_3;  // the policies allow nothing else
  }
}

base::TlsAlpn TlsStream::alpn_id() const {
  std::string_view p = protocol();
  if (p == "h2") return base::TlsAlpn::kH2;
  if (p == "http/1.1") return base::TlsAlpn::kHttp11;
  return base::TlsAlpn::kNone;  // the server offers nothing else
}

bool TlsStream::sni_unmatched() const {
  std::string_view name = server_name();
  return !name.empty() && !context_->covers(name);
}

}  // namespace fulcrum::tls
