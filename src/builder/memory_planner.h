// Activation memory planning: every activation gets an offset in one arena such that tensors
// alive at the same step never overlap (liveness intervals are inclusive node positions).
// Greedy by size: the largest tensors are placed first, each at the lowest gap among the
// already placed tensors whose lifetimes intersect its own (best fit), which lands close to
// the peak-live lower bound on CNNs and transformers.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ramjet/status.h"

namespace ramjet::builder {

struct BufferRequest {
  size_t bytes = 0;
  int first = 0, last = 0;  // inclusive steps of the definition and the last use
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request
  size_t arena_bytes = 0;
  size_t sum_bytes = 0;        // every request in its own (aligned) buffer
  size_t peak_live_bytes = 0;  // max over steps of the (aligned) bytes alive: a lower bound
};

constexpr size_t kArenaAlignment = 256;

MemoryPlan planMemory(const std::vector<BufferRequest>& requests, size_t alignment = kArenaAlignment);
// Checks the invariants (alignment, inside the arena, no overlap of tensors alive together).
Status verifyMemoryPlan(const std::vector<BufferRequest>& requests, const MemoryPlan& plan,
                        size_t alignment = kArenaAlignment);

}  // namespace ramjet::builder
