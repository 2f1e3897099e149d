#include "l4/udp_flow_table.h"

#include "base/hash.h"

namespace fulcrum::l4 {

namespace {
// Slot numbers are uint32_t with UINT32_MAX reserved as "none".
constexpr size_t kMaxSlots = UINT32_MAX - 1;
// The index starts with room for this many flows and doubles as the table fills.
constexpr size_t kInitialIndex = 64;
}  // namespace

FlowTable::FlowTable(size_t max_flows) : max_flows_(max_flows > kMaxSlots ? kMaxSlots : max_flows) {
  index_.assign(kInitialIndex, kNone);
  mask_ = kInitialIndex - 1;
}

size_t FlowTable::home(const FlowKey& key) const {
  return static_cast<size_t>(base::hash_bytes(&key, sizeof key)) & mask_;
}

size_t FlowTable::find_index(const FlowKey& key) const {
  for (size_t i = home(key);; i = (i + 1) & mask_) {
    const uint32_t e = index_[i];
    if (e == kNone) return SIZE_MAX;
    if (entries_[e].key == key) return i;
  }
}

uint32_t FlowTable::find(const FlowKey& key) const {
  size_t i = find_index(key);
  return i == SIZE_MAX ? kNone : index_[i];
}

// Keeps the index at most half full for `min_entries` entries: rebuilt (the only allocation
// besides the entries themselves) when the high-water mark crosses a power of two.
void FlowTable::grow_index(size_t min_entries) {
  if (2 * min_entries <= index_.size()) return;
  size_t n = index_.size();
  while (n < 2 * min_entries) n *= 2;
  index_.assign(n, kNone);
  mask_ = n - 1;
  for (uint32_t e = 0; e < entries_.size(); ++e) {
    if (!entries_[e].used) continue;
    size_t i = home(entries_[e].key);
    while (index_[i] != kNone) i = (i + 1) & mask_;
    index_[i] = e;
  }
}

uint32_t FlowTable::insert(const FlowKey& key, int64_t now_ms) {
  if (size_ >= max_flows_) return kNone;
  uint32_t e = free_;
  if (e != kNone) {
    free_ = entries_[e].newer;
  } else {
    grow_index(entries_.size() + 1);
    e = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  entries_[e] = Entry{key, now_ms, kNone, kNone, true};
  link_newest(e);
  size_t i = home(key);
  while (index_[i] != kNone) i = (i + 1) & mask_;
  index_[i] = e;
  ++size_;
  return e;
}

void FlowTable::erase(uint32_t slot) {
  Entry& entry = entries_[slot];
  if (!entry.used) return;
  size_t i = find_index(entry.key);
  // Backward-shift deletion: pull later members of the probe run into the hole so that lookups
  // never need tombstones.
  size_t hole = i;
  for (size_t j = (hole + 1) & mask_; index_[j] != kNone; j = (j + 1) & mask_) {
    size_t want = home(entries_[index_[j]].key);
    // Move j into the hole unless its home lies cyclically in (hole, j].
    bool stays = hole <= j ? (hole < want && want <= j) : (hole < want || want <= j);
    if (!stays) {
      index_[hole] = index_[j];
      hole = j;
    }
  }
  index_[hole] = kNone;
  unlink(slot);
  entry.used = false;
  entry.newer = free_;
  free_ = slot;
  --size_;
}

void FlowTable::unlink(uint32_t e) {
  base::age_unlink(entries_, oldest_, newest_, e);
}

void FlowTable::link_newest(uint32_t e) {
  base::age_link_newest(entries_, oldest_, newest_, e);
}

}  // namespace fulcrum::l4
