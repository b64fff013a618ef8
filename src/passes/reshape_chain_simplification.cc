// ReshapeChainSimplification: Transpose∘Transpose -> one Transpose (or none), chains of
// Reshape/Squeeze/Unsqueeze/Flatten -> one Reshape, and no-op reshapes/transposes removed.
// Runs after constant folding: a chain's shape operand is only usable once it is constant.
#include <numeric>

#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

bool isReshapeLike(const Node* n) {
  return n && n->domain.empty() &&
         (n->op_type == "Reshape" || n->op_type == "Squeeze" || n->op_type == "Unsqueeze" ||
          n->op_type == "Flatten");
}

// The permutation of a Transpose (default: reversed dims, which needs the rank).
bool permOf(const Node* n, std::vector<int64_t>* perm) {
  if (n->hasAttr("perm")) {
    *perm = n->attrInts("perm");
    return true;
  }
  const Shape& s = n->inputs[0]->type.shape;
  if (n->inputs[0]->type.dtype == DataType::kUndefined || !s.rank_known) return false;
  perm->resize(s.rank());
  for (size_t i = 0; i < s.rank(); ++i) (*perm)[i] = static_cast<int64_t>(s.rank() - 1 - i);
  return true;
}

bool isIdentityPerm(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

bool sameKnownShape(const Value* a, const Value* b) {
  if (a->type.dtype == DataType::kUndefined || b->type.dtype == DataType::kUndefined) return false;
  const Shape& x = a->type.shape;
  const Shape& y = b->type.shape;
  if (!x.rank_known || !y.rank_known || x.rank() != y.rank()) return false;
  for (size_t i = 0; i < x.rank(); ++i) {
    // Symbols are only trusted when equal and named (inference reuses a symbol for one value).
    if (x.dims[i] != y.dims[i]) return false;
    if (!x.dims[i].known() && x.dims[i].symbol.empty()) return false;
  }
  return true;
}

class ReshapeChainSimplification final : public Pass {
 public:
  const char* name() const override { return "ReshapeChainSimplification"; }
  const char* description() const override {
    return "merges Transpose/Reshape/Squeeze/Unsqueeze chains, removes no-op ones";
  }
  Status run(Graph& g, const PassConfig&, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    for (Node* n : nodeList(g)) {
      if (!rw.alive(n) || !n->domain.empty() || !n->hasInput(0) || !n->hasOutput(0)) continue;
      Value* in = n->inputs[0];
      Value* out = n->outputs[0];
      if (n->op_type == "Transpose") {
        std::vector<int64_t> p2;
        if (!permOf(n, &p2)) continue;
        if (isIdentityPerm(p2)) {
          if (replaceAllUses(g, out, in)) {
            rw.remove(n);
            ++stats->rewrites;
          }
          continue;
        }
        Node* p = producerOf(in, "Transpose");
        std::vector<int64_t> p1;
        if (!p || !permOf(p, &p1) || p1.size() != p2.size()) continue;
        std::vector<int64_t> q(p2.size());
        for (size_t i = 0; i < q.size(); ++i) q[i] = p1[static_cast<size_t>(p2[i])];
        Value* x = p->inputs[0];
        if (isIdentityPerm(q)) {
          if (replaceAllUses(g, out, x)) {
            rw.remove(n);
            ++stats->rewrites;
          }
          continue;
        }
        Node* t = rw.replace(n, "Transpose", {x});
        t->attrs["perm"] = Attribute::fromInts(q);
        continue;
      }
      if (!isReshapeLike(n)) continue;
      // No-op: the output has the input's shape.
      if (sameKnownShape(in, out) && in->type.dtype == out->type.dtype) {
        if (replaceAllUses(g, out, in)) {
          rw.remove(n);
          ++stats->rewrites;
        }
        continue;
      }
      Node* p = in->producer;
      if (!isReshapeLike(p) || !rw.alive(p) || !p->hasInput(0)) continue;
      Value* x = p->inputs[0];
      Value* shape = nullptr;
      const Shape& os = out->type.shape;
      if (out->type.dtype != DataType::kUndefined && os.rank_known && os.fullyKnown()) {
        shape = makeConstant(
            g, out->name + "_shape",
            Tensor::fromVector<int64_t>(os.concrete(), {static_cast<int64_t>(os.rank())}));
      } else if (n->op_type == "Reshape" && n->hasInput(1) && n->inputs[1]->constant) {
        // Reshape(Reshape(x, a), b) == Reshape(x, b) unless b copies dims (0) from the middle.
        std::vector<int64_t> b = n->inputs[1]->constant->toInt64Vector();
        bool copies = false;
        for (int64_t d : b) copies |= d == 0 && n->attrInt("allowzero", 0) == 0;
        if (copies) continue;
        shape = n->inputs[1];
      } else {
        continue;
      }
      Node* r = rw.replace(n, "Reshape", {x, shape});
      r->attrs["allowzero"] = Attribute::fromInt(1);
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createReshapeChainSimplification() {
  return std::make_unique<ReshapeChainSimplification>();
}

}  // namespace ramjet::passes
