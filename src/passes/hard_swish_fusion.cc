// HardSwishFusion: x * HardSigmoid(x) (alpha 1/6, beta 0.5) and x * Relu6(x + 3) / 6 (Clip
// form, either association of the /6) -> HardSwish(x) (MobileNetV3 exports).
#include <cmath>

#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

// v == w / 6 or w * (1/6): returns w.
Value* dividedBySix(const Value* v) {
  Node* n = v ? v->producer : nullptr;
  if (!n || !n->domain.empty()) return nullptr;
  if (n->op_type == "Div" && isConstantScalar(n->inputs[1], 6.0)) return n->inputs[0];
  if (n->op_type == "Mul") {
    Value* c = nullptr;
    Value* w = splitConstOperand(n, &c);
    if (w && isConstantScalar(c, 1.0 / 6.0, 1e-6)) return w;
  }
  return nullptr;
}

// v == Clip(x + 3, 0, 6): returns x.
Value* relu6OfXPlus3(const Value* v) {
  Node* clip = producerOf(v, "Clip");
  if (!clip || !clip->hasInput(1) || !clip->hasInput(2) ||
      !isConstantScalar(clip->inputs[1], 0.0) || !isConstantScalar(clip->inputs[2], 6.0))
    return nullptr;
  Node* add = producerOf(clip->inputs[0], "Add");
  if (!add) return nullptr;
  Value* c = nullptr;
  Value* x = splitConstOperand(add, &c);
  return x && isConstantScalar(c, 3.0) ? x : nullptr;
}

class HardSwishFusion final : public Pass {
 public:
  const char* name() const override { return "HardSwishFusion"; }
  const char* description() const override {
    return "x * HardSigmoid(x) and x * Relu6(x + 3) / 6 -> HardSwish";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("HardSwish")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    for (Node* n : nodeList(g)) {
      if (!rw.alive(n) || !n->domain.empty() || n->inputs.size() != 2) continue;
      if (n->op_type == "Mul") {
        for (int side = 0; side < 2; ++side) {
          Value* x = n->inputs[static_cast<size_t>(side)];
          Value* f = n->inputs[static_cast<size_t>(1 - side)];
          // x * HardSigmoid(x)
          if (Node* hs = producerOf(f, "HardSigmoid")) {
            if (hs->inputs[0] == x && std::abs(hs->attrFloat("alpha", 0.2f) - 1.f / 6.f) < 1e-6f &&
                std::abs(hs->attrFloat("beta", 0.5f) - 0.5f) < 1e-6f) {
              rw.replace(n, "HardSwish", {x});
              break;
            }
          }
          // x * (Relu6(x + 3) / 6)
          if (Value* r = dividedBySix(f); r && relu6OfXPlus3(r) == x) {
            rw.replace(n, "HardSwish", {x});
            break;
          }
        }
        if (!rw.alive(n)) continue;
      }
      // (x * Relu6(x + 3)) / 6
      {
        Value* m = nullptr;
        if (n->op_type == "Div" && isConstantScalar(n->inputs[1], 6.0)) m = n->inputs[0];
        if (n->op_type == "Mul") {
          Value* c = nullptr;
          Value* w = splitConstOperand(n, &c);
          if (w && isConstantScalar(c, 1.0 / 6.0)) m = w;
        }
        Node* mul = producerOf(m, "Mul");
        if (!mul || soleConsumer(m) != n) continue;
        for (int side = 0; side < 2; ++side) {
          Value* x = mul->inputs[static_cast<size_t>(side)];
          if (relu6OfXPlus3(mul->inputs[static_cast<size_t>(1 - side)]) == x) {
            rw.replace(n, "HardSwish", {x});
            break;
          }
        }
      }
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createHardSwishFusion() {
  return std::make_unique<HardSwishFusion>();
}

}  // namespace ramjet::passes
