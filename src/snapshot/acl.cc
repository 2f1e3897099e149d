#include "snapshot/acl.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace fulcrum::snapshot {

namespace {

// ::ffff:0:0/96, the IPv4-mapped IPv6 addresses (RFC 4291 §2.5.5.2).
constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_mapped(const uint8_t* ip16) {
  return std::memcmp(ip16, kMappedPrefix.data(), kMappedPrefix.size()) == 0;
}

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

uint64_t load_be64(const uint8_t* p) {
  return (uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}

// The host bits of a `length`-bit prefix in a `width`-bit word (width 32 or 64; length may lie
// outside 0..width: clamped).
template <typename T>
T host_mask(int length) {
  constexpr int kWidth = sizeof(T) * 8;
  if (length <= 0) return static_cast<T>(~T{0});
  if (length >= kWidth) return T{0};
  return static_cast<T>(~T{0} >> length);
}

template <typename Range, typename Key>
bool in_ranges(const std::vector<Range>& ranges, const Key& key) {
  // The last range starting at or below `key`: it holds `key` when it ends at or after it.
  auto it = std::upper_bound(ranges.begin(), ranges.end(), key,
                             [](const Key& k, const Range& r) { return k < r.first; });
  return it != ranges.begin() && !(std::prev(it)->last < key);
}

// Sorts `ranges` and merges the ones that overlap or touch. `next(last)` is last + 1, or nullopt
// when `last` is the family's highest address.
template <typename Range, typename Next>
void merge(std::vector<Range>& ranges, Next next) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  size_t out = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (out > 0) {
      Range& prev = ranges[out - 1];
      auto after = next(prev.last);
      if (!after || !(*after < ranges[i].first)) {  // overlapping or adjacent
        if (prev.last < ranges[i].last) prev.last = ranges[i].last;
        continue;
      }
    }
    ranges[out++] = ranges[i];
  }
  ranges.resize(out);
  ranges.shrink_to_fit();
}

}  // namespace

std::optional<AclPrefix> AclPrefix::parse(std::string_view cidr) {
  size_t slash = cidr.find('/');
  std::string_view ip = cidr.substr(0, slash);
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char text[INET6_ADDRSTRLEN] = {};
  std::memcpy(text, ip.data(), ip.size());
  AclPrefix out;
  if (inet_pton(AF_INET, text, out.bytes.data()) == 1) {
    out.v6 = false;
  } else if (inet_pton(AF_INET6, text, out.bytes.data()) == 1) {
    out.v6 = true;
  } else {
    return std::nullopt;
  }
  uint32_t bits = out.v6 ? 128 : 32;
  out.length = bits;
  if (slash != std::string_view::npos) {
    std::string_view digits = cidr.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    uint32_t n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + static_cast<uint32_t>(c - '0');
    }
    if (n > bits) return std::nullopt;
    out.length = n;
  }
  return out;
}

AclMatcher::AclMatcher(const std::vector<AclPrefix>& prefixes) {
  for (const AclPrefix& p : prefixes) {
    bool v4 = !p.v6;
    uint32_t v4_ip = load_be32(p.bytes.data());
    int length = static_cast<int>(p.length);
    if (p.v6 && is_mapped(p.bytes.data()) && p.length >= 96) {
      v4 = true;  // ::ffff:a.b.c.d/n is a.b.c.d/(n-96)
      v4_ip = load_be32(p.bytes.data() + 12);
      length -= 96;
    }
    if (v4) {
      uint32_t host = host_mask<uint32_t>(length);
      v4_.push_back({v4_ip & ~host, v4_ip | host});
      continue;
    }
    U128 ip{load_be64(p.bytes.data()), load_be64(p.bytes.data() + 8)};
    uint64_t host_hi = host_mask<uint64_t>(length);
    uint64_t host_lo = host_mask<uint64_t>(length - 64);
    v6_.push_back({{ip.hi & ~host_hi, ip.lo & ~host_lo}, {ip.hi | host_hi, ip.lo | host_lo}});
  }
  merge(v4_, [](uint32_t last) -> std::optional<uint32_t> {
    if (last == UINT32_MAX) return std::nullopt;
    return last + 1;
  });
  merge(v6_, [](const U128& last) -> std::optional<U128> {
    if (last.lo != UINT64_MAX) return U128{last.hi, last.lo + 1};
    if (last.hi == UINT64_MAX) return std::nullopt;
    return U128{last.hi + 1, 0};
  });
}

bool AclMatcher::contains_v4(uint32_t ip) const {
  return in_ranges(v4_, ip);
}

bool AclMatcher::contains_v6(const uint8_t* ip16) const {
  if (is_mapped(ip16)) return contains_v4(load_be32(ip16 + 12));
  return in_ranges(v6_, U128{load_be64(ip16), load_be64(ip16 + 8)});
}

bool AclMatcher::contains(const net::SocketAddress& client) const {
  if (client.family() == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(client.sa());
    return contains_v4(ntohl(sin->sin_addr.s_addr));
  }
  if (client.family() == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(client.sa());
    return contains_v6(sin6->sin6_addr.s6_addr);
  }
  return false;
}

}  // namespace fulcrum::snapshot
