// The reference interpreter: runs an ir::Graph node by node on host tensors with the naive
// kernels. It is the oracle every other backend and pass is tested against.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ramjet/graph.h"

namespace ramjet::reference {

struct RunOptions {
  // Called after each node with its outputs (per-layer comparisons, debugging dumps).
  std::function<void(const Node&, const std::vector<Tensor>&)> on_node;
  // Keep every intermediate value alive (otherwise freed after its last use).
  bool keep_intermediates = false;
};

// Runs `g` on named inputs; returns the graph outputs in order. Inputs are checked against the
// graph's declared dtypes and shapes (symbolic dims match any size, consistently).
Result<std::vector<Tensor>> run(const Graph& g, const std::map<std::string, Tensor>& inputs,
                                const RunOptions& opts = {});

}  // namespace ramjet::reference
