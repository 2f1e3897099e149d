#include "balance/persistence.h"

#include "base/hash.h"

namespace fulcrum::balance {
namespace {

// Entry indexes are uint32_t with UINT32_MAX reserved as "none".
constexpr size_t kMaxEntries = UINT32_MAX - 1;

}  // namespace

PersistenceTable::PersistenceTable(size_t max_entries) {
  if (max_entries > kMaxEntries) max_entries = kMaxEntries;
  entries_.resize(max_entries);
  for (size_t i = 0; i < max_entries; ++i) {
    entries_[i].newer = i + 1 < max_entries ? static_cast<uint32_t>(i + 1) : kNone;
  }
  free_ = max_entries > 0 ? 0 : kNone;
  // At most half the index is occupied, which keeps linear probe runs short.
  size_t slots = 2;
  while (slots < 2 * max_entries) slots *= 2;
  index_.assign(slots, kNone);
  mask_ = slots - 1;
}

size_t PersistenceTable::home(uint64_t key) const {
  return static_cast<size_t>(base::mix64(key)) & mask_;
}

size_t PersistenceTable::find(uint64_t key) const {
  for (size_t slot = home(key);; slot = (slot + 1) & mask_) {
    const uint32_t e = index_[slot];
    if (e == kNone) return kNoSlot;
    if (entries_[e].key == key) return slot;
  }
}

std::optional<uint64_t> PersistenceTable::lookup(uint64_t key, int64_t now_ms) {
  const size_t slot = find(key);
  if (slot == kNoSlot) return std::nullopt;
  const Entry& entry = entries_[index_[slot]];
  if (now_ms >= entry.expires_ms) {
    remove_slot(slot);
    return std::nullopt;
  }
  return entry.backend_id;
}

void PersistenceTable::put(uint64_t key, uint64_t backend_id, int64_t expires_ms) {
  if (entries_.empty()) return;
  size_t slot = find(key);
  if (slot != kNoSlot) {
    const uint32_t e = index_[slot];
    entries_[e].backend_id = backend_id;
    entries_[e].expires_ms = expires_ms;
    unlink(e);
    link_newest(e);
    return;
  }
  if (free_ == kNone) remove_slot(find(entries_[oldest_].key));
  const uint32_t e = free_;
  free_ = entries_[e].newer;
  entries_[e] = Entry{key, backend_id, expires_ms, kNone, kNone, true};
  link_newest(e);
  slot = home(key);
  while (index_[slot] != kNone) slot = (slot + 1) & mask_;
  index_[slot] = e;
  ++size_;
}

void PersistenceTable::erase(uint64_t key) {
  const size_t slot = find(key);
  if (slot != kNoSlot) remove_slot(slot);
}

size_t PersistenceTable::expire(int64_t now_ms, size_t max_work) {
  const size_t n = entries_.size();
  if (n == 0) return 0;
  if (max_work > n) max_work = n;
  size_t removed = 0;
  for (size_t work = 0; work < max_work; ++work) {
    const Entry& entry = entries_[hand_];
    if (entry.used && now_ms >= entry.expires_ms) {
      remove_slot(find(entry.key));
      ++removed;
    }
    hand_ = hand_ + 1 == n ? 0 : hand_ + 1;
  }
  return removed;
}

void PersistenceTable::remove_slot(size_t slot) {
  const uint32_t e = index_[slot];
  unlink(e);
  entries_[e].used = false;
  entries_[e].newer = free_;
  free_ = e;
  --size_;
  // Backward-shift deletion: pull later members of the probe run into the hole so that lookups
  // never need tombstones. An entry may move to the hole when its home is not in (hole, slot].
  size_t hole = slot;
  for (size_t next = (hole + 1) & mask_; index_[next] != kNone; next = (next + 1) & mask_) {
    const size_t want = home(entries_[index_[next]].key);
    if (((next - want) & mask_) >= ((next - hole) & mask_)) {
      index_[hole] = index_[next];
      hole = next;
    }
  }
  index_[hole] = kNone;
}

void PersistenceTable::unlink(uint32_t e) {
  base::age_unlink(entries_, oldest_, newest_, e);
}

void PersistenceTable::link_newest(uint32_t e) {
  base::age_link_newest(entries_, oldest_, newest_, e);
}

}  // namespace fulcrum::balance
