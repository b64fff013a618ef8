// MishFusion: x * Tanh(Softplus(x)) -> Mish(x) (YOLOv4-style exports).
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

class MishFusion final : public Pass {
 public:
  const char* name() const override { return "MishFusion"; }
  const char* description() const override { return "x * Tanh(Softplus(x)) -> Mish"; }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("Mish")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    for (Node* th : nodeList(g)) {
      if (!rw.alive(th) || th->op_type != "Tanh" || !th->domain.empty()) continue;
      Node* sp = producerOf(th->inputs[0], "Softplus");
      if (!sp) continue;
      Value* x = sp->inputs[0];
      Value* t = th->outputs[0];
      std::vector<Node*> muls;
      for (Node* c : t->consumers)
        if (c->op_type == "Mul" && c->domain.empty() && otherInput(c, t) == x) muls.push_back(c);
      for (Node* m : muls)
        if (rw.alive(m)) rw.replace(m, "Mish", {x});
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createMishFusion() {
  return std::make_unique<MishFusion>();
}

}  // namespace ramjet::passes
