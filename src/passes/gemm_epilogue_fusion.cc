// GemmEpilogueFusion: MatMul(A[...,M,K], B[K,N]) or Gemm(A, B, bias) followed by (any order,
// each the sole consumer of the previous) an Add of a constant bias [N], an Add of a same-shape
// residual tensor, and at most one Relu/Gelu at the end -> FusedGemm(A, B, bias?, residual?)
// {trans_b, alpha, activation}: one cuBLASLt call with a BIAS/RELU_BIAS/GELU_BIAS epilogue and
// beta=1 with C = residual. In level 4: after GeluFusion made the Gelus and after
// AttentionFusion took the Q·Kᵀ and ·V MatMuls (their B is not 2-D, so they would not match
// anyway).
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

bool fullyEqual(const Shape& a, const Shape& b) {
  if (!a.rank_known || !b.rank_known || a.rank() != b.rank()) return false;
  for (size_t i = 0; i < a.rank(); ++i)
    if (a.dims[i] != b.dims[i] || (!a.dims[i].known() && a.dims[i].symbol.empty())) return false;
  return true;
}

// A constant of n elements shaped [N] or [1, ..., 1, N].
bool isBias(const Value* v, int64_t n) {
  if (!v || !v->constant || v->constant->numel() != n || n <= 0) return false;
  const auto& d = v->constant->dims();
  if (d.empty() || d.back() != n) return false;
  for (size_t i = 0; i + 1 < d.size(); ++i)
    if (d[i] != 1) return false;
  return true;
}

struct GemmState {
  Value* a = nullptr;
  Value* b = nullptr;
  Value* bias = nullptr;
  Value* residual = nullptr;
  bool trans_b = false;
  float alpha = 1.f;
  std::string act = "none";
  int64_t n = -1;
};

bool seed(Node* n, GemmState* s) {
  if (!n->domain.empty() || n->outputs.size() != 1 || !n->outputs[0]) return false;
  const DataType dt = n->outputs[0]->type.dtype;
  if (!isFloatType(dt)) return false;
  if (n->op_type == "MatMul") {
    s->a = n->inputs[0];
    s->b = n->inputs[1];
  } else if (n->op_type == "Gemm") {
    if (n->attrInt("transA", 0) != 0) return false;
    s->a = n->inputs[0];
    s->b = n->inputs[1];
    s->trans_b = n->attrInt("transB", 0) != 0;
    s->alpha = n->attrFloat("alpha", 1.f);
  } else if (n->op_type == "FusedGemm") {
    s->a = n->inputs[0];
    s->b = n->inputs[1];
    s->bias = n->inputs.size() > 2 ? n->inputs[2] : nullptr;
    s->residual = n->inputs.size() > 3 ? n->inputs[3] : nullptr;
    s->trans_b = n->attrInt("trans_b", 0) != 0;
    s->alpha = n->attrFloat("alpha", 1.f);
    s->act = n->attrString("activation", "none");
  } else {
    return false;
  }
  if (!s->a || !s->b || s->a->type.dtype != dt || s->b->type.dtype != dt) return false;
  const Shape& as = s->a->type.shape;
  const Shape& bs = s->b->type.shape;
  if (!as.rank_known || !bs.rank_known || as.rank() < 2 || bs.rank() != 2) return false;
  if (n->op_type == "Gemm" && as.rank() != 2) return false;
  const Dim nd = s->trans_b ? bs.dims[0] : bs.dims[1];
  if (!nd.known()) return false;
  s->n = nd.value;
  if (n->op_type == "Gemm" && n->inputs.size() > 2 && n->inputs[2]) {
    // C is taken as the bias only when it is one (beta 1, a constant row vector).
    if (n->attrFloat("beta", 1.f) != 1.f || !isBias(n->inputs[2], s->n)) return false;
    s->bias = n->inputs[2];
  }
  return true;
}

class GemmEpilogueFusion final : public Pass {
 public:
  const char* name() const override { return "GemmEpilogueFusion"; }
  const char* description() const override {
    return "MatMul/Gemm + bias Add + residual Add + Relu/Gelu -> FusedGemm (cuBLASLt epilogue)";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    // A device lowering: only for a target that asked for it (the builder sets can_emit).
    if (!cfg.can_emit || !cfg.canEmit("FusedGemm")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    for (Node* n : nodeList(g)) {
      if (!rw.alive(n)) continue;
      GemmState s;
      if (!seed(n, &s)) continue;
      Node* cur = n;
      int absorbed = 0;
      for (;;) {
        Value* y = cur->outputs[0];
        Node* c = soleConsumer(y);
        if (!c || !rw.alive(c) || !c->domain.empty() || c->outputs.size() != 1 || !c->outputs[0]) break;
        if (c->op_type == "Add" && s.act == "none") {
          Value* o = otherInput(c, y);
          if (!o || o == y) break;
          if (!s.bias && isBias(o, s.n) && fullyEqual(c->outputs[0]->type.shape, y->type.shape)) {
            s.bias = o;
          } else if (!s.residual && !o->constant && o->type.dtype == y->type.dtype &&
                     fullyEqual(o->type.shape, y->type.shape) &&
                     fullyEqual(c->outputs[0]->type.shape, y->type.shape)) {
            s.residual = o;
          } else {
            break;
          }
        } else if (c->op_type == "Relu" && s.act == "none") {
          s.act = "relu";
        } else if (c->op_type == "Gelu" && s.act == "none") {
          const std::string ap = c->attrString("approximate", "none");
          if (ap != "none" && ap != "tanh") break;
          s.act = ap == "tanh" ? "gelu_tanh" : "gelu";
        } else {
          break;
        }
        cur = c;
        ++absorbed;
      }
      if (absorbed == 0) continue;
      Value* bias = s.bias;
      if (bias && bias->constant->rank() != 1) {
        bias = makeConstant(g, bias->name + "_1d", bias->constant->reshaped({s.n}).clone());
      }
      std::vector<Value*> ins = {s.a, s.b};
      if (bias || s.residual) ins.push_back(bias);
      if (s.residual) ins.push_back(s.residual);
      Node* f = rw.replace(cur, "FusedGemm", ins);
      f->attrs["trans_b"] = Attribute::fromInt(s.trans_b ? 1 : 0);
      f->attrs["alpha"] = Attribute::fromFloat(s.alpha);
      f->attrs["activation"] = Attribute::fromString(s.act);
      stats->rewrites += absorbed - 1;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createGemmEpilogueFusion() { return std::make_unique<GemmEpilogueFusion>(); }

}  // namespace ramjet::passes
