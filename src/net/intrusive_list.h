// A non-owning doubly linked list of objects that carry their own links, for "every live session
// of this worker": O(1) insert and erase, no allocation. An element derives from
// IntrusiveLink<T> and is in at most one list. [one thread]
#pragma once

#include <cstddef>

namespace fulcrum::net {

template <typename T>
class IntrusiveList;

template <typename T>
class IntrusiveLink {
 private:
  friend class IntrusiveList<T>;
  T* link_prev_ = nullptr;
  T* link_next_ = nullptr;
};

template <typename T>
class IntrusiveList {
 public:
  void push_front(T* item) {
    IntrusiveLink<T>& l = *item;
    l.link_next_ = head_;
    l.link_prev_ = nullptr;
    if (head_) static_cast<IntrusiveLink<T>&>(*head_).link_prev_ = item;
    head_ = item;
    ++size_;
  }
  void erase(T* item) {
    IntrusiveLink<T>& l = *item;
    if (l.link_prev_) {
      static_cast<IntrusiveLink<T>&>(*l.link_prev_).link_next_ = l.link_next_;
    } else if (head_ == item) {
      head_ = l.link_next_;
    }
    if (l.link_next_) static_cast<IntrusiveLink<T>&>(*l.link_next_).link_prev_ = l.link_prev_;
    l.link_prev_ = l.link_next_ = nullptr;
    --size_;
  }
  T* front() const { return head_; }
  size_t size() const { return size_; }
  // Calls f(T&) for each element; f may erase the element it is given, not others.
  template <typename F>
  void for_each(F&& f) {
    for (T* item = head_; item != nullptr;) {
      T* next = static_cast<IntrusiveLink<T>&>(*item).link_next_;
      f(*item);
      item = next;
    }
  }

 private:
  T* head_ = nullptr;
  size_t size_ = 0;
};

}  // namespace fulcrum::net
