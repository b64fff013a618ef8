#include "passes/graph_rewrite.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace ramjet::passes {
namespace {
void collectOuterRefs(const Graph& body, std::set<std::string>* out) {
  for (const auto& v : body.values())
    if (v->is_outer_scope) out->insert(v->name);
  for (const auto& n : body.nodes())
    for (const auto& [k, a] : n->attrs)
      if (a.kind == Attribute::Kind::kGraph && a.g) collectOuterRefs(*a.g, out);
}
}  // namespace

std::set<std::string> outerScopeNames(const Graph& g) {
  std::set<std::string> names;
  for (const auto& n : g.nodes())
    for (const auto& [k, a] : n->attrs)
      if (a.kind == Attribute::Kind::kGraph && a.g) collectOuterRefs(*a.g, &names);
  return names;
}

static bool hasSubgraphs(const Graph& g) {
  for (const auto& n : g.nodes())
    for (const auto& [k, a] : n->attrs)
      if (a.kind == Attribute::Kind::kGraph) return true;
  return false;
}

bool replaceAllUses(Graph& g, Value* from, Value* to) {
  if (from == to) return true;
  if (hasSubgraphs(g)) {
    auto refs = outerScopeNames(g);
    if (refs.count(from->name)) return false;
  }
  if (from->is_graph_output) {
    // Keep the output's name: make to's producer write `from` directly.
    if (to->is_graph_output || to->is_graph_input || to->constant || to->is_outer_scope)
      return false;
    Node* p = to->producer;
    if (!p) return false;
    if (hasSubgraphs(g) && outerScopeNames(g).count(to->name)) return false;
    for (auto& o : p->outputs)
      if (o == to) o = from;
    from->producer = p;
    to->producer = nullptr;
    from->type = to->type;
    for (Node* c : to->consumers) {
      for (auto& in : c->inputs)
        if (in == to) in = from;
      from->consumers.push_back(c);
    }
    to->consumers.clear();
    return true;
  }
  for (Node* c : from->consumers) {
    for (auto& in : c->inputs)
      if (in == from) in = to;
    to->consumers.push_back(c);
  }
  from->consumers.clear();
  return true;
}

size_t useCount(const Value* v) {
  return v->consumers.size() + (v->is_graph_output ? 1 : 0);
}

Node* soleConsumer(const Value* v) {
  if (v->is_graph_output || v->consumers.size() != 1) return nullptr;
  return v->consumers[0];
}

std::string uniqueNodeName(const Graph& g, const std::string& base) {
  std::set<std::string> used;
  for (const auto& n : g.nodes()) used.insert(n->name);
  if (!used.count(base)) return base;
  for (int i = 1;; ++i) {
    std::string n = base + "_" + std::to_string(i);
    if (!used.count(n)) return n;
  }
}

Value* makeConstant(Graph& g, const std::string& base_name, Tensor t) {
  Value* v = g.addValue(g.uniqueValueName(base_name));
  v->type = t.type();
  v->constant = std::make_shared<Tensor>(std::move(t));
  return v;
}

Node* addNodeWithOutput(Graph& g, const std::string& op, const std::string& base,
                        std::vector<Value*> inputs) {
  Value* out = g.addValue(g.uniqueValueName(base + "_output"));
  return g.addNode(op, uniqueNodeName(g, base), std::move(inputs), {out});
}

bool scalarValue(const Value* v, double* out) {
  if (!v || !v->constant || v->constant->numel() != 1) return false;
  if (!isFloatType(v->constant->dtype()) && !isIntegerType(v->constant->dtype())) return false;
  *out = v->constant->getDouble(0);
  return true;
}

bool isConstantScalar(const Value* v, double x, double tol) {
  if (!v || !v->constant || v->constant->numel() < 1) return false;
  const DataType dt = v->constant->dtype();
  if (!isFloatType(dt) && !isIntegerType(dt)) return false;
  // 16-bit floats cannot hold constants like sqrt(2) exactly.
  const double t = dataTypeSize(dt) == 2 ? std::max(tol, 4e-3 * std::fabs(x)) : tol;
  for (int64_t i = 0; i < v->constant->numel(); ++i)
    if (!(std::fabs(v->constant->getDouble(i) - x) <= t)) return false;
  return true;
}

bool constantInts(const Value* v, std::vector<int64_t>* out) {
  if (!v || !v->constant || !isIntegerType(v->constant->dtype())) return false;
  *out = v->constant->toInt64Vector();
  return true;
}

Value* splitConstOperand(const Node* n, Value** c) {
  if (n->inputs.size() != 2 || !n->inputs[0] || !n->inputs[1]) return nullptr;
  if (n->inputs[1]->constant && !n->inputs[0]->constant) {
    *c = n->inputs[1];
    return n->inputs[0];
  }
  if (n->inputs[0]->constant && !n->inputs[1]->constant) {
    *c = n->inputs[0];
    return n->inputs[1];
  }
  return nullptr;
}

Node* producerOf(const Value* v, const char* op) {
  if (!v || !v->producer || v->producer->op_type != op || !v->producer->domain.empty())
    return nullptr;
  return v->producer;
}

}  // namespace ramjet::passes

namespace ramjet::passes {

void setInput(Node* n, size_t i, Value* v) {
  Value* old = n->inputs[i];
  n->inputs[i] = v;
  if (old) {
    // Drop one use (n may read old through several inputs).
    auto it = std::find(old->consumers.begin(), old->consumers.end(), n);
    if (it != old->consumers.end()) old->consumers.erase(it);
  }
  if (v) v->consumers.push_back(n);
}

void setOutput(Node* n, size_t i, Value* v) {
  Value* old = n->outputs[i];
  if (old && old->producer == n) old->producer = nullptr;
  n->outputs[i] = v;
  if (v) v->producer = n;
}

Value* otherInput(const Node* n, const Value* v) {
  if (n->inputs.size() != 2) return nullptr;
  if (n->inputs[0] == v) return n->inputs[1];
  if (n->inputs[1] == v) return n->inputs[0];
  return nullptr;
}

bool onlyFirstOutputUsed(const Node* n) {
  for (size_t i = 1; i < n->outputs.size(); ++i)
    if (n->outputs[i] && useCount(n->outputs[i]) != 0) return false;
  return true;
}

Tensor tensorFromDoubles(DataType dt, std::vector<int64_t> dims, const std::vector<double>& v) {
  Tensor t(DataType::kFloat64, std::move(dims));
  double* p = t.data<double>();
  for (size_t i = 0; i < v.size(); ++i) p[i] = v[i];
  return dt == DataType::kFloat64 ? t : t.cast(dt);
}

std::vector<double> toDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.getDouble(i);
  return v;
}

std::vector<Node*> nodeList(const Graph& g) {
  std::vector<Node*> out;
  auto order = g.topoOrder();
  if (order.ok()) return *order;
  for (const auto& n : g.nodes()) out.push_back(n.get());
  return out;
}

// The ONNX nodes a replacement absorbs: `old` and every node between the replacement's
// inputs and old's output (walking producers back from old, and through nodes the pass
// already removed, stopping at the new inputs), with what those had absorbed themselves.
static std::vector<std::string> absorbedNames(const Node* old, const std::vector<Value*>& inputs,
                                              const std::map<const Value*, RemovedNode>* removed) {
  std::set<const Value*> stop(inputs.begin(), inputs.end()), seen_values;
  std::set<const Node*> seen;
  std::vector<std::string> names;
  std::vector<const Value*> todo;
  auto visit = [&](const std::vector<std::string>& own, const std::vector<const Value*>& ins) {
    names.insert(names.end(), own.begin(), own.end());
    for (const Value* v : ins)
      if (v && !stop.count(v) && seen_values.insert(v).second) todo.push_back(v);
  };
  auto nodeNames = [](const Node* n) {
    auto f = n->attrs.find("fused_from");
    if (f != n->attrs.end() && f->second.kind == Attribute::Kind::kStrings) return f->second.strings;
    return std::vector<std::string>{n->name};
  };
  seen.insert(old);
  visit(nodeNames(old), std::vector<const Value*>(old->inputs.begin(), old->inputs.end()));
  while (!todo.empty() && seen.size() < 256) {
    const Value* v = todo.back();
    todo.pop_back();
    if (v->producer) {
      if (seen.insert(v->producer).second)
        visit(nodeNames(v->producer), std::vector<const Value*>(v->producer->inputs.begin(), v->producer->inputs.end()));
    } else if (removed) {
      auto it = removed->find(v);
      if (it != removed->end()) visit(it->second.names, it->second.inputs);
    }
  }
  std::reverse(names.begin(), names.end());  // roughly producers first
  std::vector<std::string> unique;
  std::set<std::string> have;
  for (auto& n : names)
    if (have.insert(n).second) unique.push_back(n);
  return unique;
}

Node* replaceNode(Graph& g, Node* old, const std::string& op, std::vector<Value*> inputs,
                  const std::map<const Value*, RemovedNode>* removed) {
  Value* out = old->outputs[0];
  std::string name = old->name;
  std::vector<std::string> from = absorbedNames(old, inputs, removed);
  g.removeNode(old);
  Node* n = g.addNode(op, name, std::move(inputs), {out});
  if (from.size() > 1) {
    Attribute a;
    a.kind = Attribute::Kind::kStrings;
    a.strings = std::move(from);
    n->attrs["fused_from"] = std::move(a);
  }
  return n;
}

}  // namespace ramjet::passes

namespace ramjet::passes {

int64_t convOutChannels(const Node* conv) {
  if (!conv->domain.empty() || (conv->op_type != "Conv" && conv->op_type != "ConvTranspose"))
    return 0;
  if (!conv->hasInput(1) || !conv->inputs[1]->constant) return 0;
  const Tensor& w = *conv->inputs[1]->constant;
  if (!isFloatType(w.dtype()) || w.rank() < 3) return 0;
  if (conv->hasInput(2) &&
      (!conv->inputs[2]->constant || conv->inputs[2]->constant->dtype() != w.dtype()))
    return 0;
  if (conv->op_type == "Conv") return w.dim(0);
  const int64_t group = conv->attrInt("group", 1);
  return group > 0 ? w.dim(1) * group : 0;
}

bool foldIntoConvChannels(Graph& g, Node* conv, const std::vector<double>& scale,
                          const std::vector<double>& shift) {
  const int64_t cout = convOutChannels(conv);
  if (cout == 0 || static_cast<int64_t>(scale.size()) != cout ||
      static_cast<int64_t>(shift.size()) != cout)
    return false;
  const Tensor& w = *conv->inputs[1]->constant;
  std::vector<double> wv = toDoubles(w);
  const int64_t inner = numElements(std::vector<int64_t>(w.dims().begin() + 2, w.dims().end()));
  if (conv->op_type == "Conv") {
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t j = 0; j < w.dim(1) * inner; ++j)
        wv[static_cast<size_t>(o * w.dim(1) * inner + j)] *= scale[static_cast<size_t>(o)];
  } else {
    // ConvTranspose weights are [Cin, Cout/group, k...]; input channel i belongs to group
    // i / (Cin/group), whose output channels start at group * (Cout/group).
    const int64_t group = conv->attrInt("group", 1);
    const int64_t cin = w.dim(0), cog = w.dim(1);
    if (cin % group != 0) return false;
    for (int64_t i = 0; i < cin; ++i) {
      const int64_t gi = i / (cin / group);
      for (int64_t j = 0; j < cog; ++j)
        for (int64_t k = 0; k < inner; ++k)
          wv[static_cast<size_t>((i * cog + j) * inner + k)] *=
              scale[static_cast<size_t>(gi * cog + j)];
    }
  }
  std::vector<double> bv(static_cast<size_t>(cout), 0.0);
  if (conv->hasInput(2)) {
    bv = toDoubles(*conv->inputs[2]->constant);
    if (static_cast<int64_t>(bv.size()) != cout) return false;
  }
  for (int64_t o = 0; o < cout; ++o)
    bv[static_cast<size_t>(o)] =
        bv[static_cast<size_t>(o)] * scale[static_cast<size_t>(o)] + shift[static_cast<size_t>(o)];
  Value* nw = makeConstant(g, conv->name + "_folded_W", tensorFromDoubles(w.dtype(), w.dims(), wv));
  Value* nb = makeConstant(g, conv->name + "_folded_B", tensorFromDoubles(w.dtype(), {cout}, bv));
  setInput(conv, 1, nw);
  if (conv->inputs.size() < 3) {
    conv->inputs.push_back(nb);
    nb->consumers.push_back(conv);
  } else {
    setInput(conv, 2, nb);
  }
  return true;
}

bool perChannel(const Value* c, size_t rank, int64_t channels, std::vector<double>* out) {
  if (!c || !c->constant || !isFloatType(c->constant->dtype()) || rank < 2) return false;
  const Tensor& t = *c->constant;
  if (t.rank() > rank) return false;
  // Right-align t's dims against the tensor's; only the channel axis (1) may exceed 1.
  const size_t off = rank - t.rank();
  int64_t along = 1;
  for (size_t i = 0; i < t.rank(); ++i) {
    const size_t axis = off + i;
    if (t.dims()[i] == 1) continue;
    if (axis != 1 || t.dims()[i] != channels) return false;
    along = channels;
  }
  std::vector<double> v = toDoubles(t);
  out->assign(static_cast<size_t>(channels), 0.0);
  for (int64_t i = 0; i < channels; ++i)
    (*out)[static_cast<size_t>(i)] = v[static_cast<size_t>(along == 1 ? 0 : i)];
  return true;
}

}  // namespace ramjet::passes
