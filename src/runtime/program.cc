#include "runtime/program.h"

#include <algorithm>
#include <map>

#include "ops/op_registry.h"

namespace ramjet::runtime {

Result<Program> Program::make(const Graph& g, std::vector<const Node*> order, std::vector<Placement> placement) {
  Program p;
  p.graph = &g;
  for (const auto& v : g.values()) {
    p.index[v.get()] = static_cast<int>(p.values.size());
    p.values.push_back(v.get());
  }
  if (order.size() != g.nodes().size() || placement.size() != order.size())
    return makeError(StatusCode::kInvalidPlan, "execution order lists ", order.size(), " nodes, the graph has ",
                     g.nodes().size());
  std::vector<bool> ready(p.values.size(), false);
  for (const auto& v : g.values())
    if (v->constant || v->is_graph_input) ready[p.index[v.get()]] = true;
  for (const Node* n : order) {
    for (const Value* v : n->inputs)
      if (v && !ready[p.index.at(v)])
        return makeError(StatusCode::kInvalidPlan, n->describe(), " reads '", v->name,
                         "' before it is produced in the execution order");
    for (const Value* v : n->outputs)
      if (v) ready[p.index.at(v)] = true;
  }
  for (const Value* v : g.outputs)
    if (!ready[p.index.at(v)]) return makeError(StatusCode::kInvalidPlan, "graph output '", v->name, "' is never produced");
  p.order = std::move(order);
  p.placement = std::move(placement);
  return p;
}

Result<Tensor> evalShapeOp(const Node& n, const std::vector<int64_t>& dims) {
  if (n.op_type == "Size") return Tensor::scalar<int64_t>(numElements(dims));
  const int64_t r = static_cast<int64_t>(dims.size());
  int64_t start = n.attrInt("start", 0), end = n.attrInt("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<int64_t> v;
  for (int64_t i = start; i < end; ++i) v.push_back(dims[i]);
  Tensor t(DataType::kInt64, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
  return t;
}

Result<Resolved> resolveShapes(const Program& p, const std::vector<std::vector<int64_t>>& input_dims) {
  const Graph& g = *p.graph;
  Resolved r;
  r.values.resize(p.values.size());
  if (input_dims.size() != g.inputs.size())
    return makeError(StatusCode::kInvalidArgument, "expected dims for ", g.inputs.size(), " inputs, got ",
                     input_dims.size());
  std::map<std::string, int64_t> symbols;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const Value* v = g.inputs[i];
    const auto& d = input_dims[i];
    const Shape& s = v->type.shape;
    if (s.rank_known) {
      if (s.rank() != d.size())
        return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' has shape ", s.toString(), ", got ",
                         dimsToString(d));
      for (size_t k = 0; k < d.size(); ++k) {
        if (s.dims[k].known() && s.dims[k].value != d[k])
          return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' has shape ", s.toString(), ", got ",
                           dimsToString(d), " (dim ", k, " differs)");
        if (!s.dims[k].known()) {
          auto [it, fresh] = symbols.emplace(s.dims[k].symbol, d[k]);
          if (!fresh && it->second != d[k])
            return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' dim ", k, " ('", s.dims[k].symbol,
                             "') is ", d[k], " but another input set it to ", it->second);
        }
      }
    }
    for (int64_t x : d)
      if (x < 0) return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' has a negative dim");
    ValueSlot& slot = r.values[p.index.at(v)];
    slot.dtype = v->type.dtype;
    slot.dims = d;
    slot.known = true;
  }
  for (const auto& v : g.values()) {
    if (!v->constant) continue;
    ValueSlot& slot = r.values[p.index.at(v.get())];
    slot.dtype = v->constant->dtype();
    slot.dims = v->constant->dims();
    slot.known = true;
    slot.host = std::shared_ptr<const Tensor>(v->constant, v->constant.get());
  }
  for (size_t pos = 0; pos < p.order.size(); ++pos) {
    const Node& n = *p.order[pos];
    const ops::OpSchema* schema = ops::findOp(n.op_type);
    if (!schema) return makeError(StatusCode::kUnsupported, n.describe(), ": unknown op");
    std::vector<TensorType> in_types;
    std::vector<const Tensor*> in_values;
    bool inputs_known = true;
    for (const Value* v : n.inputs) {
      if (!v) {
        in_types.emplace_back();
        in_values.push_back(nullptr);
        continue;
      }
      const ValueSlot& s = r.values[p.index.at(v)];
      if (!s.known) inputs_known = false;
      in_types.push_back(s.known ? TensorType{s.dtype, Shape::fromDims(s.dims)} : v->type);
      in_values.push_back(s.host.get());
    }
    if (!inputs_known) {
      r.dynamic = true;
      continue;  // outputs stay unknown
    }
    const bool host = p.placement[pos] == Placement::kHost;
    if (host && (n.op_type == "Shape" || n.op_type == "Size")) {
      RJ_ASSIGN_OR_RETURN(Tensor t, evalShapeOp(n, r.values[p.index.at(n.inputs[0])].dims));
      ValueSlot& s = r.values[p.index.at(n.outputs[0])];
      s.dtype = t.dtype();
      s.dims = t.dims();
      s.known = true;
      s.host = std::make_shared<Tensor>(std::move(t));
      continue;
    }
    ops::InferContext ictx(n, in_types, in_values);
    Status st = schema->infer(ictx);
    if (!st.ok()) return Status(StatusCode::kInvalidArgument, st.message());
    if (host) {
      ops::KernelContext kctx(n, in_values, n.outputs.size());
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (n.inputs[i] && !in_values[i])
          return makeError(StatusCode::kInternal, n.describe(), ": host node input '", n.inputs[i]->name,
                           "' has no host value");
      for (size_t i = 0; i < n.outputs.size(); ++i) {
        const TensorType& t = ictx.outputs()[i];
        if (n.outputs[i] && t.shape.fullyKnown() && t.dtype != DataType::kUndefined)
          kctx.outputs[i] = Tensor(t.dtype, t.shape.concrete());
      }
      RJ_RETURN_IF_ERROR(schema->reference(kctx));
      for (size_t i = 0; i < n.outputs.size(); ++i) {
        if (!n.outputs[i]) continue;
        const Tensor& t = kctx.outputs[i];
        if (!t.defined()) return makeError(StatusCode::kInternal, n.describe(), ": host kernel produced no output ", i);
        ValueSlot& s = r.values[p.index.at(n.outputs[i])];
        s.dtype = t.dtype();
        s.dims = t.dims();
        s.known = true;
        s.host = std::make_shared<Tensor>(t);
      }
      continue;
    }
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (!n.outputs[i]) continue;
      const TensorType& t = ictx.outputs()[i];
      ValueSlot& s = r.values[p.index.at(n.outputs[i])];
      s.dtype = t.dtype;
      if (t.dtype != DataType::kUndefined && t.shape.fullyKnown()) {
        s.dims = t.shape.concrete();
        s.known = true;
      } else if (!r.dynamic) {
        r.dynamic = true;
        r.dynamic_reason = n.describe() + " output '" + n.outputs[i]->name + "' has a data-dependent shape " +
                           t.toString();
      }
    }
  }
  return r;
}

Result<ActivationLayout> layoutActivations(const Program& p, const Resolved& r,
                                           const std::function<bool(size_t, size_t)>& host_only) {
  if (r.dynamic)
    return makeError(StatusCode::kInternal, "cannot lay out memory of a dynamic signature: ", r.dynamic_reason);
  const size_t nv = p.values.size();
  ActivationLayout L;
  L.offset.assign(nv, -1);
  L.alias_root.assign(nv, -1);
  L.upload.assign(nv, false);
  std::vector<int> first(nv, -1), last(nv, -1);
  std::vector<bool> in_arena(nv, false);
  auto isDeviceRun = [](Placement pl) { return pl == Placement::kDevice || pl == Placement::kCpuFallback; };
  for (size_t pos = 0; pos < p.order.size(); ++pos) {
    const Node& n = *p.order[pos];
    const Placement pl = p.placement[pos];
    const int step = static_cast<int>(pos);
    if (pl == Placement::kAlias) {
      int in = p.indexOf(n.inputs.empty() ? nullptr : n.inputs[0]);
      int out = p.indexOf(n.outputs.empty() ? nullptr : n.outputs[0]);
      if (in < 0 || out < 0) return makeError(StatusCode::kInvalidPlan, n.describe(), ": alias node without data in/out");
      int root = L.alias_root[in] >= 0 ? L.alias_root[in] : in;
      if (!in_arena[root] || p.values[out]->is_graph_output)
        return makeError(StatusCode::kInvalidPlan, n.describe(), ": marked as an alias of '", p.values[in]->name,
                         "', which does not live in the arena");
      L.alias_root[out] = root;
      last[root] = std::max(last[root], step);
      ++L.report.num_aliases;
    }
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const Value* v = n.inputs[k];
      if (!v) continue;
      int i = p.indexOf(v);
      int root = L.alias_root[i] >= 0 ? L.alias_root[i] : i;
      if (in_arena[root]) last[root] = std::max(last[root], step);
      // A host value read by a kernel on the device: uploaded into the arena per signature.
      if (isDeviceRun(pl) && r.values[i].host && !v->constant && !v->is_graph_output &&
          !(host_only && host_only(pos, k))) {
        if (!in_arena[i]) {
          in_arena[i] = true;
          first[i] = 0;
        }
        L.upload[i] = true;
        last[i] = static_cast<int>(p.order.size());  // alive all run: uploaded once per signature
      }
    }
    if (isDeviceRun(pl)) {
      for (const Value* v : n.outputs) {
        if (!v || v->is_graph_output) continue;
        int i = p.indexOf(v);
        in_arena[i] = true;
        first[i] = step;
        last[i] = std::max(last[i], step);
      }
    }
  }
  for (size_t i = 0; i < nv; ++i) {
    if (!in_arena[i]) continue;
    const ValueSlot& s = r.values[i];
    builder::BufferRequest q;
    q.bytes = static_cast<size_t>(numElements(s.dims)) * dataTypeSize(s.dtype);
    q.first = first[i];
    q.last = last[i];
    L.requests.push_back(q);
    L.request_value.push_back(static_cast<int>(i));
  }
  L.plan = builder::planMemory(L.requests);
  for (size_t k = 0; k < L.requests.size(); ++k) L.offset[L.request_value[k]] = static_cast<int64_t>(L.plan.offsets[k]);
  for (size_t i = 0; i < nv; ++i)
    if (L.alias_root[i] >= 0) L.offset[i] = L.offset[L.alias_root[i]];
  L.report.arena_bytes = L.plan.arena_bytes;
  L.report.sum_tensor_bytes = L.plan.sum_bytes;
  L.report.peak_live_bytes = L.plan.peak_live_bytes;
  L.report.num_tensors = L.requests.size();
  return L;
}

}  // namespace ramjet::runtime
