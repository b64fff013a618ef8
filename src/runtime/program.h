// The executable view of a lowered graph, shared by the builder and the runtime: values
// indexed, nodes in execution order with their placement; shape resolution for one input
// signature (host nodes evaluated on the way) and the activation layout in the arena.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"
#include "builder/memory_planner.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

namespace ramjet::runtime {

using backend::Placement;

struct Program {
  const Graph* graph = nullptr;
  std::vector<const Node*> order;
  std::vector<Placement> placement;  // per position in `order`
  std::vector<const Value*> values;  // graph->values() order
  std::unordered_map<const Value*, int> index;

  int indexOf(const Value* v) const {
    auto it = index.find(v);
    return it == index.end() ? -1 : it->second;
  }
  // Checks that `order` lists every node once, producers before consumers.
  static Result<Program> make(const Graph& g, std::vector<const Node*> order, std::vector<Placement> placement);
};

// One value under one input signature.
struct ValueSlot {
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;
  bool known = false;                  // dims known before running
  std::shared_ptr<const Tensor> host;  // value known on the host before running
};

struct Resolved {
  std::vector<ValueSlot> values;  // per value index
  bool dynamic = false;           // some shape is only known while running (NonZero & co.)
  std::string dynamic_reason;
};

// Dims of every value for these input dims (one entry per graph input, in order); runs the
// host-placed nodes (shape arithmetic) with the reference kernels.
Result<Resolved> resolveShapes(const Program& p, const std::vector<std::vector<int64_t>>& input_dims);

struct ActivationLayout {
  std::vector<int64_t> offset;      // per value: byte offset in the arena, -1 when not in it
  std::vector<int> alias_root;      // per value: the value whose buffer an alias output shares
  std::vector<bool> upload;         // per value: host value a device node reads (copied per signature)
  std::vector<builder::BufferRequest> requests;
  std::vector<int> request_value;   // value index of each request
  builder::MemoryPlan plan;
  MemoryReport report;
};

// `host_only(pos, i)`: the kernel at position pos reads input i only on the host (no upload).
// Uploaded host values live for the whole run, so one upload serves every run of a signature.
Result<ActivationLayout> layoutActivations(const Program& p, const Resolved& r,
                                           const std::function<bool(size_t, size_t)>& host_only = {});

// Evaluates Shape/Size on dims alone (their input's data may live on a device).
Result<Tensor> evalShapeOp(const Node& n, const std::vector<int64_t>& dims);

}  // namespace ramjet::runtime
