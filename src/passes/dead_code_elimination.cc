// DeadCodeElimination: removes nodes none of whose outputs reach a graph output, and drops the
// data of constants nothing reads any more. Runs at the end of each level to clear what the
// level's rewrites orphaned.
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

class DeadCodeElimination final : public Pass {
 public:
  const char* name() const override { return "DeadCodeElimination"; }
  const char* description() const override {
    return "removes nodes whose outputs are unused; frees unused constants";
  }
  Status run(Graph& g, const PassConfig&, PassStats* stats) override {
    const std::set<std::string> pinned = outerScopeNames(g);
    Rewriter rw{g, stats, {}};
    auto order = nodeList(g);
    // Reverse topological order removes whole dead chains in one sweep.
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* n = *it;
      bool used = false;
      for (Value* v : n->outputs)
        if (v && (useCount(v) != 0 || pinned.count(v->name))) used = true;
      if (!used) rw.remove(n);
    }
    for (const auto& v : g.values()) {
      if (v->constant && v->consumers.empty() && !v->is_graph_output && !v->is_graph_input &&
          !pinned.count(v->name)) {
        v->constant.reset();
        v->type = TensorType{};
        ++stats->rewrites;
      }
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createDeadCodeElimination() {
  return std::make_unique<DeadCodeElimination>();
}

}  // namespace ramjet::passes
