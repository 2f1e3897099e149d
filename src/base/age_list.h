// An age-ordered doubly linked list threaded through the entries of a vector by index (no
// allocation, no pointers to invalidate): each entry has `uint32_t older, newer`, the list owner
// keeps the oldest and newest index, kNoIndex ends the list. The persistence table
// (balance/persistence) and the UDP flow table (l4/udp_flow_table) keep their LRU order with it.
// [any] — not thread-safe; the owner's thread only.
#pragma once

#include <cstdint>

namespace fulcrum::base {

inline constexpr uint32_t kNoIndex = UINT32_MAX;

// Takes entry `e` out of the list; its links are reset.
template <class Entries>
void age_unlink(Entries& entries, uint32_t& oldest, uint32_t& newest, uint32_t e) {
  auto& entry = entries[e];
  if (entry.older != kNoIndex) {
    entries[entry.older].newer = entry.newer;
  } else {
    oldest = entry.newer;
  }
  if (entry.newer != kNoIndex) {
    entries[entry.newer].older = entry.older;
  } else {
    newest = entry.older;
  }
  entry.older = kNoIndex;
  entry.newer = kNoIndex;
}

// Puts entry `e` (not in the list) at the newest end.
template <class Entries>
void age_link_newest(Entries& entries, uint32_t& oldest, uint32_t& newest, uint32_t e) {
  auto& entry = entries[e];
  entry.older = newest;
  entry.newer = kNoIndex;
  if (newest != kNoIndex) {
    entries[newest].newer = e;
  } else {
    oldest = e;
  }
  newest = e;
}

}  // namespace fulcrum::base
