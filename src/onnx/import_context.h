// Shared by the importer and the per-op upgrade table.
#pragma once

#include <string>
#include <vector>

#include "ramjet/graph.h"

namespace ramjet::onnx_import {

// Problems are collected, not returned one by one: a model gets one error listing all of them.
struct Problems {
  std::vector<std::string> unsupported;  // ops ramjet does not know, with node name and opset
  std::vector<std::string> malformed;    // fields that are wrong, with their location
  bool empty() const { return unsupported.empty() && malformed.empty(); }
};

struct ImportContext {
  Graph* graph;
  int64_t opset;  // ai.onnx opset of the model
  Problems* problems;
  // Adds a constant input at `index` (filling gaps with omitted inputs).
  void setConstInput(Node* node, size_t index, Tensor t, const std::string& suffix);
  void malformed(const Node& n, const std::string& why) {
    problems->malformed.push_back("node '" + n.name + "' (" + n.op_type + "): " + why);
  }
};

// Rewrites a node from the form of `ctx.opset` into ramjet's canonical (newest) form.
// Returns false if the op is unknown to the upgrade table AND to the op registry.
void upgradeNode(ImportContext& ctx, Node* node);
// True for old op names the upgrade table renames to a registered op (Upsample -> Resize,
// Scatter -> ScatterElements), which the importer must accept although the registry lacks them.
bool isRenamedLegacyOp(const std::string& op_type);

}  // namespace ramjet::onnx_import
