// PersistenceTable: bounded session persistence ("stickiness"), mapping a 64-bit client key (a
// hash of the source IP) to a 64-bit backend id until an expiry time. Time is passed in; the table
// reads no clock. Pure.
//
// All memory is allocated by the constructor; lookup, put, erase and expire never allocate.
// An entry is live while now_ms < expires_ms; expired entries read as absent.
// Not synchronised: one owner, normally one worker thread. [worker]
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/age_list.h"

namespace fulcrum::balance {

class PersistenceTable {
 public:
  // Holds at most `max_entries` entries (0 makes a table that stores nothing).
  explicit PersistenceTable(size_t max_entries);

  // Backend id for `key`, or nullopt when absent or expired at `now_ms` (an expired entry found
  // here is removed).
  std::optional<uint64_t> lookup(uint64_t key, int64_t now_ms);
  // Inserts or replaces the entry for `key`; a replaced entry counts as newest. When the table is
  // full and `key` is new, the entry put least recently is evicted first: with one timeout for all
  // entries that is the one expiring soonest, usually already expired.
  void put(uint64_t key, uint64_t backend_id, int64_t expires_ms);
  // Removes the entry for `key` if present.
  void erase(uint64_t key);
  // Entries held, including expired ones not yet removed.
  size_t size() const { return size_; }
  size_t capacity() const { return entries_.size(); }
  // Incremental cleanup: examines at most `max_work` entry slots, continuing where the previous
  // call stopped, and removes those expired at `now_ms`. Returns the number removed.
  size_t expire(int64_t now_ms, size_t max_work);

 private:
  static constexpr uint32_t kNone = base::kNoIndex;

  struct Entry {
    uint64_t key = 0;
    uint64_t backend_id = 0;
    int64_t expires_ms = 0;
    uint32_t older = kNone;  // put order: neighbours in the list from oldest to newest
    uint32_t newer = kNone;  // for a free entry: next free entry
    bool used = false;
  };

  size_t home(uint64_t key) const;
  // Index slot holding `key`, or kNoSlot.
  size_t find(uint64_t key) const;
  void remove_slot(size_t slot);
  void unlink(uint32_t e);
  void link_newest(uint32_t e);

  static constexpr size_t kNoSlot = SIZE_MAX;

  std::vector<Entry> entries_;
  std::vector<uint32_t> index_;  // open addressing, linear probing: entry index or kNone
  size_t mask_ = 0;              // index_.size() - 1, a power of two minus one
  size_t size_ = 0;
  uint32_t free_ = kNone;  // head of the free entry list
  uint32_t oldest_ = kNone;
  uint32_t newest_ = kNone;
  size_t hand_ = 0;  // expire() resumes scanning entries_ here
};

}  // namespace fulcrum::balance
