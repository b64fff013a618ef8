// IdentityElimination: Identity, inference-mode Dropout and Cast to the same type forward their
// input. Runs first so every later pattern sees real producers (exporters put Identity between
// shared weights and their users, and Dropout stays in eval-mode graphs).
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

bool isForwarding(const Node* n) {
  if (!n->domain.empty() || n->inputs.empty() || !n->inputs[0] || !n->hasOutput(0)) return false;
  if (n->op_type == "Identity") return true;
  if (n->op_type == "Dropout") {
    // Inference: training_mode absent or constant false, and the mask output unused.
    if (n->hasInput(2)) {
      const Value* t = n->inputs[2];
      if (!t->constant || t->constant->numel() != 1 || t->constant->getDouble(0) != 0) return false;
    }
    return onlyFirstOutputUsed(n);
  }
  if (n->op_type == "Cast") {
    const Value* x = n->inputs[0];
    return x->type.dtype != DataType::kUndefined &&
           static_cast<int64_t>(x->type.dtype) == n->attrInt("to", -1);
  }
  return false;
}

class IdentityElimination final : public Pass {
 public:
  const char* name() const override { return "IdentityElimination"; }
  const char* description() const override {
    return "removes Identity, inference Dropout and same-type Cast";
  }
  Status run(Graph& g, const PassConfig&, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    for (Node* n : nodeList(g)) {
      if (!rw.alive(n) || !isForwarding(n)) continue;
      if (!replaceAllUses(g, n->outputs[0], n->inputs[0])) continue;
      rw.remove(n);
      ++stats->rewrites;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createIdentityElimination() {
  return std::make_unique<IdentityElimination>();
}

}  // namespace ramjet::passes
