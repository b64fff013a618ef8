// ConstantFolding: a node whose inputs are all constant is evaluated once with its reference
// kernel (the same code the interpreter runs) and replaced by its outputs; a node whose
// integer outputs shape inference already knows exactly (Shape -> Gather -> Concat chains on
// static dims) becomes those constants. Runs right after IdentityElimination so the reshape
// and pattern passes find constant shapes, scales and epsilons as constant operands.
#include <set>

#include "ops/op_registry.h"
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

bool foldable(const Node* n) {
  static const std::set<std::string> kNondeterministic = {"RandomNormal",     "RandomUniform",
                                                          "RandomNormalLike", "RandomUniformLike",
                                                          "Multinomial",      "Bernoulli"};
  if (!n->domain.empty() || kNondeterministic.count(n->op_type)) return false;
  for (const auto& [k, a] : n->attrs)
    if (a.kind == Attribute::Kind::kGraph) return false;  // control flow: bodies may be large
  for (Value* v : n->outputs)
    if (v && v->is_graph_output) return false;  // keep outputs computed by a node
  return !n->outputs.empty();
}

int64_t knownBytes(const TensorType& t) {
  if (!t.shape.rank_known || !t.shape.fullyKnown()) return -1;
  return numElements(t.shape.concrete()) * static_cast<int64_t>(dataTypeSize(t.dtype));
}

// Runs n's shape function and reference kernel on its constant inputs.
Result<std::vector<Tensor>> evaluate(const Node& n) {
  const ops::OpSchema* schema = ops::findOp(n.op_type);
  if (!schema) return makeError(StatusCode::kUnsupported, n.describe(), ": unknown op");
  std::vector<const Tensor*> in;
  std::vector<TensorType> types;
  for (Value* v : n.inputs) {
    in.push_back(v ? v->constant.get() : nullptr);
    types.push_back(v ? v->constant->type() : TensorType{});
  }
  ops::InferContext ictx(n, types, in);
  RJ_RETURN_IF_ERROR(schema->infer(ictx));
  ops::KernelContext kctx(n, in, n.outputs.size());
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    const TensorType& t = ictx.outputs()[i];
    if (n.outputs[i] && t.shape.fullyKnown() && t.dtype != DataType::kUndefined)
      kctx.outputs[i] = Tensor(t.dtype, t.shape.concrete());
  }
  RJ_RETURN_IF_ERROR(schema->reference(kctx));
  for (size_t i = 0; i < n.outputs.size(); ++i)
    if (n.outputs[i] && !kctx.outputs[i].defined())
      return makeError(StatusCode::kInternal, n.describe(), ": kernel produced no output ", i);
  return std::move(kctx.outputs);
}

// The exact value of an integer output known to shape inference, if every element is a number.
bool shapeValueConstant(const Value* v, Tensor* out) {
  const TensorType& t = v->type;
  if (!t.shape_value || !isIntegerType(t.dtype) || !t.shape.rank_known || !t.shape.fullyKnown())
    return false;
  const auto& vals = *t.shape_value;
  auto dims = t.shape.concrete();
  if (dims.size() > 1 || numElements(dims) != static_cast<int64_t>(vals.size())) return false;
  Tensor r(DataType::kInt64, dims);
  for (size_t i = 0; i < vals.size(); ++i) {
    if (!vals[i].known()) return false;
    r.data<int64_t>()[i] = vals[i].value;
  }
  *out = t.dtype == DataType::kInt64 ? r : r.cast(t.dtype);
  return true;
}

class ConstantFolding final : public Pass {
 public:
  const char* name() const override { return "ConstantFolding"; }
  const char* description() const override {
    return "evaluates nodes with constant inputs (and static shape subgraphs) at build time";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    for (Node* n : nodeList(g)) {
      if (!rw.alive(n) || !foldable(n)) continue;
      bool all_const = true;
      for (Value* v : n->inputs)
        if (v && !v->constant) all_const = false;
      std::vector<Tensor> outs;
      if (all_const) {
        bool too_big = false;
        for (Value* v : n->outputs)
          if (v && knownBytes(v->type) > cfg.fold_max_bytes) too_big = true;
        if (too_big) continue;
        auto r = evaluate(*n);
        // A node that fails on its constants is left for the runtime to report in context.
        if (!r.ok()) continue;
        outs = std::move(r).value();
        int64_t bytes = 0;
        for (const auto& t : outs) bytes += static_cast<int64_t>(t.nbytes());
        if (bytes > cfg.fold_max_bytes) continue;
      } else {
        bool ok = true;
        outs.resize(n->outputs.size());
        for (size_t i = 0; i < n->outputs.size() && ok; ++i)
          if (n->outputs[i]) ok = shapeValueConstant(n->outputs[i], &outs[i]);
        if (!ok) continue;
      }
      for (size_t i = 0; i < n->outputs.size(); ++i) {
        Value* v = n->outputs[i];
        if (!v) continue;
        v->type = outs[i].type();
        v->constant = std::make_shared<Tensor>(std::move(outs[i]));
      }
      rw.remove(n);
      ++stats->rewrites;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createConstantFolding() {
  return std::make_unique<ConstantFolding>();
}

}  // namespace ramjet::passes
