// Follower: this node's copy of the configuration keys of a shared store, kept current through a
// watch. Every change (a watch batch, a re-read after compaction, a local commit) moves the copy
// to a new revision and hands the whole key set to `apply` (the server compiles and publishes it);
// a re-read that finds the same keys at a newer revision hands them over too (nothing to publish,
// but the copy's revision moved).
//
// - The watch resumes by itself after etcd was unreachable (the store reconnects from the next
//   revision); when that revision was compacted meanwhile, everything is re-read and applied as
//   one change: the server publishes only the difference, so no connection is dropped.
// - hold()/release() bracket a local write: events that arrive meanwhile wait, and those at or
//   below the write's revision are dropped on release (the write already moved the copy there).
// [control]
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/store.h"

namespace fulcrum::net {
class EventLoop;
class Timer;
}  // namespace fulcrum::net

namespace fulcrum::cluster {

using KeyMap = std::map<std::string, std::string>;

class Follower {
 public:
  using ApplyFn = std::function<void(const KeyMap& kvs, int64_t revision)>;

  // `guard_key` (under `prefix`, or empty): the key every configuration transaction writes; it is
  // kept out of the copy, and its mod_revision is the copy's revision.
  Follower(net::EventLoop& loop, store::Store& store, std::string prefix, std::string guard_key,
           ApplyFn apply);
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  // The keys of a range read (the guard left out) and their revision: the guard's mod_revision,
  // the revision of the last configuration transaction (not etcd's header revision, which every
  // write anywhere moves: nodes that serve the same keys then say the same revision).
  static std::pair<KeyMap, int64_t> split(store::RangeResult read, const std::string& guard_key);

  // Starts watching after `read_revision` (the header revision of the read the copy came from),
  // from a copy already running (read at start, or the cache) at `revision`.
  void start(KeyMap kvs, int64_t revision, int64_t read_revision);
  // Starts from nothing: reads everything (again and again, backing off, while the store is
  // unreachable), applies it, then watches from the revision read.
  void begin();
  // A local write committed `ops` at `revision`: the copy moves there (apply is not called: the
  // writer publishes itself).
  void committed(const std::vector<store::Op>& ops, int64_t revision);
  // Reads everything again now and applies it (after a conflicting write); `done` afterwards.
  void refresh(std::function<void(base::Status)> done);
  void hold();
  void release();

  const KeyMap& kvs() const { return kvs_; }
  int64_t revision() const { return revision_; }
  // Whether the copy is known current: a read or a watch batch succeeded since the last failure.
  bool caught_up() const { return caught_up_; }

 private:
  void watch();
  void on_events(const std::vector<store::Event>& events);
  void on_lost();
  void deliver(const std::vector<store::Event>& events);
  // One put or delete into the copy.
  void change(store::Op::Kind kind, const std::string& key, const std::string& value);
  static void on_retry(void* self);

  net::EventLoop& loop_;
  store::Store& store_;
  std::string prefix_;
  std::string guard_key_;
  ApplyFn apply_;
  KeyMap kvs_;
  int64_t revision_ = 0;  // of the copy (see split())
  int64_t seen_ = 0;      // the newest store revision read or watched: the watch goes on after it
  store::WatchId watch_ = store::kNoWatch;
  int holds_ = 0;
  std::deque<std::vector<store::Event>> held_;
  bool caught_up_ = false;
  std::unique_ptr<net::Timer> retry_;
  int64_t retry_ms_ = 100;
};

}  // namespace fulcrum::cluster
