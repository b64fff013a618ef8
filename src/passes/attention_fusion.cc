// AttentionFusion: MatMul(Q·s1, Kᵀ·s2) [·s or /s] [+ mask] -> Softmax(last axis) -> MatMul(·, V)
// -> Attention(Q, K, V[, mask]) {scale}. Kᵀ is undone by a new Transpose that
// ReshapeChainSimplification merges with the exporter's own Transpose next round. Last in
// level 3: it needs Q/K/V's producers settled (Gemm, LayerNorm) and consumes five nodes.
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

// v == w * c or w / c with a constant scalar c: returns w and multiplies *scale.
Value* stripScale(Value* v, double* scale) {
  Node* n = v->producer;
  if (!n || !n->domain.empty() || (n->op_type != "Mul" && n->op_type != "Div")) return v;
  Value* c = nullptr;
  Value* w = splitConstOperand(n, &c);
  double s = 0;
  if (!w || !scalarValue(c, &s) || s == 0 || soleConsumer(v) == nullptr) return v;
  if (n->op_type == "Div") {
    if (n->inputs[0] != w) return v;
    s = 1.0 / s;
  }
  *scale *= s;
  return w;
}

bool sameBatchDims(const Shape& a, const Shape& b) {
  if (!a.rank_known || !b.rank_known || a.rank() != b.rank()) return false;
  for (size_t i = 0; i + 2 < a.rank(); ++i)
    if (a.dims[i] != b.dims[i] || (!a.dims[i].known() && a.dims[i].symbol.empty())) return false;
  return true;
}

class AttentionFusion final : public Pass {
 public:
  const char* name() const override { return "AttentionFusion"; }
  const char* description() const override { return "softmax(Q·Kᵀ·scale [+ mask])·V -> Attention"; }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("Attention")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    for (Node* sm : nodeList(g)) {
      if (!rw.alive(sm) || sm->op_type != "Softmax" || !sm->domain.empty()) continue;
      Value* in = sm->inputs[0];
      const Shape& ss = in->type.shape;
      if (!isFloatType(in->type.dtype) || !ss.rank_known || ss.rank() < 2) continue;
      const int64_t r = static_cast<int64_t>(ss.rank());
      int64_t axis = sm->attrInt("axis", -1);
      if (axis < 0) axis += r;
      if (axis != r - 1) continue;
      Node* pv = soleConsumer(sm->outputs[0]);
      if (!pv || pv->op_type != "MatMul" || !pv->domain.empty() || pv->inputs[0] != sm->outputs[0])
        continue;
      Value* v = pv->inputs[1];
      // Optional additive mask.
      Value* scores = in;
      Value* mask = nullptr;
      if (Node* add = producerOf(in, "Add"); add && soleConsumer(in) == sm) {
        for (int side = 0; side < 2; ++side) {
          Value* s = add->inputs[static_cast<size_t>(side)];
          double dummy = 1;
          Value* core = stripScale(s, &dummy);
          if (producerOf(core, "MatMul") && s->type.shape == ss) {
            scores = s;
            mask = add->inputs[static_cast<size_t>(1 - side)];
            break;
          }
        }
        if (!mask || mask->type.dtype != in->type.dtype) continue;
      }
      double scale = 1.0;
      Value* qkv = stripScale(scores, &scale);
      Node* qk = producerOf(qkv, "MatMul");
      if (!qk || soleConsumer(qkv) == nullptr) continue;
      Value* q = stripScale(qk->inputs[0], &scale);
      Value* kt = stripScale(qk->inputs[1], &scale);
      const Shape& qs = q->type.shape;
      const Shape& ks = kt->type.shape;
      const Shape& vs = v->type.shape;
      if (!sameBatchDims(qs, ss) || !sameBatchDims(ks, ss) || !sameBatchDims(vs, ss)) continue;
      if (q->type.dtype != in->type.dtype || kt->type.dtype != q->type.dtype ||
          v->type.dtype != q->type.dtype)
        continue;
      std::vector<int64_t> perm(static_cast<size_t>(r));
      for (int64_t i = 0; i < r; ++i) perm[static_cast<size_t>(i)] = i;
      std::swap(perm[static_cast<size_t>(r - 1)], perm[static_cast<size_t>(r - 2)]);
      Node* tr = rw.add("Transpose", pv->name + "_K", {kt});
      tr->attrs["perm"] = Attribute::fromInts(perm);
      std::vector<Value*> ins = {q, tr->outputs[0], v};
      if (mask) ins.push_back(mask);
      Node* att = rw.replace(pv, "Attention", ins);
      att->attrs["scale"] = Attribute::fromFloat(static_cast<float>(scale));
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createAttentionFusion() {
  return std::make_unique<AttentionFusion>();
}

}  // namespace ramjet::passes
