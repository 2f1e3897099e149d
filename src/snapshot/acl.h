// Access control lists, compiled once per generation (config/compile) into a matcher that the
// data plane asks "is this client address listed?" on every new connection or flow. Immutable
// once built; lookups allocate nothing and take O(log n) compares. [any]
//
// Address families are kept apart, as cloud load balancers do: an IPv4 entry matches IPv4
// clients, an IPv6 entry matches IPv6 clients. Two bridges between them:
//  - an IPv4-mapped client address (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4
//    peer) is looked up as the IPv4 address a.b.c.d;
//  - an entry written in the mapped range (::ffff:10.0.0.0/104) is the IPv4 entry 10.0.0.0/8.
// So ::/0 covers every IPv6 client but no IPv4 one; list 0.0.0.0/0 as well to cover everyone.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.h"

namespace fulcrum::snapshot {

// One entry of an ACL: a network and its prefix length.
struct AclPrefix {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // network order; the first 4 for IPv4
  uint32_t length = 0;              // 0–32 for IPv4, 0–128 for IPv6

  // "10.0.0.0/8", "2001:db8::/32", or one address ("10.1.2.3" is /32, "::1" is /128). Bits below
  // the prefix length are ignored. nullopt for anything else (no zone ids, no brackets).
  static std::optional<AclPrefix> parse(std::string_view cidr);
};

class AclMatcher {
 public:
  // Matches nothing.
  AclMatcher() = default;
  // Normalises the prefixes (mapped IPv6 entries become IPv4 ones) and merges overlapping and
  // adjacent ones into sorted, disjoint address ranges.
  explicit AclMatcher(const std::vector<AclPrefix>& prefixes);

  // Whether `client`'s address lies in some entry (its port is ignored). An address of another
  // family (none: a default SocketAddress) is never listed.
  bool contains(const net::SocketAddress& client) const;
  // The same for a raw address: IPv4 in host order, IPv6 as 16 bytes in network order (a mapped
  // one is looked up as IPv4).
  bool contains_v4(uint32_t ip) const;
  bool contains_v6(const uint8_t* ip16) const;

  // No entry at all: a white list that allows nobody, a black list that refuses nobody.
  bool empty() const { return v4_.empty() && v6_.empty(); }
  // Disjoint ranges left after merging (for tests and logs).
  size_t v4_ranges() const { return v4_.size(); }
  size_t v6_ranges() const { return v6_.size(); }

 private:
  struct U128 {
    uint64_t hi = 0;
    uint64_t lo = 0;
    auto operator<=>(const U128&) const = default;
  };
  struct V4Range {
    uint32_t first;
    uint32_t last;  // inclusive
  };
  struct V6Range {
    U128 first;
    U128 last;  // inclusive
  };

  std::vector<V4Range> v4_;  // sorted by first, disjoint, not adjacent
  std::vector<V6Range> v6_;
};

// What one listener does with a client address: the access control of its `acl` setting.
struct AccessControl {
  enum class Type : uint8_t {
    kNone,   // every client is allowed (no ACL, or an empty white list on an L7 listener)
    kWhite,  // only listed clients are allowed
    kBlack,  // listed clients are refused
  };
  Type type = Type::kNone;
  std::string acl;                            // the ACL's name, for logs
  std::shared_ptr<const AclMatcher> matcher;  // set unless kNone; shared by listeners

  // Whether a new connection (or flow) from `client` may proceed. [any]
  bool allows(const net::SocketAddress& client) const {
    switch (type) {
      case Type::kNone:
        return true;
      case Type::kWhite:
        return matcher->contains(client);
      case Type::kBlack:
        return !matcher->contains(client);
    }
    return true;
  }
};

}  // namespace fulcrum::snapshot
