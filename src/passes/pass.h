// The pass interface. A pass rewrites a Graph in place and counts what it did; the PassManager
// (pass_manager.h) orders passes into levels and runs each level to a fixed point.
//
// Two kinds, after ONNX Runtime's optimizer: a *rule* looks at one node (and its neighbours)
// at a time and is cheap to re-run; a *graph pass* needs the whole graph (dead-code
// elimination, CSE). Both implement the same interface here: run() walks the graph itself.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ramjet/graph.h"
#include "ramjet/status.h"

namespace ramjet::passes {

struct PassStats {
  int64_t nodes_removed = 0;  // nodes deleted from the graph
  int64_t nodes_added = 0;    // nodes created (fused replacements, decompositions)
  int64_t rewrites = 0;       // pattern matches / edits applied
  bool changed() const { return nodes_removed || nodes_added || rewrites; }
  PassStats& operator+=(const PassStats& o) {
    nodes_removed += o.nodes_removed;
    nodes_added += o.nodes_added;
    rewrites += o.rewrites;
    return *this;
  }
};

// Settings passes may read.
struct PassConfig {
  // Constant folding leaves a node alone when its outputs would exceed this many bytes (a
  // folded Expand/ConstantOfShape can be far larger than the graph that computes it).
  int64_t fold_max_bytes = 16 << 20;
  // Which op types a fusion may emit (the target backend has a kernel for). Null: any. The
  // builder sets it from the device backend, so a fusion never produces a node the backend
  // would have to reject (e.g. no `Attention` for a backend without an attention kernel).
  std::function<bool(const std::string& op_type)> can_emit;
  bool canEmit(const std::string& op_type) const { return !can_emit || can_emit(op_type); }
  // Optional sink for why a candidate pattern did not fire ("Conv 'c3' + Relu 'r3': the conv
  // output has 2 consumers"); `ramjet build --explain` prints what passes write here.
  std::function<void(const std::string& pass, const std::string& why)> explain;
  void why(const char* pass, const std::string& msg) const {
    if (explain) explain(pass, msg);
  }
  // The backend runs 2-D convolutions fastest channels-last (CUDA FP16 tensor cores): NhwcLayout
  // rewrites them to NHWC and sinks the layout conversions to the graph's boundaries.
  bool prefer_nhwc = false;
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const char* name() const = 0;         // the kill-switch name ("ConstantFolding")
  virtual const char* description() const = 0;  // one line for --list-passes
  virtual Status run(Graph& g, const PassConfig& cfg, PassStats* stats) = 0;
};

// The passes, one file each (src/passes/<snake_name>.cc).
std::unique_ptr<Pass> createIdentityElimination();
std::unique_ptr<Pass> createDeadCodeElimination();
std::unique_ptr<Pass> createConstantFolding();
std::unique_ptr<Pass> createCommonSubexpressionElimination();
std::unique_ptr<Pass> createReshapeChainSimplification();
std::unique_ptr<Pass> createConvBnFold();
std::unique_ptr<Pass> createBatchNormToMulAdd();
std::unique_ptr<Pass> createConvScaleBiasFold();
std::unique_ptr<Pass> createMatMulAddToGemm();
std::unique_ptr<Pass> createSiluFusion();
std::unique_ptr<Pass> createGeluFusion();
std::unique_ptr<Pass> createHardSwishFusion();
std::unique_ptr<Pass> createMishFusion();
std::unique_ptr<Pass> createLayerNormFusion();
std::unique_ptr<Pass> createAttentionFusion();
std::unique_ptr<Pass> createGemmEpilogueFusion();
std::unique_ptr<Pass> createAttentionLayoutFold();
std::unique_ptr<Pass> createAttentionBatchFirst();
std::unique_ptr<Pass> createElementwiseFusion();
std::unique_ptr<Pass> createAddLayerNormFusion();
std::unique_ptr<Pass> createSoftmaxWeightedSumFusion();
std::unique_ptr<Pass> createPatchifyConvToGemm();
std::unique_ptr<Pass> createConvActivationFusion();
std::unique_ptr<Pass> createNhwcLayout();

}  // namespace ramjet::passes
