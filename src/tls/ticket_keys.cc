#include "tls/ticket_keys.h"

#include <openssl/rand.h>

#include <cstring>

#include "base/log.h"

namespace fulcrum::tls {

namespace {
void randomize(TicketKey& k) {
  if (RAND_bytes(k.name.data(), static_cast<int>(k.name.size())) != 1 ||
      RAND_bytes(k.aes_key.data(), static_cast<int>(k.aes_key.size())) != 1 ||
      RAND_bytes(k.hmac_key.data(), static_cast<int>(k.hmac_key.size())) != 1) {
    // The system's random source failed: tickets would be forgeable. Fatal by design.
    FLOG_ERROR("tls: RAND_bytes failed; cannot make session ticket keys");
    std::abort();
  }
}
}  // namespace

TicketKeys::TicketKeys() {
  randomize(slots_[0]);
  randomize(slots_[2]);  // the "previous" of slot 0
}

void TicketKeys::rotate() {
  uint32_t next = (current_.load(std::memory_order_relaxed) + 1) % 3;
  randomize(slots_[next]);
  current_.store(next, std::memory_order_release);
}

const TicketKey& TicketKeys::current() const {
  return slots_[current_.load(std::memory_order_acquire)];
}

const TicketKey* TicketKeys::find(const uint8_t* name) const {
  uint32_t cur = current_.load(std::memory_order_acquire);
  for (uint32_t i : {cur, (cur + 2) % 3}) {
    if (std::memcmp(slots_[i].name.data(), name, slots_[i].name.size()) == 0) return &slots_[i];
  }
  return nullptr;
}

}  // namespace fulcrum::tls
