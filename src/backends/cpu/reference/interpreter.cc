#include "backends/cpu/reference/interpreter.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <unordered_map>

#include "ops/op_registry.h"

namespace ramjet::reference {
namespace {

class Scope;

class Runner final : public ops::SubgraphRunner {
 public:
  explicit Runner(const Scope* scope) : scope_(scope) {}
  Result<std::vector<Tensor>> run(const Graph& body, const std::vector<Tensor>& inputs) override;

 private:
  const Scope* scope_;
};

// Values of one graph execution; outer-scope lookups walk up to the caller's scope.
class Scope {
 public:
  explicit Scope(const Scope* parent) : parent_(parent) {}
  const Tensor* find(const Value* v) const {
    if (v->constant) return v->constant.get();
    auto it = values_.find(v);
    if (it != values_.end()) return &it->second;
    if (v->is_outer_scope && parent_) return parent_->findByName(v->name);
    return nullptr;
  }
  const Tensor* findByName(const std::string& name) const {
    auto it = by_name_.find(name);
    if (it != by_name_.end()) return it->second;
    return parent_ ? parent_->findByName(name) : nullptr;
  }
  void set(const Value* v, Tensor t) {
    auto& slot = values_[v];
    slot = std::move(t);
    by_name_[v->name] = &slot;
  }
  void erase(const Value* v) {
    by_name_.erase(v->name);
    values_.erase(v);
  }
  void addConstantNames(const Graph& g) {
    for (const auto& v : g.values())
      if (v->constant) by_name_[v->name] = v->constant.get();
  }

 private:
  const Scope* parent_;
  std::unordered_map<const Value*, Tensor> values_;
  std::unordered_map<std::string, const Tensor*> by_name_;
};

// Read on every call (cheap next to allocating a tensor), so a process can lower it for one
// run (tests/unit/test_faults.cc); unset, empty, 0 or not a number: the 16 GiB default.
uint64_t maxTensorBytes() {
  const char* e = std::getenv("RAMJET_MAX_TENSOR_BYTES");
  uint64_t v = e ? std::strtoull(e, nullptr, 10) : 0;
  return v ? v : (16ull << 30);
}

Status checkInput(const Value* v, const Tensor& t, std::map<std::string, int64_t>* symbols) {
  if (v->type.kind != t.kind() && (v->type.dtype != DataType::kUndefined || !t.isTensor()))
    return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' must be ", v->type.toString(), ", got ",
                     t.type().toString());
  if (!t.isTensor()) {
    if (v->type.dtype != DataType::kUndefined && t.dtype() != v->type.dtype && !t.elements().empty())
      return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' must be ", v->type.toString(), ", got ",
                       t.type().toString());
    return Status::Ok();
  }
  if (v->type.dtype != DataType::kUndefined && t.dtype() != v->type.dtype)
    return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' must be ", dataTypeName(v->type.dtype),
                     ", got ", dataTypeName(t.dtype()));
  const Shape& s = v->type.shape;
  if (!s.rank_known) return Status::Ok();
  if (s.rank() != t.rank())
    return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' must have shape ", s.toString(),
                     " (rank ", s.rank(), "), got ", dimsToString(t.dims()));
  for (size_t i = 0; i < s.rank(); ++i) {
    const Dim& d = s.dims[i];
    if (d.known() && d.value != t.dims()[i])
      return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' must have shape ", s.toString(),
                       ", got ", dimsToString(t.dims()), " (dim ", i, " differs)");
    if (!d.known()) {
      auto [it, fresh] = symbols->emplace(d.symbol, t.dims()[i]);
      if (!fresh && it->second != t.dims()[i])
        return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' dim ", i, " ('", d.symbol,
                         "') is ", t.dims()[i], " but another input already set it to ", it->second);
    }
  }
  return Status::Ok();
}

// Ops whose kernels take sequence/optional values; every other kernel sees only tensors.
bool acceptsNonTensors(const std::string& op) {
  static const char* const kOps[] = {"Identity", "If", "Loop", "SequenceInsert", "SequenceErase", "SequenceAt",
                                     "SequenceLength", "ConcatFromSequence", "SequenceMap", "Optional",
                                     "OptionalHasElement", "OptionalGetElement"};
  for (const char* o : kOps)
    if (op == o) return true;
  return false;
}

void pinOuterScopeRefs(const Node& n, const Graph& g, std::unordered_map<const Value*, int>* uses) {
  for (const auto& [name, a] : n.attrs) {
    if (a.kind != Attribute::Kind::kGraph || !a.g) continue;
    for (const auto& v : a.g->values())
      if (v->is_outer_scope)
        if (Value* outer = g.findValue(v->name)) (*uses)[outer] += 1 << 20;
    for (const auto& inner : a.g->nodes()) pinOuterScopeRefs(*inner, g, uses);
  }
}

Result<std::vector<Tensor>> runInScope(const Graph& g, const std::vector<Tensor>& inputs,
                                       const Scope* parent, const RunOptions& opts) {
  if (inputs.size() != g.inputs.size())
    return makeError(StatusCode::kInvalidArgument, "graph '", g.name, "' takes ", g.inputs.size(),
                     " inputs, got ", inputs.size());
  Scope scope(parent);
  scope.addConstantNames(g);
  std::map<std::string, int64_t> symbols;
  for (size_t i = 0; i < inputs.size(); ++i) {
    // Subgraph inputs often carry no or loose types; only top-level inputs are strictly checked.
    if (!parent) RJ_RETURN_IF_ERROR(checkInput(g.inputs[i], inputs[i], &symbols));
    scope.set(g.inputs[i], inputs[i]);
  }
  RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topoOrder());

  // Remaining uses, so intermediates are freed after their last consumer.
  std::unordered_map<const Value*, int> uses;
  for (Node* n : order)
    for (Value* v : n->inputs)
      if (v) ++uses[v];
  for (Value* v : g.outputs) uses[v] += 1 << 20;
  // Subgraph bodies (If/Loop/Scan) read enclosing values by name, not as node inputs: keep
  // every value they reference alive for the whole run.
  for (Node* n : order) pinOuterScopeRefs(*n, g, &uses);

  Runner runner(&scope);
  for (Node* n : order) {
    const ops::OpSchema* schema = ops::findOp(n->op_type);
    if (!schema) return makeError(StatusCode::kUnsupported, n->describe(), ": unknown op");
    std::vector<const Tensor*> in;
    std::vector<TensorType> in_types;
    for (Value* v : n->inputs) {
      if (!v) { in.push_back(nullptr); in_types.emplace_back(); continue; }
      const Tensor* t = scope.find(v);
      if (!t) return makeError(StatusCode::kInternal, n->describe(), ": input '", v->name, "' has no value");
      if (!t->isTensor() && !acceptsNonTensors(n->op_type))
        return makeError(StatusCode::kInvalidArgument, n->describe(), ": input '", v->name, "' is ",
                         t->type().toString(), "; this op takes tensors only");
      in.push_back(t);
      in_types.push_back(t->type());
    }
    ops::InferContext ictx(*n, in_types, in);
    Status st = schema->infer(ictx);
    if (!st.ok()) return Status(StatusCode::kInvalidArgument, st.message());
    ops::KernelContext kctx(*n, in, n->outputs.size());
    kctx.subgraphs = &runner;
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      const TensorType& t = ictx.outputs()[i];
      if (n->outputs[i] && t.shape.fullyKnown() && t.dtype != DataType::kUndefined) {
        // A model can ask for absurd sizes (ConstantOfShape of huge dims): refuse, don't abort.
        std::vector<int64_t> dims = t.shape.concrete();
        unsigned __int128 bytes = std::max<size_t>(dataTypeSize(t.dtype), 1);
        for (int64_t d : dims) bytes *= static_cast<unsigned __int128>(d);
        if (bytes > maxTensorBytes())
          return makeError(StatusCode::kOutOfMemory, n->describe(), ": output ", i, " ", dimsToString(dims),
                           " of ", dataTypeName(t.dtype), " would need more than the ", maxTensorBytes(),
                           "-byte tensor limit (RAMJET_MAX_TENSOR_BYTES)");
        kctx.outputs[i] = Tensor(t.dtype, std::move(dims));
      }
    }
    st = schema->reference(kctx);
    if (!st.ok()) return st;
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      if (!n->outputs[i]) continue;
      const Tensor& t = kctx.outputs[i];
      if (!t.defined())
        return makeError(StatusCode::kInternal, n->describe(), ": kernel produced no output ", i);
      const TensorType& inferred = ictx.outputs()[i];
      if (inferred.dtype != DataType::kUndefined && inferred.dtype != t.dtype())
        return makeError(StatusCode::kInternal, n->describe(), ": kernel output ", i, " is ",
                         dataTypeName(t.dtype()), " but inference said ", dataTypeName(inferred.dtype));
    }
    if (opts.on_node) opts.on_node(*n, kctx.outputs);
    for (size_t i = 0; i < n->outputs.size(); ++i)
      if (n->outputs[i]) scope.set(n->outputs[i], std::move(kctx.outputs[i]));
    if (!opts.keep_intermediates) {
      for (Value* v : n->inputs)
        if (v && !v->constant && !v->is_outer_scope && --uses[v] == 0) scope.erase(v);
    }
  }
  std::vector<Tensor> outs;
  for (Value* v : g.outputs) {
    const Tensor* t = scope.find(v);
    if (!t) return makeError(StatusCode::kInternal, "graph output '", v->name, "' was not computed");
    outs.push_back(*t);
  }
  return outs;
}

Result<std::vector<Tensor>> Runner::run(const Graph& body, const std::vector<Tensor>& inputs) {
  return runInScope(body, inputs, scope_, RunOptions{});
}

}  // namespace

Result<std::vector<Tensor>> run(const Graph& g, const std::map<std::string, Tensor>& inputs,
                                const RunOptions& opts) {
  std::vector<Tensor> ordered;
  for (Value* v : g.inputs) {
    auto it = inputs.find(v->name);
    if (it == inputs.end()) return makeError(StatusCode::kInvalidArgument, "missing input '", v->name, "' (", v->type.toString(), ")");
    ordered.push_back(it->second);
  }
  for (const auto& [name, t] : inputs) {
    bool known = false;
    for (Value* v : g.inputs) known |= v->name == name;
    if (!known) {
      std::string names;
      for (Value* v : g.inputs) names += (names.empty() ? "" : ", ") + v->name;
      return makeError(StatusCode::kInvalidArgument, "the model has no input named '", name, "' (inputs: ", names, ")");
    }
  }
  return runInScope(g, ordered, nullptr, opts);
}

}  // namespace ramjet::reference
