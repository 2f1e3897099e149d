// FlowTable: the UDP flows of one listener on one worker, keyed by the client's address, in
// least-recently-active order. Pure: no sockets, no clock (time is passed in), no logging.
//
// A flow lives in a slot (a small integer, stable while the flow lives) so that the owner can keep
// its per-flow state in arrays aligned with the slots. The table is bounded: at most
// `max_flows` flows; insert() refuses past that. Memory grows with the number of flows ever held
// at once (the high-water mark) and is never given back; between two high-water marks find,
// insert, touch and erase allocate nothing.
//
// Expiry is O(expired): flows are kept in a list ordered by last activity (touch() moves a flow to
// the newest end), so the idle ones are always at the oldest end.
// Not synchronised: one owner, one worker thread. [worker]
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "base/age_list.h"

namespace fulcrum::l4 {

// A client's address in 20 bytes: IPv4 addresses use the first 4 bytes of `ip`.
struct FlowKey {
  uint8_t ip[16] = {};
  uint16_t port = 0;  // host order
  uint8_t family = 0;
  uint8_t pad = 0;
  bool operator==(const FlowKey& o) const { return std::memcmp(this, &o, sizeof *this) == 0; }
};
static_assert(sizeof(FlowKey) == 20, "FlowKey is compared and hashed as raw bytes");

class FlowTable {
 public:
  static constexpr uint32_t kNone = base::kNoIndex;

  explicit FlowTable(size_t max_flows);

  // The slot of `key`'s flow, or kNone.
  uint32_t find(const FlowKey& key) const;
  // Adds a flow for `key` (which must not be in the table), active at `now_ms`. Returns its slot,
  // or kNone when the table holds max_flows() flows already.
  uint32_t insert(const FlowKey& key, int64_t now_ms);
  // The flow in `slot` saw a datagram at `now_ms` (times never go backwards).
  void touch(uint32_t slot, int64_t now_ms) {
    Entry& e = entries_[slot];
    if (e.last_ms == now_ms && newest_ == slot) return;
    e.last_ms = now_ms;
    if (newest_ == slot) return;
    unlink(slot);
    link_newest(slot);
  }
  // Removes the flow in `slot`; the slot may be handed out again by a later insert.
  void erase(uint32_t slot);

  // The least recently active flow (kNone when empty) and the time of its last activity: a flow
  // is idle since `idle_ms` when last_active_ms(oldest()) + idle_ms <= now. Erasing it makes the
  // next one the oldest, so expiry walks exactly the expired flows.
  uint32_t oldest() const { return oldest_; }
  int64_t last_active_ms(uint32_t slot) const { return entries_[slot].last_ms; }
  const FlowKey& key(uint32_t slot) const { return entries_[slot].key; }

  size_t size() const { return size_; }
  size_t max_flows() const { return max_flows_; }
  // Slots handed out so far (the high-water mark): every slot of a live flow is below it.
  size_t slots() const { return entries_.size(); }
  // Whether `slot` (below slots()) holds a live flow.
  bool used(uint32_t slot) const { return entries_[slot].used; }

 private:
  struct Entry {
    FlowKey key;
    int64_t last_ms = 0;
    uint32_t older = kNone;  // activity order; for a free entry, `newer` links the free list
    uint32_t newer = kNone;
    bool used = false;
  };

  size_t home(const FlowKey& key) const;
  size_t find_index(const FlowKey& key) const;  // index_ position, or SIZE_MAX
  void grow_index(size_t min_entries);
  void unlink(uint32_t e);
  void link_newest(uint32_t e);

  size_t max_flows_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> index_;  // open addressing, linear probing: entry or kNone; <= half full
  size_t mask_ = 0;
  size_t size_ = 0;
  uint32_t free_ = kNone;
  uint32_t oldest_ = kNone;
  uint32_t newest_ = kNone;
};

}  // namespace fulcrum::l4
