// MatMulAddToGemm: 2-D MatMul followed by an Add that broadcasts to its result -> Gemm with C,
// and Gemm without C followed by such an Add -> Gemm with that C (bias-add folding). Gemm is
// one cuBLASLt call with a bias epilogue; MatMul + Add is two kernels.
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

// c broadcasts unidirectionally to the known 2-D shape out (Gemm's rule for C).
bool broadcastsTo(const Value* c, const Shape& out) {
  const Shape& s = c->type.shape;
  if (c->type.dtype == DataType::kUndefined || !s.rank_known || s.rank() > 2) return false;
  for (size_t i = 0; i < s.rank(); ++i) {
    const Dim& d = s.dims[i];
    const Dim& o = out.dims[out.rank() - s.rank() + i];
    if (d.known() && d.value == 1) continue;
    if (d != o || (!d.known() && d.symbol.empty())) return false;
  }
  return true;
}

class MatMulAddToGemm final : public Pass {
 public:
  const char* name() const override { return "MatMulAddToGemm"; }
  const char* description() const override {
    return "2-D MatMul + Add -> Gemm; Gemm + bias Add -> Gemm with C";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    for (Node* add : nodeList(g)) {
      if (!rw.alive(add) || add->op_type != "Add" || !add->domain.empty() ||
          add->inputs.size() != 2)
        continue;
      for (int side = 0; side < 2; ++side) {
        Value* y = add->inputs[static_cast<size_t>(side)];
        Value* c = add->inputs[static_cast<size_t>(1 - side)];
        Node* mm = y->producer;
        if (!mm || !mm->domain.empty() || c == y) continue;
        const bool candidate = mm->op_type == "MatMul" || mm->op_type == "Gemm";
        const std::string pair = candidate ? mm->describe() + " + " + add->describe() + ": " : "";
        if (soleConsumer(y) != add) {
          if (candidate) cfg.why(name(), pair + "the product has " + std::to_string(useCount(y)) + " consumers");
          continue;
        }
        const Shape& ys = y->type.shape;
        if (!isFloatType(y->type.dtype) || !ys.rank_known || ys.rank() != 2) {
          if (candidate && isFloatType(y->type.dtype))
            cfg.why(name(), pair + "the product is not 2-D (" + ys.toString() + "); Gemm is 2-D only");
          continue;
        }
        if (c->type.dtype != y->type.dtype || !broadcastsTo(c, ys)) continue;
        if (!(add->outputs[0]->type.shape == ys)) continue;
        if (mm->op_type == "MatMul") {
          Value* a = mm->inputs[0];
          Value* b = mm->inputs[1];
          if (!a->type.shape.rank_known || a->type.shape.rank() != 2 || !b->type.shape.rank_known ||
              b->type.shape.rank() != 2)
            continue;
          rw.replace(add, "Gemm", {a, b, c});
          break;
        }
        if (mm->op_type == "Gemm" && !mm->hasInput(2) && c->constant) {
          // alpha*A*B + beta*C with C := c / beta keeps the Add exact only for beta == 1.
          if (mm->attrFloat("beta", 1.f) != 1.f) continue;
          Value* out = add->outputs[0];
          rw.remove(add);
          if (mm->inputs.size() < 3) {
            mm->inputs.push_back(c);
            c->consumers.push_back(mm);
          } else {
            setInput(mm, 2, c);
          }
          setOutput(mm, 0, out);
          ++stats->rewrites;
          break;
        }
      }
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createMatMulAddToGemm() {
  return std::make_unique<MatMulAddToGemm>();
}

}  // namespace ramjet::passes
