#include "builder/memory_planner.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace ramjet::builder {
namespace {
size_t alignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }
}  // namespace

MemoryPlan planMemory(const std::vector<BufferRequest>& reqs, size_t alignment) {
  MemoryPlan plan;
  const size_t n = reqs.size();
  plan.offsets.assign(n, 0);
  std::vector<size_t> size(n);
  int max_step = 0;
  for (size_t i = 0; i < n; ++i) {
    size[i] = alignUp(std::max<size_t>(reqs[i].bytes, 1), alignment);
    plan.sum_bytes += size[i];
    max_step = std::max(max_step, reqs[i].last);
  }
  // Peak live: difference array over steps.
  std::vector<long long> delta(static_cast<size_t>(max_step) + 2, 0);
  for (size_t i = 0; i < n; ++i) {
    delta[std::max(reqs[i].first, 0)] += static_cast<long long>(size[i]);
    delta[static_cast<size_t>(std::max(reqs[i].last, 0)) + 1] -= static_cast<long long>(size[i]);
  }
  long long live = 0;
  for (long long d : delta) {
    live += d;
    plan.peak_live_bytes = std::max(plan.peak_live_bytes, static_cast<size_t>(live));
  }

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (size[a] != size[b]) return size[a] > size[b];
    return reqs[a].first < reqs[b].first;
  });
  std::vector<size_t> placed;
  placed.reserve(n);
  std::vector<std::pair<size_t, size_t>> busy;  // (offset, end) of overlapping-in-time tensors
  for (size_t i : order) {
    busy.clear();
    for (size_t j : placed)
      if (reqs[j].first <= reqs[i].last && reqs[i].first <= reqs[j].last)
        busy.emplace_back(plan.offsets[j], plan.offsets[j] + size[j]);
    std::sort(busy.begin(), busy.end());
    size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
    for (const auto& [b, e] : busy) {
      if (b > cursor) {
        size_t gap = b - cursor;
        if (gap >= size[i] && gap < best_gap) {
          best = cursor;
          best_gap = gap;
        }
      }
      cursor = std::max(cursor, e);
    }
    if (best == SIZE_MAX) best = cursor;  // after everything alive at the same time
    plan.offsets[i] = best;
    plan.arena_bytes = std::max(plan.arena_bytes, best + size[i]);
    placed.push_back(i);
  }
  return plan;
}

Status verifyMemoryPlan(const std::vector<BufferRequest>& reqs, const MemoryPlan& plan, size_t alignment) {
  if (plan.offsets.size() != reqs.size())
    return makeError(StatusCode::kInternal, "memory plan has ", plan.offsets.size(), " offsets for ", reqs.size(),
                     " tensors");
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (plan.offsets[i] % alignment)
      return makeError(StatusCode::kInternal, "tensor ", i, " offset ", plan.offsets[i], " is not aligned");
    if (plan.offsets[i] + reqs[i].bytes > plan.arena_bytes)
      return makeError(StatusCode::kInternal, "tensor ", i, " ends past the arena");
    for (size_t j = i + 1; j < reqs.size(); ++j) {
      bool time = reqs[j].first <= reqs[i].last && reqs[i].first <= reqs[j].last;
      size_t ai = plan.offsets[i], bi = ai + std::max<size_t>(reqs[i].bytes, 1);
      size_t aj = plan.offsets[j], bj = aj + std::max<size_t>(reqs[j].bytes, 1);
      if (time && ai < bj && aj < bi)
        return makeError(StatusCode::kInternal, "tensors ", i, " and ", j, " are alive together and overlap");
    }
  }
  return Status::Ok();
}

}  // namespace ramjet::builder
