#include "cluster/changes.h"

namespace fulcrum::cluster {

std::vector<store::Op> diff(const KeyMap& before, const KeyMap& after) {
  std::vector<store::Op> ops;
  for (const auto& [key, value] : after) {
    auto it = before.find(key);
    if (it == before.end() || it->second != value) ops.push_back(store::Op::put(key, value));
  }
  for (const auto& [key, value] : before) {
    if (!after.count(key)) ops.push_back(store::Op::del(key));
  }
  return ops;
}

base::Result<KeyMap> replay(const KeyMap& base, const KeyMap& target, const KeyMap& fresh) {
  std::vector<store::Op> mine = diff(base, target);
  for (const auto& op : mine) {
    auto was = base.find(op.key);
    auto now = fresh.find(op.key);
    bool changed = (was == base.end()) != (now == fresh.end()) ||
                   (was != base.end() && was->second != now->second);
    if (changed) {
      return base::Error::internal(op.key +
                                   " was changed by another writer since this document was read; "
                                   "read it again");
    }
  }
  KeyMap merged = fresh;
  for (const auto& op : mine) {
    if (op.kind == store::Op::Kind::kPut) {
      merged[op.key] = op.value;
    } else {
      merged.erase(op.key);
    }
  }
  return merged;
}

}  // namespace fulcrum::cluster
