// ConvScaleBiasFold: Conv/ConvTranspose followed by Mul or Add with a per-channel constant
// (exporters' bias adds, decomposed BatchNorm, layer scales) -> the Conv's weights and bias.
// After ConvBnFold, before BatchNormToMulAdd's products are considered in the next round.
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

class ConvScaleBiasFold final : public Pass {
 public:
  const char* name() const override { return "ConvScaleBiasFold"; }
  const char* description() const override {
    return "folds per-channel constant Mul/Add after a Conv into its weights and bias";
  }
  Status run(Graph& g, const PassConfig&, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    for (Node* n : nodeList(g)) {
      if (!rw.alive(n) || !n->domain.empty() || (n->op_type != "Mul" && n->op_type != "Add"))
        continue;
      Value* c = nullptr;
      Value* x = splitConstOperand(n, &c);
      if (!x || !x->producer || soleConsumer(x) != n) continue;
      Node* conv = x->producer;
      const int64_t cout = convOutChannels(conv);
      const Shape& s = x->type.shape;
      if (cout == 0 || !s.rank_known || s.rank() < 3 || x->type.dtype != c->constant->dtype())
        continue;
      // The result must keep the conv output's shape (no broadcasting up).
      if (!(n->outputs[0]->type.shape == s)) continue;
      std::vector<double> v;
      if (!perChannel(c, s.rank(), cout, &v)) continue;
      std::vector<double> scale(static_cast<size_t>(cout), 1.0),
          shift(static_cast<size_t>(cout), 0.0);
      if (n->op_type == "Mul")
        scale = v;
      else
        shift = v;
      if (!foldIntoConvChannels(g, conv, scale, shift)) continue;
      Value* y = n->outputs[0];
      rw.remove(n);
      setOutput(conv, 0, y);
      ++stats->rewrites;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createConvScaleBiasFold() {
  return std::make_unique<ConvScaleBiasFold>();
}

}  // namespace ramjet::passes
