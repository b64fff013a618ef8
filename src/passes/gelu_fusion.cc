// GeluFusion: the erf form x * 0.5 * (1 + Erf(x / sqrt 2)) and the tanh form
// x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))) -> Gelu (approximate "none"/"tanh"),
// in any association of the final products. First in level 3: its tail (x * ...) would
// otherwise be half-matched by nothing, and its inner Muls must not be taken by other fusions.
#include <cmath>

#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

// Mul with inputs {a, b} in either order.
bool isMulOf(const Node* n, const Value* a, const Value* b) {
  return n && n->op_type == "Mul" && n->domain.empty() && n->inputs.size() == 2 &&
         ((n->inputs[0] == a && n->inputs[1] == b) || (n->inputs[0] == b && n->inputs[1] == a));
}
bool isMulByConst(const Node* n, const Value* a, double c) {
  if (!n || n->op_type != "Mul" || !n->domain.empty()) return false;
  Value* k = nullptr;
  return splitConstOperand(n, &k) == a && isConstantScalar(k, c);
}

// Given e = 1 + f(x), finds the node computing x * 0.5 * e (three associations).
Node* halfXTimes(Value* e, Value* x) {
  Node* m1 = soleConsumer(e);
  if (!m1 || m1->op_type != "Mul" || !m1->domain.empty()) return nullptr;
  Value* other = otherInput(m1, e);
  if (!other) return nullptr;
  if (other == x) {  // (x * e) * 0.5
    Node* m2 = soleConsumer(m1->outputs[0]);
    return isMulByConst(m2, m1->outputs[0], 0.5) ? m2 : nullptr;
  }
  if (Node* h = other->producer; isMulByConst(h, x, 0.5)) return m1;  // (x * 0.5) * e
  if (isConstantScalar(other, 0.5)) {                                 // x * (e * 0.5)
    Node* m2 = soleConsumer(m1->outputs[0]);
    return isMulOf(m2, x, m1->outputs[0]) ? m2 : nullptr;
  }
  return nullptr;
}

// v == 1 + w: returns w's consumer chain start (the Add node) output check.
bool isOnePlus(const Node* add, const Value* w) {
  if (!add || add->op_type != "Add" || !add->domain.empty()) return false;
  Value* c = nullptr;
  return splitConstOperand(add, &c) == w && isConstantScalar(c, 1.0);
}

// x^3 as Pow(x, 3), x*x*x in either association.
bool isCube(const Value* v, const Value* x) {
  Node* n = v ? v->producer : nullptr;
  if (!n || !n->domain.empty()) return false;
  if (n->op_type == "Pow") return n->inputs[0] == x && isConstantScalar(n->inputs[1], 3.0);
  if (n->op_type != "Mul") return false;
  for (int side = 0; side < 2; ++side) {
    const Value* a = n->inputs[static_cast<size_t>(side)];
    const Value* b = n->inputs[static_cast<size_t>(1 - side)];
    if (a == x && isMulOf(b->producer, x, x)) return true;
  }
  return false;
}

class GeluFusion final : public Pass {
 public:
  const char* name() const override { return "GeluFusion"; }
  const char* description() const override { return "erf and tanh GELU decompositions -> Gelu"; }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("Gelu")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    for (Node* f : nodeList(g)) {
      if (!rw.alive(f) || !f->domain.empty()) continue;
      Value* x = nullptr;
      const char* approx = nullptr;
      if (f->op_type == "Erf") {
        Node* d = f->inputs[0]->producer;
        if (!d || !d->domain.empty()) continue;
        Value* c = nullptr;
        Value* a = splitConstOperand(d, &c);
        if (!a) continue;
        if ((d->op_type == "Div" && d->inputs[0] == a &&
             isConstantScalar(c, std::sqrt(2.0), 1e-4)) ||
            (d->op_type == "Mul" && isConstantScalar(c, std::sqrt(0.5), 1e-4)))
          x = a, approx = "none";
      } else if (f->op_type == "Tanh") {
        Node* s = f->inputs[0]->producer;  // sqrt(2/pi) * inner
        Value* c = nullptr;
        Value* inner =
            s && s->op_type == "Mul" && s->domain.empty() ? splitConstOperand(s, &c) : nullptr;
        if (!inner || !isConstantScalar(c, std::sqrt(2.0 / M_PI), 1e-4)) continue;
        Node* add = producerOf(inner, "Add");  // x + 0.044715 x^3
        if (!add || add->inputs.size() != 2) continue;
        for (int side = 0; side < 2 && !x; ++side) {
          Value* cand = add->inputs[static_cast<size_t>(side)];
          Node* k = add->inputs[static_cast<size_t>(1 - side)]->producer;
          Value* kc = nullptr;
          Value* cube =
              k && k->op_type == "Mul" && k->domain.empty() ? splitConstOperand(k, &kc) : nullptr;
          if (cube && isConstantScalar(kc, 0.044715, 1e-6) && isCube(cube, cand)) x = cand;
        }
        approx = "tanh";
      }
      if (!x || !approx) continue;
      Node* add1 = soleConsumer(f->outputs[0]);
      if (!isOnePlus(add1, f->outputs[0])) continue;
      Node* last = halfXTimes(add1->outputs[0], x);
      if (!last) continue;
      Node* gelu = rw.replace(last, "Gelu", {x});
      gelu->attrs["approximate"] = Attribute::fromString(approx);
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createGeluFusion() {
  return std::make_unique<GeluFusion>();
}

}  // namespace ramjet::passes
