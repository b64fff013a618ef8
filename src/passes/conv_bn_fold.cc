// ConvBnFold: Conv/ConvTranspose followed by inference BatchNormalization -> the Conv with
// scaled weights and a new bias. First in level 2: it is exact and removes the BN outright;
// the Mul/Add folds after it only see what BN folding could not absorb.
#include <cmath>

#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

// BN as y = scale[c] * x + shift[c]; false unless inference-mode with constant parameters.
bool bnAffine(const Node* bn, std::vector<double>* scale, std::vector<double>* shift) {
  if (bn->attrInt("training_mode", 0) != 0 || !onlyFirstOutputUsed(bn)) return false;
  for (size_t i = 1; i < 5; ++i)
    if (!bn->hasInput(i) || !bn->inputs[i]->constant) return false;
  auto gamma = toDoubles(*bn->inputs[1]->constant), beta = toDoubles(*bn->inputs[2]->constant);
  auto mean = toDoubles(*bn->inputs[3]->constant), var = toDoubles(*bn->inputs[4]->constant);
  const size_t c = gamma.size();
  if (beta.size() != c || mean.size() != c || var.size() != c || c == 0) return false;
  const double eps = bn->attrFloat("epsilon", 1e-5f);
  scale->resize(c);
  shift->resize(c);
  for (size_t i = 0; i < c; ++i) {
    (*scale)[i] = gamma[i] / std::sqrt(var[i] + eps);
    (*shift)[i] = beta[i] - mean[i] * (*scale)[i];
  }
  return true;
}

class ConvBnFold final : public Pass {
 public:
  const char* name() const override { return "ConvBnFold"; }
  const char* description() const override {
    return "folds inference BatchNormalization into the preceding Conv/ConvTranspose";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    for (Node* bn : nodeList(g)) {
      if (!rw.alive(bn) || bn->op_type != "BatchNormalization" || !bn->domain.empty()) continue;
      Value* x = bn->inputs[0];
      Node* conv = x->producer;
      if (!conv || (conv->op_type != "Conv" && conv->op_type != "ConvTranspose")) continue;
      const std::string pair = conv->describe() + " + " + bn->describe() + ": ";
      if (soleConsumer(x) != bn) {
        cfg.why(name(), pair + "the conv output has " + std::to_string(useCount(x)) + " consumers");
        continue;
      }
      if (convOutChannels(conv) == 0) {
        cfg.why(name(), pair + "weights/bias not constant float tensors");
        continue;
      }
      if (x->type.dtype != bn->outputs[0]->type.dtype) continue;
      std::vector<double> scale, shift;
      if (!bnAffine(bn, &scale, &shift)) {
        cfg.why(name(), pair + "BatchNormalization parameters are not constants (or training mode)");
        continue;
      }
      if (!foldIntoConvChannels(g, conv, scale, shift)) {
        cfg.why(name(), pair + "channel count does not match the conv's output channels");
        continue;
      }
      Value* y = bn->outputs[0];
      rw.remove(bn);
      setOutput(conv, 0, y);
      ++stats->rewrites;
    }
    return Status::Ok();
  }
};

class BatchNormToMulAdd final : public Pass {
 public:
  const char* name() const override { return "BatchNormToMulAdd"; }
  const char* description() const override {
    return "inference BatchNormalization not after a Conv -> per-channel Mul + Add";
  }
  Status run(Graph& g, const PassConfig&, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    for (Node* bn : nodeList(g)) {
      if (!rw.alive(bn) || bn->op_type != "BatchNormalization" || !bn->domain.empty()) continue;
      Value* x = bn->inputs[0];
      const Shape& s = x->type.shape;
      if (!isFloatType(x->type.dtype) || !s.rank_known || s.rank() < 2) continue;
      std::vector<double> scale, shift;
      if (!bnAffine(bn, &scale, &shift)) continue;
      std::vector<int64_t> dims(s.rank() - 1, 1);
      dims[0] = static_cast<int64_t>(scale.size());
      Value* sc =
          makeConstant(g, bn->name + "_scale", tensorFromDoubles(x->type.dtype, dims, scale));
      Value* sh =
          makeConstant(g, bn->name + "_shift", tensorFromDoubles(x->type.dtype, dims, shift));
      Node* mul = rw.add("Mul", bn->name + "_mul", {x, sc});
      rw.replace(bn, "Add", {mul->outputs[0], sh});
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createConvBnFold() {
  return std::make_unique<ConvBnFold>();
}
std::unique_ptr<Pass> createBatchNormToMulAdd() {
  return std::make_unique<BatchNormToMulAdd>();
}

}  // namespace ramjet::passes
