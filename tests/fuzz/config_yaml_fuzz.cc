// Fuzz target: decode_yaml() over arbitrary bytes. It must never crash, hang or throw, must report
// every failure as an error with a message, and whatever it accepts must pass validate() again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "config/validate.h"
#include "config/yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = fulcrum::config::decode_yaml(text, "/etc/fulcrum");
  if (result.ok()) {
    if (!fulcrum::config::validate(*result).ok()) std::abort();
  } else {
    const fulcrum::base::Error& error = result.error();
    // Internal errors mean an exception the decoder did not expect: a bug to find.
    if (error.message.empty() || error.source != fulcrum::base::ErrorSource::kConfig) std::abort();
  }
  return 0;
}
