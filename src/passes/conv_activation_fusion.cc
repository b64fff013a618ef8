// ConvActivationFusion: Conv [+ Add of a same-shape residual] [+ one activation] -> FusedConv
// (src/ops/fused_conv.h), so a backend runs the convolution, bias, residual and activation as
// one kernel (cuDNN's fused engines or conv + one epilogue). Level 4: after the folds (Conv+BN,
// Conv+Mul/Add into the weights) and after Silu/HardSwish recognition, so the activation it
// absorbs is already one node. Fires only when every intermediate value has exactly one use
// (the next node of the chain), the weights are constant floats, padding is explicit and
// symmetric (what the CUDA kernels take) and the backend can run FusedConv.
#include <cmath>
#include <limits>

#include "ops/fused_conv.h"
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

using ops::ConvAct;

bool isFloat(const Value* v) {
  DataType d = v->type.dtype;
  return d == DataType::kFloat32 || d == DataType::kFloat16 || d == DataType::kBFloat16 ||
         d == DataType::kFloat64;
}

// The activation a node computes, with its parameters; false when it is not one FusedConv has.
bool activationOf(const Node* n, ConvAct* kind, float* alpha, float* beta) {
  if (!n->domain.empty() || n->inputs.empty() || !n->inputs[0]) return false;
  const std::string& op = n->op_type;
  const float inf = std::numeric_limits<float>::infinity();
  *alpha = 0.f;
  *beta = 0.f;
  if (op == "Relu") *kind = ConvAct::kRelu;
  else if (op == "Sigmoid") *kind = ConvAct::kSigmoid;
  else if (op == "Tanh") *kind = ConvAct::kTanh;
  else if (op == "Silu") *kind = ConvAct::kSilu;
  else if (op == "HardSwish") *kind = ConvAct::kHardSwish;
  else if (op == "Mish") *kind = ConvAct::kMish;
  else if (op == "Gelu" && n->attrString("approximate", "none") == "none") *kind = ConvAct::kGelu;
  else if (op == "LeakyRelu") {
    *kind = ConvAct::kLeakyRelu;
    *alpha = n->attrFloat("alpha", 0.01f);
  } else if (op == "HardSigmoid") {
    *kind = ConvAct::kHardSigmoid;
    *alpha = n->attrFloat("alpha", 0.2f);
    *beta = n->attrFloat("beta", 0.5f);
  } else if (op == "Clip") {
    *kind = ConvAct::kClip;
    double lo = -inf, hi = inf;
    if (n->hasInput(1) && !scalarValue(n->inputs[1], &lo)) return false;
    if (n->hasInput(2) && !scalarValue(n->inputs[2], &hi)) return false;
    if (lo > hi) return false;
    *alpha = static_cast<float>(lo);
    *beta = static_cast<float>(hi);
  } else {
    return false;
  }
  return n->outputs.size() == 1 && n->outputs[0];
}

bool sameShape(const Value* a, const Value* b) {
  const Shape& x = a->type.shape;
  const Shape& y = b->type.shape;
  if (!x.rank_known || !y.rank_known || x.rank() != y.rank()) return false;
  for (size_t i = 0; i < x.rank(); ++i)
    if (!(x.dims[i] == y.dims[i])) return false;
  return a->type.dtype == b->type.dtype;
}

// Conv that FusedConv (and the CUDA kernels behind it) can take over.
bool fusableConv(const Node* c) {
  if (c->op_type != "Conv" || !c->domain.empty() || !c->hasInput(1) || !c->inputs[1]->constant)
    return false;
  if (!c->hasOutput(0) || c->outputs.size() != 1 || !isFloat(c->outputs[0])) return false;
  const std::string ap = c->attrString("auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "VALID") return false;
  const auto pads = c->attrInts("pads");
  const size_t sr = pads.size() / 2;
  for (size_t i = 0; i < sr; ++i)
    if (pads[i] != pads[sr + i]) return false;
  return true;
}

class ConvActivationFusion final : public Pass {
 public:
  const char* name() const override { return "ConvActivationFusion"; }
  const char* description() const override {
    return "Conv [+ residual Add] [+ activation] -> FusedConv";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("FusedConv")) {
      cfg.why(name(), "the target backend has no FusedConv kernel (or INT8 lowering fuses instead)");
      return Status::Ok();
    }
    const std::set<std::string> outer = outerScopeNames(g);
    Rewriter rw{g, stats, {}};
    for (Node* conv : nodeList(g)) {
      if (!rw.alive(conv)) continue;
      if (!fusableConv(conv)) {
        if (conv->op_type == "Conv" && conv->domain.empty())
          cfg.why(name(), conv->describe() + ": not fusable (weights not constant, asymmetric pads, SAME auto_pad "
                                             "or a non-float output)");
        continue;
      }
      Value* y = conv->outputs[0];
      if (useCount(y) > 1 && !outer.count(y->name))
        cfg.why(name(), conv->describe() + " + its activation/residual Add: the conv output has " +
                            std::to_string(useCount(y)) + " consumers");
      if (outer.count(y->name)) continue;
      std::vector<Node*> chain;  // nodes absorbed after the conv, in order
      Value* cur = y;
      Value* residual = nullptr;
      Node* next = soleConsumer(cur);
      if (next && next->op_type == "Add" && next->domain.empty() && next->inputs.size() == 2 &&
          next->hasOutput(0)) {
        Value* other = otherInput(next, cur);
        if (other && other != cur && sameShape(other, cur) && sameShape(next->outputs[0], cur)) {
          residual = other;
          chain.push_back(next);
          cur = next->outputs[0];
          next = outer.count(cur->name) ? nullptr : soleConsumer(cur);
        }
      }
      ConvAct kind = ConvAct::kNone;
      float alpha = 0.f, beta = 0.f;
      if (next && activationOf(next, &kind, &alpha, &beta) && next->inputs[0] == cur &&
          sameShape(next->outputs[0], cur)) {
        chain.push_back(next);
      } else {
        kind = ConvAct::kNone;
      }
      if (chain.empty()) continue;  // nothing to fuse: a plain Conv stays a Conv
      std::vector<Value*> inputs = {conv->inputs[0], conv->inputs[1],
                                    conv->hasInput(2) ? conv->inputs[2] : nullptr};
      if (residual) inputs.push_back(residual);
      while (!inputs.empty() && !inputs.back()) inputs.pop_back();
      auto attrs = conv->attrs;
      const std::string conv_name = conv->name;
      Node* last = chain.back();
      for (size_t i = 0; i + 1 < chain.size(); ++i) rw.remove(chain[i]);
      rw.remove(conv);
      Node* f = rw.replace(last, "FusedConv", inputs);
      for (auto& [k, v] : attrs) f->attrs[k] = v;  // merge: keeps fused_from (graph_rewrite.cc)
      f->attrs["activation"] = Attribute::fromString(ops::convActName(kind));
      if (kind == ConvAct::kLeakyRelu || kind == ConvAct::kHardSigmoid || kind == ConvAct::kClip)
        f->attrs["alpha"] = Attribute::fromFloat(alpha);
      if (kind == ConvAct::kHardSigmoid || kind == ConvAct::kClip)
        f->attrs["beta"] = Attribute::fromFloat(beta);
      (void)conv_name;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createConvActivationFusion() {
  return std::make_unique<ConvActivationFusion>();
}

}  // namespace ramjet::passes
