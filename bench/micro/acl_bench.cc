// Micro-benchmarks for snapshot::AclMatcher: one lookup by client address (IPv4, IPv4-mapped
// IPv6, IPv6) in lists of 1, 10 and 300 entries (the largest PRODUCT.md allows), and the build.
// Run: build/release/bench/micro/acl_bench
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "net/address.h"
#include "snapshot/acl.h"

namespace fulcrum::snapshot {
namespace {

// `n` disjoint-ish prefixes, /16 to /32 for IPv4 and /32 to /128 for IPv6, from a fixed seed.
std::vector<AclPrefix> random_prefixes(size_t n, bool v6) {
  std::mt19937_64 rng(42);
  std::vector<AclPrefix> out(n);
  for (AclPrefix& p : out) {
    p.v6 = v6;
    for (auto& b : p.bytes) b = static_cast<uint8_t>(rng());
    if (!v6) p.bytes[0] = 10;
    p.length = v6 ? 32 + static_cast<uint32_t>(rng() % 97) : 16 + static_cast<uint32_t>(rng() % 17);
  }
  return out;
}

// 4096 client addresses (a power of two, indexed by mask), half of them inside 10.0.0.0/8 so that
// both hits and misses are measured.
std::vector<net::SocketAddress> clients(bool v6, bool mapped) {
  std::mt19937_64 rng(7);
  std::vector<net::SocketAddress> out;
  out.reserve(4096);
  for (size_t i = 0; i < 4096; ++i) {
    sockaddr_storage ss{};
    socklen_t len;
    if (!v6 && !mapped) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
      sin->sin_family = AF_INET;
      uint32_t ip = static_cast<uint32_t>(rng());
      if (i % 2) ip = (10u << 24) | (ip & 0x00ffffffu);
      sin->sin_addr.s_addr = htonl(ip);
      len = sizeof *sin;
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
      sin6->sin6_family = AF_INET6;
      for (auto& b : sin6->sin6_addr.s6_addr) b = static_cast<uint8_t>(rng());
      if (mapped) {
        for (int k = 0; k < 10; ++k) sin6->sin6_addr.s6_addr[k] = 0;
        sin6->sin6_addr.s6_addr[10] = sin6->sin6_addr.s6_addr[11] = 0xff;
        if (i % 2) sin6->sin6_addr.s6_addr[12] = 10;
      }
      len = sizeof *sin6;
    }
    out.push_back(net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len));
  }
  return out;
}

void bm_contains(benchmark::State& state, bool v6, bool mapped) {
  AclMatcher m(random_prefixes(static_cast<size_t>(state.range(0)), v6));
  auto addrs = clients(v6, mapped);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(m.contains(addrs[i++ & (addrs.size() - 1)]));
  }
  state.SetItemsProcessed(state.iterations());
}

void bm_build(benchmark::State& state) {
  auto prefixes = random_prefixes(static_cast<size_t>(state.range(0)), false);
  for (auto _ : state) {
    AclMatcher m(prefixes);
    benchmark::DoNotOptimize(m.v4_ranges());
  }
}

BENCHMARK_CAPTURE(bm_contains, v4, false, false)->Arg(1)->Arg(10)->Arg(300);
BENCHMARK_CAPTURE(bm_contains, v4_mapped, false, true)->Arg(1)->Arg(10)->Arg(300);
BENCHMARK_CAPTURE(bm_contains, v6, true, false)->Arg(1)->Arg(10)->Arg(300);
BENCHMARK(bm_build)->Arg(300);

}  // namespace
}  // namespace fulcrum::snapshot

BENCHMARK_MAIN();
