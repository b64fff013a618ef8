// SiluFusion: x * Sigmoid(x) -> Silu(x) (YOLO and EfficientNet exports). In level 3 after
// GeluFusion (GELU's tail is also a Mul of x).
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

class SiluFusion final : public Pass {
 public:
  const char* name() const override { return "SiluFusion"; }
  const char* description() const override { return "x * Sigmoid(x) -> Silu"; }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("Silu")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    for (Node* sig : nodeList(g)) {
      if (!rw.alive(sig) || sig->op_type != "Sigmoid" || !sig->domain.empty()) continue;
      Value* x = sig->inputs[0];
      Value* s = sig->outputs[0];
      std::vector<Node*> muls;
      for (Node* c : s->consumers)
        if (c->op_type == "Mul" && c->domain.empty() && otherInput(c, s) == x) muls.push_back(c);
      for (Node* m : muls) {
        if (!rw.alive(m)) continue;
        rw.replace(m, "Silu", {x});
      }
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createSiluFusion() {
  return std::make_unique<SiluFusion>();
}

}  // namespace ramjet::passes
