// Session ticket keys shared by every TLS context of the process, so that a ticket issued by one
// worker (or one listener generation) resumes on any other. The control thread rotates them
// (Server: every kTicketRotationS); workers encrypt with the current key and decrypt with the
// current or the previous one, without a lock.
//
// Three slots in a ring and an atomic index: rotate() writes the slot after the current one and
// only then publishes it, so the slot being written is neither the current nor the previous
// key that readers use. A reader would have to stall across two rotations (two hours) inside one
// handshake callback to see a slot change under it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace fulcrum::tls {

// How often the Server rotates the keys; tickets are announced with this lifetime, and a ticket
// stays decryptable for between one and two rotation periods.
constexpr int64_t kTicketRotationS = 3600;

struct TicketKey {
  std::array<uint8_t, 16> name{};      // sent in the ticket: picks the key on decryption
  std::array<uint8_t, 32> aes_key{};   // AES-256-CBC
  std::array<uint8_t, 32> hmac_key{};  // HMAC-SHA256

  // 80 bytes: name, AES key, HMAC key (how the cluster store shares a key).
  static constexpr size_t kBytes = 80;
  static TicketKey from_bytes(const std::string& bytes);  // all zero when not kBytes long
  std::string to_bytes() const;
  static TicketKey random();
};

class TicketKeys {
 public:
  // Starts with a fresh random current key (and a random "previous" one nobody holds tickets of).
  TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // A new random current key; the current one becomes the previous. [control]
  void rotate();
  // rotate() to a given key (another node of the cluster made it). [control]
  void rotate_to(const TicketKey& key);
  // Makes (current, previous) the keys, by one or two rotations, so that a handshake in flight
  // keeps the key it holds for as long as rotate() would. [control]
  void install(const TicketKey& current, const TicketKey& previous);
  // [any] The key new tickets are encrypted with.
  const TicketKey& current() const;
  // [any] The current or the previous key named `name`, or null (the ticket is too old or not
  // ours: a full handshake follows).
  const TicketKey* find(const uint8_t* name) const;

 private:
  std::array<TicketKey, 3> slots_;
  std::atomic<uint32_t> current_{0};
};

}  // namespace fulcrum::tls
