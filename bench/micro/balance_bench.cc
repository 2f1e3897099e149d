// Micro-benchmarks for the balance module: Cursor::pick per scheduler at 10 and 1000 hosts, and
// Maglev table builds. Run: build/release/bench/micro/balance_bench
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "balance/balancer.h"

namespace fulcrum::balance {
namespace {

// Weights 1..4 so that wrr and wlc do real work; sized by the benchmark's first argument.
std::vector<uint32_t> bench_weights(size_t hosts) {
  std::vector<uint32_t> weights(hosts);
  for (size_t i = 0; i < hosts; ++i) weights[i] = static_cast<uint32_t>(1 + i % 4);
  return weights;
}

void bm_pick(benchmark::State& state, Scheduler scheduler) {
  const auto hosts = static_cast<size_t>(state.range(0));
  const auto weights = bench_weights(hosts);
  const auto table = Table::build(scheduler, weights);
  Cursor cursor(*table);

  // 4096 precomputed keys (a power of two, indexed by mask) so key generation stays out of the
  // measurement while still missing caches the way real flows do.
  std::mt19937_64 rng(1);
  std::vector<uint64_t> keys(4096);
  for (auto& k : keys) k = rng();
  std::vector<uint32_t> active(hosts);
  for (auto& a : active) a = static_cast<uint32_t>(rng() % 100);

  PickRequest req;
  req.active = active;
  size_t i = 0;
  for (auto _ : state) {
    req.key = keys[i++ & (keys.size() - 1)];
    benchmark::DoNotOptimize(cursor.pick(*table, req));
  }
  state.SetItemsProcessed(state.iterations());
}

void bm_pick_with_skip(benchmark::State& state, Scheduler scheduler) {
  const auto hosts = static_cast<size_t>(state.range(0));
  const auto weights = bench_weights(hosts);
  const auto table = Table::build(scheduler, weights);
  Cursor cursor(*table);
  HostMask skip;
  skip.reset(hosts);
  for (size_t h = 0; h < hosts; h += 10) skip.set(static_cast<uint32_t>(h));  // a tenth ejected

  std::mt19937_64 rng(2);
  std::vector<uint64_t> keys(4096);
  for (auto& k : keys) k = rng();
  PickRequest req;
  req.skip = &skip;
  size_t i = 0;
  for (auto _ : state) {
    req.key = keys[i++ & (keys.size() - 1)];
    benchmark::DoNotOptimize(cursor.pick(*table, req));
  }
  state.SetItemsProcessed(state.iterations());
}

void bm_maglev_build(benchmark::State& state) {
  const auto weights = std::vector<uint32_t>(static_cast<size_t>(state.range(0)), 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(Table::build(Scheduler::kSch, weights));
  }
}

void bm_maglev_build_weighted(benchmark::State& state) {
  const auto weights = bench_weights(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(Table::build(Scheduler::kSch, weights));
  }
}

BENCHMARK_CAPTURE(bm_pick, wrr, Scheduler::kWrr)->Arg(10)->Arg(1000);
BENCHMARK_CAPTURE(bm_pick, rr, Scheduler::kRr)->Arg(10)->Arg(1000);
BENCHMARK_CAPTURE(bm_pick, wlc, Scheduler::kWlc)->Arg(10)->Arg(1000);
BENCHMARK_CAPTURE(bm_pick, sch, Scheduler::kSch)->Arg(10)->Arg(1000);
BENCHMARK_CAPTURE(bm_pick, tch, Scheduler::kTch)->Arg(10)->Arg(1000);
BENCHMARK_CAPTURE(bm_pick_with_skip, wrr, Scheduler::kWrr)->Arg(10)->Arg(1000);
BENCHMARK_CAPTURE(bm_pick_with_skip, sch, Scheduler::kSch)->Arg(10)->Arg(1000);
BENCHMARK(bm_maglev_build)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(bm_maglev_build_weighted)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fulcrum::balance

BENCHMARK_MAIN();
