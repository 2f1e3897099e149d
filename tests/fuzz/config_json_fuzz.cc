// Fuzz target: decode_json() over arbitrary bytes. It must never crash, hang or throw, must report
// every failure as a configuration error with a message, and whatever it accepts must pass
// validate() again, come back equal from its canonical JSON (decode_json(encode_json(c)) == c,
// the canonical form being a fixed point) and survive the store layout (to_store/from_store).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/json.h"
#include "config/validate.h"

namespace {

void check_config_error(const fulcrum::base::Result<fulcrum::config::Config>& result) {
  const fulcrum::base::Error& error = result.error();
  // Internal errors mean an exception the decoder did not expect: a bug to find.
  if (error.message.empty() || error.source != fulcrum::base::ErrorSource::kConfig) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fulcrum::config;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = decode_json(text);
  if (!result.ok()) {
    check_config_error(result);
    return 0;
  }
  const Config& config = *result;
  if (!validate(config).ok()) std::abort();

  std::string json = encode_json(config, Secrets::kInclude);
  auto again = decode_json(json);
  if (!again.ok() || !(*again == config)) std::abort();
  if (encode_json(*again, Secrets::kInclude) != json) std::abort();

  auto kvs = to_store(config);
  auto stored = from_store(kvs);
  if (!stored.ok() || to_store(*stored) != kvs) std::abort();
  return 0;
}
