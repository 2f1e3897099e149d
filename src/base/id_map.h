// IdMap: a map from integer ids to values kept as one vector sorted by id — for the streams of
// one HTTP/2 connection (at most a few hundred, opened in increasing id order, so an insert is
// almost always an append): no allocation per entry once the vector has grown, lookups by binary
// search over contiguous memory. Spares: a bounded stack of values kept for reuse, so that what a
// finished entry had allocated (strings, vectors) serves the next one.
// [any] — not thread-safe; the owner's thread only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace fulcrum::base {

template <class Id, class Value>
class IdMap {
 public:
  struct Entry {
    Id id;
    Value value;
  };

  // The value of `id`, or null.
  Value* find(Id id) {
    auto it = lower(id);
    return it != entries_.end() && it->id == id ? &it->value : nullptr;
  }

  // The value of `id`, inserted (value-initialized) when absent.
  Value& operator[](Id id) {
    auto it = lower(id);
    if (it == entries_.end() || it->id != id) it = entries_.insert(it, Entry{id, Value{}});
    return it->value;
  }

  // Removes `id` and gives its value back (a value-initialized one when absent).
  Value take(Id id) {
    auto it = lower(id);
    if (it == entries_.end() || it->id != id) return Value{};
    Value v = std::move(it->value);
    entries_.erase(it);
    return v;
  }

  bool erase(Id id) {
    auto it = lower(id);
    if (it == entries_.end() || it->id != id) return false;
    entries_.erase(it);
    return true;
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // In id order. Inserting or erasing invalidates iterators.
  auto begin() { return entries_.begin(); }
  auto end() { return entries_.end(); }

 private:
  typename std::vector<Entry>::iterator lower(Id id) {
    // Most lookups are for the newest ids: check the back before searching.
    if (entries_.empty() || entries_.back().id < id) return entries_.end();
    if (entries_.back().id == id) return entries_.end() - 1;
    return std::lower_bound(entries_.begin(), entries_.end(), id,
                            [](const Entry& e, Id key) { return e.id < key; });
  }

  std::vector<Entry> entries_;
};

// A bounded stack of objects kept for reuse. take() gives a kept one (as its last user left it:
// the caller resets what it needs) or a new one; give() keeps it while fewer than `limit` are
// kept, else frees it.
template <class T>
class Spares {
 public:
  explicit Spares(size_t limit) : limit_(limit) {}

  std::unique_ptr<T> take() {
    if (kept_.empty()) return std::make_unique<T>();
    std::unique_ptr<T> p = std::move(kept_.back());
    kept_.pop_back();
    return p;
  }
  void give(std::unique_ptr<T> p) {
    if (p && kept_.size() < limit_) kept_.push_back(std::move(p));
  }
  size_t size() const { return kept_.size(); }

 private:
  size_t limit_;
  std::vector<std::unique_ptr<T>> kept_;
};

// Empties `buffer` for its next user, and frees its storage when it grew beyond `keep` bytes (so
// that a spare holds only small buffers).
inline void clear_bounded(std::string* buffer, size_t keep) {
  if (buffer->capacity() > keep) std::string().swap(*buffer);
  buffer->clear();
}

}  // namespace fulcrum::base
