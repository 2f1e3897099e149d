#include "balance/balancer.h"

#include "balance/maglev.h"
#include "balance/rr.h"
#include "balance/wlc.h"
#include "balance/wrr.h"

namespace fulcrum::balance {
namespace {

static_assert(kNoHost == UINT32_MAX, "the algorithm files return UINT32_MAX for no host");

struct SchedulerName {
  Scheduler scheduler;
  std::string_view name;
};
constexpr SchedulerName kNames[] = {
    {Scheduler::kWrr, "wrr"}, {Scheduler::kRr, "rr"},   {Scheduler::kWlc, "wlc"},
    {Scheduler::kSch, "sch"}, {Scheduler::kTch, "tch"},
};

bool is_hashing(Scheduler s) {
  return s == Scheduler::kSch || s == Scheduler::kTch;
}

}  // namespace

std::optional<Scheduler> parse_scheduler(std::string_view name) {
  for (const auto& entry : kNames) {
    if (entry.name == name) return entry.scheduler;
  }
  return std::nullopt;
}

std::string_view scheduler_name(Scheduler s) {
  for (const auto& entry : kNames) {
    if (entry.scheduler == s) return entry.name;
  }
  return "unknown";
}

std::shared_ptr<const Table> Table::build(Scheduler s, std::span<const uint32_t> weights) {
  return build(s, weights, {});
}

std::shared_ptr<const Table> Table::build(Scheduler s, std::span<const uint32_t> weights,
                                          std::span<const uint64_t> host_ids) {
  std::shared_ptr<Table> table(new Table());
  table->scheduler_ = s;
  table->weights_.assign(weights.begin(), weights.end());
  for (uint32_t w : weights) {
    table->total_weight_ += w;
    if (w != 0) ++table->eligible_;
  }
  if (is_hashing(s)) {
    table->lookup_ = maglev::build(weights, host_ids, maglev::table_size_for(weights.size()));
  }
  return table;
}

Cursor::Cursor(const Table& table, uint32_t start)
    : current_(table.scheduler() == Scheduler::kWrr ? table.size() : 0),
      next_(table.size() == 0 ? 0 : static_cast<uint32_t>(start % table.size())) {}

// The dispatch table: each scheduler's pick lives in its own file and sees only what it needs.
uint32_t Cursor::pick(const Table& table, const PickRequest& req) {
  switch (table.scheduler()) {
    case Scheduler::kWrr:
      if (current_.size() != table.size()) current_.assign(table.size(), 0);
      return wrr::pick(table.weights(), current_, req.skip);
    case Scheduler::kRr:
      return rr::pick(table.weights(), next_, req.skip);
    case Scheduler::kWlc:
      return wlc::pick(table.weights(), req.active, next_, req.skip);
    case Scheduler::kSch:
    case Scheduler::kTch:
      return maglev::pick(table.maglev_lookup(), table.weights(), req.key, req.skip);
  }
  return kNoHost;
}

}  // namespace fulcrum::balance
