// Changes as key sets: what turns one configuration's keys into another's, and how a whole
// document changed against one revision is carried onto a fresher one written meanwhile by another
// node. Pure (no store, no clock). [control]
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "cluster/follower.h"
#include "store/store.h"

namespace fulcrum::cluster {

// The puts and deletes that turn `before` into `after` (puts in key order, then deletes).
std::vector<store::Op> diff(const KeyMap& before, const KeyMap& after);

// A document turned `base` into `target`; meanwhile the store moved from `base` to `fresh`. When
// no key the document changes was changed in between, the result is `fresh` with the document's
// changes; otherwise an Error naming the first such key (message only: the caller answers 409).
base::Result<KeyMap> replay(const KeyMap& base, const KeyMap& target, const KeyMap& fresh);

}  // namespace fulcrum::cluster
