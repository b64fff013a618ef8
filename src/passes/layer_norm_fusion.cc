// LayerNormFusion: ReduceMean -> Sub -> Pow(2)/Mul -> ReduceMean -> Add(eps) -> Sqrt -> Div
// [-> Mul(gamma) -> Add(beta)] over trailing axes -> LayerNormalization (exports from opsets
// before 17 and hand-written norms). Late in level 3 because it spans the largest subgraph;
// running it after constant folding lets it see constant axes, epsilon, gamma and beta.
#include <algorithm>
#include <set>

#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

// ReduceMean over constant axes with keepdims=1; axes normalised for rank r.
bool reduceMeanAxes(const Node* n, size_t r, std::vector<int64_t>* axes) {
  if (!n || n->op_type != "ReduceMean" || !n->domain.empty() || n->attrInt("keepdims", 1) != 1)
    return false;
  std::vector<int64_t> a;
  if (n->hasInput(1)) {
    if (!constantInts(n->inputs[1], &a)) return false;
  } else if (n->hasAttr("axes")) {
    a = n->attrInts("axes");
  } else {
    return false;
  }
  for (auto& v : a) {
    if (v < 0) v += static_cast<int64_t>(r);
    if (v < 0 || v >= static_cast<int64_t>(r)) return false;
  }
  std::sort(a.begin(), a.end());
  *axes = a;
  return !a.empty();
}

std::vector<Node*> uniqueConsumers(const Value* v) {
  std::vector<Node*> out;
  for (Node* c : v->consumers)
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  return out;
}

// A constant operand of binary node n (the other being `v`) usable as LayerNorm Scale/B over
// k trailing dims: returns it, reshaped to drop leading 1s, or null.
Value* affineParam(Graph& g, const Node* n, const Value* v, size_t k) {
  Value* c = nullptr;
  if (!n || splitConstOperand(n, &c) != v || !isFloatType(c->constant->dtype())) return nullptr;
  const Tensor& t = *c->constant;
  if (t.rank() <= k) return c;
  for (size_t i = 0; i + k < t.rank(); ++i)
    if (t.dims()[i] != 1) return nullptr;
  std::vector<int64_t> dims(t.dims().end() - static_cast<long>(k), t.dims().end());
  return makeConstant(g, c->name + "_ln", t.clone().reshaped(dims));
}

class LayerNormFusion final : public Pass {
 public:
  const char* name() const override { return "LayerNormFusion"; }
  const char* description() const override {
    return "ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div[/Mul/Add] -> LayerNormalization";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("LayerNormalization")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    for (Node* rm1 : nodeList(g)) {
      if (!rw.alive(rm1) || rm1->op_type != "ReduceMean" || !rm1->domain.empty()) continue;
      Value* x = rm1->inputs[0];
      const Shape& xs = x->type.shape;
      if (!isFloatType(x->type.dtype) || !xs.rank_known || xs.rank() == 0) continue;
      const size_t r = xs.rank();
      std::vector<int64_t> axes;
      if (!reduceMeanAxes(rm1, r, &axes)) continue;
      const size_t k = axes.size();
      bool trailing = true;
      for (size_t i = 0; i < k; ++i) trailing &= axes[i] == static_cast<int64_t>(r - k + i);
      if (!trailing) continue;
      Node* sub = soleConsumer(rm1->outputs[0]);
      if (!sub || sub->op_type != "Sub" || sub->inputs[0] != x || sub->inputs[1] != rm1->outputs[0])
        continue;
      Value* d = sub->outputs[0];
      auto dc = uniqueConsumers(d);
      if (d->is_graph_output || dc.size() != 2) continue;
      Node* sq = nullptr;
      Node* div = nullptr;
      for (Node* c : dc) {
        if (c->op_type == "Pow" && c->inputs[0] == d && isConstantScalar(c->inputs[1], 2.0))
          sq = c;
        else if (c->op_type == "Mul" && c->inputs.size() == 2 && c->inputs[0] == d &&
                 c->inputs[1] == d)
          sq = c;
        else if (c->op_type == "Div" && c->inputs[0] == d)
          div = c;
      }
      if (!sq || !div) continue;
      Node* rm2 = soleConsumer(sq->outputs[0]);
      std::vector<int64_t> axes2;
      if (!reduceMeanAxes(rm2, r, &axes2) || axes2 != axes) continue;
      Node* add = soleConsumer(rm2->outputs[0]);
      Value* epsv = nullptr;
      if (!add || add->op_type != "Add" || splitConstOperand(add, &epsv) != rm2->outputs[0])
        continue;
      double eps = 0;
      if (!scalarValue(epsv, &eps)) continue;
      Node* sqrt = soleConsumer(add->outputs[0]);
      if (!sqrt || sqrt->op_type != "Sqrt" || soleConsumer(sqrt->outputs[0]) != div ||
          div->inputs[1] != sqrt->outputs[0])
        continue;
      Node* last = div;
      Value* scale = nullptr;
      Value* bias = nullptr;
      Node* mul = soleConsumer(div->outputs[0]);
      if (mul && mul->op_type == "Mul" && (scale = affineParam(g, mul, div->outputs[0], k))) {
        last = mul;
        Node* badd = soleConsumer(mul->outputs[0]);
        if (badd && badd->op_type == "Add" && (bias = affineParam(g, badd, mul->outputs[0], k)))
          last = badd;
      }
      if (!scale)
        scale =
            makeConstant(g, rm1->name + "_ln_scale", tensorFromDoubles(x->type.dtype, {1}, {1.0}));
      std::vector<Value*> ins = {x, scale};
      if (bias) ins.push_back(bias);
      Node* ln = rw.replace(last, "LayerNormalization", ins);
      ln->attrs["axis"] = Attribute::fromInt(static_cast<int64_t>(r - k));
      ln->attrs["epsilon"] = Attribute::fromFloat(static_cast<float>(eps));
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createLayerNormFusion() {
  return std::make_unique<LayerNormFusion>();
}

}  // namespace ramjet::passes
