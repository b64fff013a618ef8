// SoftmaxWeightedSumFusion: Softmax(x, axis=1) -> Conv with a 1x1 kernel to one output channel
// (group 1, unit strides/dilations, no padding, constant weights, optional constant bias) ->
// SoftmaxWeightedSum(x, w + b): YOLOv8's distribution-focal-loss decoding (softmax over the 16
// bins of each box side, then their expectation through a fixed 0..15 convolution). The bias
// folds into the weights because the probabilities sum to 1. One memory-bound pass instead of
// Softmax (kept in FP32 by the FP16 lowering: two Casts), the NCHW<->NHWC transposes around a
// 1-channel convolution, and the convolution. Level 3, before ConvActivationFusion.
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

bool allEqual(const Node* n, const char* attr, int64_t v) {
  if (!n->hasAttr(attr)) return true;
  for (int64_t x : n->attrInts(attr))
    if (x != v) return false;
  return true;
}

class SoftmaxWeightedSumFusion final : public Pass {
 public:
  const char* name() const override { return "SoftmaxWeightedSumFusion"; }
  const char* description() const override {
    return "Softmax(axis 1) -> 1x1 Conv to one channel -> SoftmaxWeightedSum (YOLOv8 DFL)";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("SoftmaxWeightedSum")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    const std::set<std::string> outer = outerScopeNames(g);
    for (Node* sm : nodeList(g)) {
      if (!rw.alive(sm) || sm->op_type != "Softmax" || !sm->domain.empty()) continue;
      Value* x = sm->inputs[0];
      Value* p = sm->outputs[0];
      const Shape& xs = x->type.shape;
      if (!isFloatType(x->type.dtype) || !xs.rank_known || xs.rank() < 3) continue;
      int64_t axis = sm->attrInt("axis", -1);
      if (axis < 0) axis += static_cast<int64_t>(xs.rank());
      if (axis != 1 || (sm->attrInt("coerce_2d", 0) != 0)) continue;  // legacy softmax flattens
      if (p->is_graph_output || outer.count(p->name)) continue;
      Node* conv = soleConsumer(p);
      if (!conv || conv->op_type != "Conv" || !conv->domain.empty() || conv->inputs[0] != p) continue;
      const Value* w = conv->inputs.size() > 1 ? conv->inputs[1] : nullptr;
      if (!w || !w->constant || !isFloatType(w->constant->dtype())) continue;
      const auto& wd = w->constant->dims();
      const Dim& k = xs.dims[1];
      if (!k.known() || wd.size() != xs.rank() || wd[0] != 1 || wd[1] != k.value) continue;
      bool unit = true;
      for (size_t i = 2; i < wd.size(); ++i) unit &= wd[i] == 1;
      if (!unit || conv->attrInt("group", 1) != 1 || !allEqual(conv, "strides", 1) ||
          !allEqual(conv, "dilations", 1) || !allEqual(conv, "pads", 0) || !allEqual(conv, "kernel_shape", 1))
        continue;
      const std::string ap = conv->attrString("auto_pad", "NOTSET");
      if (ap != "NOTSET" && ap != "VALID") continue;
      double bias = 0;
      if (conv->inputs.size() > 2 && conv->inputs[2]) {
        const Value* b = conv->inputs[2];
        if (!b->constant || b->constant->numel() != 1 || !scalarValue(b, &bias)) continue;
      }
      std::vector<double> wv = toDoubles(*w->constant);
      for (double& v : wv) v += bias;
      Value* wf = makeConstant(g, w->name + "_dfl", tensorFromDoubles(x->type.dtype, {k.value}, wv));
      rw.remove(sm);
      Node* f = rw.replace(conv, "SoftmaxWeightedSum", {x, wf});
      f->attrs["axis"] = Attribute::fromInt(1);
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createSoftmaxWeightedSumFusion() { return std::make_unique<SoftmaxWeightedSumFusion>(); }

}  // namespace ramjet::passes
