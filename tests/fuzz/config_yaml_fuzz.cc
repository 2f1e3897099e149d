// Fuzz target: decode_yaml() over arbitrary bytes. It must never crash, hang or throw, must report
// every failure as an error with a message, and whatever it accepts must pass validate() again and
// come back equal from its JSON form (config/json.h: decode_json(encode_json(c)) == c).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/json.h"
#include "config/validate.h"
#include "config/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = fulcrum::config::decode_yaml(text, "/etc/fulcrum");
  if (result.ok()) {
    if (!fulcrum::config::validate(*result).ok()) std::abort();
    auto json = fulcrum::config::decode_json(
        fulcrum::config::encode_json(*result, fulcrum::config::Secrets::kInclude));
    if (!json.ok() || !(*json == *result)) std::abort();
  } else {
    const fulcrum::base::Error& error = result.error();
    // Internal errors mean an exception the decoder did not expect: a bug to find.
    if (error.message.empty() || error.source != fulcrum::base::ErrorSource::kConfig) std::abort();
  }
  return 0;
}
