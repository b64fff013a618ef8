#include "ramjet/graph.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet {

std::string Attribute::toString() const {
  std::ostringstream os;
  auto list = [&os](const auto& v) {
    os << "[";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
    os << "]";
  };
  switch (kind) {
    case Kind::kInt: os << i; break;
    case Kind::kFloat: os << f; break;
    case Kind::kString: os << '"' << s << '"'; break;
    case Kind::kTensor: os << "tensor " << t.type().toString(); break;
    case Kind::kGraph: os << "graph '" << (g ? g->name : "") << "' (" << (g ? g->nodes().size() : 0) << " nodes)"; break;
    case Kind::kInts: list(ints); break;
    case Kind::kFloats: list(floats); break;
    case Kind::kStrings: list(strings); break;
  }
  return os.str();
}

int64_t Node::attrInt(const std::string& k, int64_t def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.i;
}
float Node::attrFloat(const std::string& k, float def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.f;
}
std::string Node::attrString(const std::string& k, const std::string& def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.s;
}
std::vector<int64_t> Node::attrInts(const std::string& k, std::vector<int64_t> def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.ints;
}
std::vector<float> Node::attrFloats(const std::string& k, std::vector<float> def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.floats;
}
const Tensor* Node::attrTensor(const std::string& k) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? nullptr : &it->second.t;
}
const Graph* Node::attrGraph(const std::string& k) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? nullptr : it->second.g.get();
}
std::string Node::describe() const { return op_type + " '" + name + "'"; }

Graph::Graph(Graph&& other) noexcept { *this = std::move(other); }

Graph& Graph::operator=(Graph&& other) noexcept {
  if (this == &other) return *this;
  name = std::move(other.name);
  inputs = std::move(other.inputs);
  outputs = std::move(other.outputs);
  metadata = std::move(other.metadata);
  opsets = std::move(other.opsets);
  parent = other.parent;
  nodes_ = std::move(other.nodes_);
  values_ = std::move(other.values_);
  by_name_ = std::move(other.by_name_);
  for (const auto& n : nodes_)
    for (auto& [k, a] : n->attrs)
      if (a.kind == Attribute::Kind::kGraph && a.g) a.g->parent = this;
  return *this;
}

Value* Graph::addValue(const std::string& n) {
  RJ_CHECK(by_name_.count(n) == 0);
  values_.push_back(std::make_unique<Value>());
  Value* v = values_.back().get();
  v->name = n;
  by_name_[n] = v;
  return v;
}

Value* Graph::findValue(const std::string& n) const {
  auto it = by_name_.find(n);
  return it == by_name_.end() ? nullptr : it->second;
}

std::string Graph::uniqueValueName(const std::string& base) const {
  if (!findValue(base)) return base;
  for (int i = 1;; ++i) {
    std::string n = base + "_" + std::to_string(i);
    if (!findValue(n)) return n;
  }
}

Node* Graph::addNode(std::string op_type, std::string n, std::vector<Value*> ins,
                     std::vector<Value*> outs) {
  nodes_.push_back(std::make_unique<Node>());
  Node* node = nodes_.back().get();
  node->op_type = std::move(op_type);
  node->name = std::move(n);
  node->inputs = std::move(ins);
  node->outputs = std::move(outs);
  for (Value* v : node->inputs)
    if (v) v->consumers.push_back(node);
  for (Value* v : node->outputs)
    if (v) v->producer = node;
  return node;
}

void Graph::removeNode(Node* n) {
  for (Value* v : n->inputs)
    if (v) v->consumers.erase(std::remove(v->consumers.begin(), v->consumers.end(), n), v->consumers.end());
  for (Value* v : n->outputs)
    if (v && v->producer == n) v->producer = nullptr;
  nodes_.erase(std::remove_if(nodes_.begin(), nodes_.end(), [n](const auto& p) { return p.get() == n; }),
               nodes_.end());
}

Result<std::vector<Node*>> Graph::topoOrder() const {
  // Kahn's algorithm; ties broken by insertion order so dumps and plans are deterministic.
  std::map<const Node*, size_t> index;
  for (size_t i = 0; i < nodes_.size(); ++i) index[nodes_[i].get()] = i;
  std::vector<int> pending(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (Value* v : nodes_[i]->inputs)
      if (v && v->producer && index.count(v->producer)) ++pending[i];
  std::set<size_t> ready;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (pending[i] == 0) ready.insert(i);
  std::vector<Node*> order;
  order.reserve(nodes_.size());
  while (!ready.empty()) {
    size_t i = *ready.begin();
    ready.erase(ready.begin());
    Node* n = nodes_[i].get();
    order.push_back(n);
    for (Value* out : n->outputs) {
      if (!out) continue;
      for (Node* c : out->consumers) {
        auto it = index.find(c);
        if (it == index.end()) continue;
        // A consumer may use the same value twice: decrement once per use.
        for (Value* in : c->inputs)
          if (in == out && --pending[it->second] == 0) ready.insert(it->second);
      }
    }
  }
  if (order.size() != nodes_.size()) {
    std::string names;
    int shown = 0;
    for (size_t i = 0; i < nodes_.size() && shown < 5; ++i)
      if (pending[i] > 0) { names += (shown++ ? ", " : "") + nodes_[i]->describe(); }
    return makeError(StatusCode::kInvalidModel, "graph '", name, "' has a cycle (or inputs nothing produces) involving ", names);
  }
  return order;
}

Status Graph::inferShapes() {
  RJ_ASSIGN_OR_RETURN(auto order, topoOrder());
  std::vector<std::string> errors;
  std::set<const Value*> failed;
  for (Node* n : order) {
    const ops::OpSchema* schema = ops::findOp(n->op_type);
    bool skip = schema == nullptr;
    std::vector<TensorType> in_types;
    std::vector<const Tensor*> in_values;
    for (Value* v : n->inputs) {
      if (v && failed.count(v)) skip = true;
      in_types.push_back(v ? v->type : TensorType{});
      in_values.push_back(v && v->constant ? v->constant.get() : nullptr);
    }
    if (!skip) {
      for (size_t i = 0; i < n->inputs.size(); ++i)
        if (n->inputs[i] && in_types[i].dtype == DataType::kUndefined) skip = true;  // unknown input type
    }
    if (skip) {
      for (Value* v : n->outputs) if (v) failed.insert(v);
      continue;
    }
    ops::InferContext ctx(*n, in_types, in_values);
    Status st = schema->infer(ctx);
    if (!st.ok()) {
      errors.push_back(st.message());
      for (Value* v : n->outputs) if (v) failed.insert(v);
      continue;
    }
    ops::propagateShapeValues(ctx);  // values of Cast/Add/Mul/Equal/... in shape subgraphs
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      Value* v = n->outputs[i];
      if (!v) continue;
      const TensorType& t = ctx.outputs()[i];
      if (t.dtype == DataType::kUndefined) {
        errors.push_back(n->describe() + ": shape inference gave no type for output " + std::to_string(i));
        failed.insert(v);
        continue;
      }
      // Keep a declared shape when inference could not even find the rank.
      if (!t.shape.rank_known && v->type.dtype == t.dtype && v->type.shape.rank_known) continue;
      v->type = t;
    }
  }
  if (!errors.empty()) {
    std::string msg = std::to_string(errors.size()) + " shape inference error(s) in graph '" + name + "':";
    for (const auto& e : errors) msg += "\n  " + e;
    return Status(StatusCode::kInvalidModel, msg);
  }
  return Status::Ok();
}

Status Graph::verify() const {
  std::vector<std::string> errors;
  std::set<std::string> node_names;
  for (const auto& n : nodes_) {
    if (!node_names.insert(n->name).second) errors.push_back("duplicate node name '" + n->name + "'");
    const ops::OpSchema* s = ops::findOp(n->op_type);
    if (!s) {
      errors.push_back(n->describe() + ": unknown op");
      continue;
    }
    int nin = static_cast<int>(n->inputs.size()), nout = static_cast<int>(n->outputs.size());
    if (nin < s->min_inputs || (s->max_inputs >= 0 && nin > s->max_inputs))
      errors.push_back(n->describe() + ": has " + std::to_string(nin) + " inputs, expects " +
                       std::to_string(s->min_inputs) + ".." + (s->max_inputs < 0 ? "n" : std::to_string(s->max_inputs)));
    if (nout < s->min_outputs || (s->max_outputs >= 0 && nout > s->max_outputs))
      errors.push_back(n->describe() + ": has " + std::to_string(nout) + " outputs, expects " +
                       std::to_string(s->min_outputs) + ".." + (s->max_outputs < 0 ? "n" : std::to_string(s->max_outputs)));
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      Value* v = n->inputs[i];
      if (!v) {
        if (static_cast<int>(i) < s->min_inputs) errors.push_back(n->describe() + ": required input " + std::to_string(i) + " is missing");
        continue;
      }
      if (!v->producer && !v->is_graph_input && !v->constant && !v->is_outer_scope)
        errors.push_back(n->describe() + ": input '" + v->name + "' is produced by nothing");
    }
    for (Value* v : n->outputs)
      if (v && v->producer != n.get()) errors.push_back(n->describe() + ": output '" + v->name + "' is produced twice");
  }
  for (Value* v : outputs)
    if (!v->producer && !v->is_graph_input && !v->constant && !v->is_outer_scope)
      errors.push_back("graph output '" + v->name + "' is produced by nothing");
  if (errors.empty()) {
    auto order = topoOrder();
    if (!order.ok()) return order.status();
    return Status::Ok();
  }
  std::string msg = std::to_string(errors.size()) + " problem(s) in graph '" + name + "':";
  for (const auto& e : errors) msg += "\n  " + e;
  return Status(StatusCode::kInvalidModel, msg);
}

namespace {
std::string valueRef(const Value* v) {
  if (!v) return "<none>";
  if (v->constant) {
    if (v->constant->numel() <= 8 && v->constant->rank() <= 1) {
      std::string s = v->name + "=" + dataTypeName(v->constant->dtype()) + "{";
      for (int64_t i = 0; i < v->constant->numel(); ++i) {
        std::ostringstream os;
        os << v->constant->getDouble(i);
        s += (i ? "," : "") + os.str();
      }
      return s + "}";
    }
    return v->name + ":" + v->constant->type().toString();
  }
  return v->name;
}
}  // namespace

std::string Graph::dump() const {
  std::ostringstream os;
  os << "graph '" << name << "'";
  for (const auto& [d, v] : opsets) os << " opset(" << (d.empty() ? "ai.onnx" : d) << ")=" << v;
  os << "\n";
  for (const auto& [k, v] : metadata)
    if (!v.empty()) os << "  meta " << k << ": " << v.substr(0, 80) << "\n";
  os << "inputs:\n";
  for (Value* v : inputs) os << "  " << v->name << ": " << v->type.toString() << "\n";
  os << "outputs:\n";
  for (Value* v : outputs) os << "  " << v->name << ": " << v->type.toString() << "\n";
  size_t n_const = 0;
  for (const auto& v : values_) if (v->constant) ++n_const;
  os << "constants: " << n_const << " tensors, " << weightBytes() << " bytes\n";
  auto order = topoOrder();
  std::vector<Node*> nodes;
  if (order.ok()) nodes = *order;
  else for (const auto& n : nodes_) nodes.push_back(n.get());
  os << "nodes: " << nodes.size() << "\n";
  for (Node* n : nodes) {
    os << "  ";
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      if (i) os << ", ";
      os << (n->outputs[i] ? n->outputs[i]->name + ":" + n->outputs[i]->type.toString() : "<none>");
    }
    os << " = " << n->op_type << " '" << n->name << "'(";
    for (size_t i = 0; i < n->inputs.size(); ++i) os << (i ? ", " : "") << valueRef(n->inputs[i]);
    os << ")";
    if (!n->attrs.empty()) {
      os << " {";
      bool first = true;
      for (const auto& [k, a] : n->attrs) {
        os << (first ? "" : ", ") << k << "=" << a.toString();
        first = false;
      }
      os << "}";
    }
    os << "\n";
  }
  return os.str();
}

size_t Graph::weightBytes() const {
  size_t b = 0;
  for (const auto& v : values_) if (v->constant) b += v->constant->nbytes();
  return b;
}

}  // namespace ramjet
