// AddLayerNormFusion: LayerNormalization(Add(x, r)) over the last axis, x and r of the same
// shape (a transformer's residual Add), no mean/inv-std outputs -> AddLayerNorm(x, r, scale,
// bias) producing both the normalised value and the sum (which pre-norm blocks reuse as the next
// residual): one pass over the row instead of two kernels. A device lowering in level 4 after
// GemmEpilogueFusion (which takes residual Adds that directly follow a GEMM first).
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

bool sameShape(const Shape& a, const Shape& b) {
  if (!a.rank_known || !b.rank_known || a.rank() != b.rank() || a.rank() == 0) return false;
  for (size_t i = 0; i < a.rank(); ++i)
    if (a.dims[i] != b.dims[i] || (!a.dims[i].known() && a.dims[i].symbol.empty())) return false;
  return true;
}

class AddLayerNormFusion final : public Pass {
 public:
  const char* name() const override { return "AddLayerNormFusion"; }
  const char* description() const override { return "LayerNormalization(x + residual) -> AddLayerNorm (sum kept)"; }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    // A device lowering: only for a target that asked for it (the builder sets can_emit).
    if (!cfg.can_emit || !cfg.canEmit("AddLayerNorm")) return Status::Ok();
    const std::set<std::string> outer = outerScopeNames(g);
    std::set<const Node*> dead;  // removed nodes still in the snapshot
    for (Node* ln : nodeList(g)) {
      if (dead.count(ln)) continue;
      if (ln->op_type != "LayerNormalization" || !ln->domain.empty() || !onlyFirstOutputUsed(ln)) continue;
      if (ln->inputs.size() < 2 || !ln->inputs[1]) continue;
      Node* add = producerOf(ln->inputs[0], "Add");
      if (!add || !add->domain.empty() || add->inputs.size() != 2 || !add->inputs[0] || !add->inputs[1]) continue;
      Value* s = add->outputs[0];
      Value* a = add->inputs[0];
      Value* b = add->inputs[1];
      const Shape& ss = s->type.shape;
      if (!isFloatType(s->type.dtype) || !sameShape(a->type.shape, ss) || !sameShape(b->type.shape, ss)) continue;
      if (a->type.dtype != s->type.dtype || b->type.dtype != s->type.dtype || outer.count(s->name)) continue;
      int64_t axis = ln->attrInt("axis", -1);
      if (axis < 0) axis += static_cast<int64_t>(ss.rank());
      if (axis != static_cast<int64_t>(ss.rank()) - 1) continue;
      Value* y = ln->outputs[0];
      std::vector<Value*> ins = {a, b, ln->inputs[1]};
      if (ln->inputs.size() > 2 && ln->inputs[2]) ins.push_back(ln->inputs[2]);
      const float eps = ln->attrFloat("epsilon", 1e-5f);
      const std::string name = ln->name;
      dead.insert(ln);
      dead.insert(add);
      g.removeNode(ln);
      g.removeNode(add);
      Node* f = g.addNode("AddLayerNorm", uniqueNodeName(g, name + "_add"), ins, {y, s});
      f->attrs["axis"] = Attribute::fromInt(-1);
      f->attrs["epsilon"] = Attribute::fromFloat(eps);
      stats->nodes_removed += 2;
      stats->nodes_added += 1;
      stats->rewrites += 1;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createAddLayerNormFusion() { return std::make_unique<AddLayerNormFusion>(); }

}  // namespace ramjet::passes
