// Streaming gzip compression of response bodies (zlib; the only place Fulcrum's data plane uses
// it), and the rules for when to compress. [worker]
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "http/message.h"

namespace fulcrum::l7 {

// Whether a response may be compressed for a client whose request carried `accept_encoding`:
// the client accepts gzip, the response is a 200 with a body of a text-like type
// (text/*, JSON, JavaScript, XML, SVG), not already encoded, and not known to be tiny.
bool should_gzip(std::string_view accept_encoding, http::Method method,
                 const http::ResponseHead& head);

class GzipEncoder {
 public:
  GzipEncoder();
  ~GzipEncoder();
  GzipEncoder(const GzipEncoder&) = delete;
  GzipEncoder& operator=(const GzipEncoder&) = delete;

  bool ok() const { return ok_; }
  // Compresses `input`, appending whatever output is ready to `out`.
  void write(std::string_view input, std::string* out);
  // Ends the stream, appending the rest (trailer included) to `out`.
  void finish(std::string* out);

 private:
  struct State;
  std::unique_ptr<State> state_;
  bool ok_ = false;
};

}  // namespace fulcrum::l7
