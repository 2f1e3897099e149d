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

void TicketKeys::rotate_to(const TicketKey& key) {
  uint32_t next = (current_.load(std::memory_order_relaxed) + 1) % 3;
  slots_[next] = key;
  current_.store(next, std::memory_order_release);
}

void TicketKeys::install(const TicketKey& current, const TicketKey& previous) {
  const TicketKey& now = this->current();
  if (std::memcmp(now.name.data(), current.name.data(), now.name.size()) == 0) return;
  if (std::memcmp(now.name.data(), previous.name.data(), now.name.size()) == 0) {
    rotate_to(current);  // the usual case: one rotation by another node
    return;
  }
  // Two rotations in a row: the previous key first, then the current one.
  rotate_to(previous);
  rotate_to(current);
}

TicketKey TicketKey::from_bytes(const std::string& bytes) {
  TicketKey k;
  if (bytes.size() != kBytes) return k;
  std::memcpy(k.name.data(), bytes.data(), 16);
  std::memcpy(k.aes_key.data(), bytes.data() + 16, 32);
  std::memcpy(k.hmac_key.data(), bytes.data() + 48, 32);
  return k;
}

std::string TicketKey::to_bytes() const {
  std::string out(kBytes, '\0');
  std::memcpy(out.data(), name.data(), 16);
  std::memcpy(out.data() + 16, aes_key.data(), 32);
  std::memcpy(out.data() + 48, hmac_key.data(), 32);
  return out;
}

TicketKey TicketKey::random() {
  TicketKey k;
  randomize(k);
  return k;
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
