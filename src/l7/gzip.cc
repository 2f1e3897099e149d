#include "l7/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace fulcrum::l7 {

namespace {

// Below this many bytes compression does not pay for its header and CPU.
constexpr uint64_t kMinBytes = 256;
// Level 1, as NGINX's default gzip_comp_level: most of the saving for a fraction of the CPU.
constexpr int kLevel = 1;
constexpr int kGzipWindowBits = 15 + 16;  // 32 KiB window, gzip wrapper
constexpr int kMemLevel = 8;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "gzip" listed in Accept-Encoding with a q-value other than 0.
bool accepts_gzip(std::string_view value) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    std::string_view coding = trim(item.substr(0, item.find(';')));
    if (!iequals(coding, "gzip") && coding != "*") continue;
    size_t q = item.find("q=");
    if (q == std::string_view::npos) return true;
    std::string_view qv = trim(item.substr(q + 2));
    return !(qv == "0" || qv.starts_with("0.000") || qv == "0.0" || qv == "0.00");
  }
  return false;
}

bool compressible_type(std::string_view type) {
  type = trim(type.substr(0, type.find(';')));
  std::string lower(type);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.starts_with("text/") || lower == "application/json" ||
         lower == "application/javascript" || lower == "application/xml" ||
         lower == "image/svg+xml" || lower.ends_with("+json") || lower.ends_with("+xml");
}

}  // namespace

bool should_gzip(std::string_view accept_encoding, http::Method method,
                 const http::ResponseHead& head) {
  if (method == http::Method::kHead || head.status != 200 || head.no_body || head.upgrade) {
    return false;
  }
  if (!accepts_gzip(accept_encoding)) return false;
  if (head.content_length && *head.content_length < kMinBytes) return false;
  bool text = false;
  for (const http::Header& h : head.headers) {
    if (iequals(h.name, "content-encoding")) return false;  // already encoded
    if (iequals(h.name, "content-type")) text = compressible_type(h.value);
  }
  return text;
}

struct GzipEncoder::State {
  z_stream z{};
};

GzipEncoder::GzipEncoder() : state_(std::make_unique<State>()) {
  ok_ = deflateInit2(&state_->z, kLevel, Z_DEFLATED, kGzipWindowBits, kMemLevel,
                     Z_DEFAULT_STRATEGY) == Z_OK;
}

GzipEncoder::~GzipEncoder() {
  if (ok_) deflateEnd(&state_->z);
}

namespace {
void run(z_stream& z, std::string_view input, int flush, std::string* out) {
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  z.avail_in = static_cast<uInt>(input.size());
  char buf[16 * 1024];
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = deflate(&z, flush);
    out->append(buf, sizeof buf - z.avail_out);
    if (rc == Z_STREAM_END || rc == Z_STREAM_ERROR) break;
  } while (z.avail_out == 0 || z.avail_in > 0);
}
}  // namespace

void GzipEncoder::write(std::string_view input, std::string* out) {
  if (ok_ && !input.empty()) run(state_->z, input, Z_NO_FLUSH, out);
}

void GzipEncoder::finish(std::string* out) {
  if (ok_) run(state_->z, {}, Z_FINISH, out);
}

}  // namespace fulcrum::l7
