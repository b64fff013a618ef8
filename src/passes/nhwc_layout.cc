// NhwcLayout: 2-D convolutions run channels-last (NHWC) when the backend prefers it
// (PassConfig::prefer_nhwc: CUDA FP16, where cuDNN's tensor-core and fused engines are
// NHWC-native). Every Conv/FusedConv on a rank-4 tensor becomes
//     Transpose(to NHWC) -> FusedConv{layout=NHWC, W as KRSC} -> Transpose(to NCHW)
// and the to-NCHW Transposes are then sunk towards the outputs through layout-agnostic ops:
// elementwise ops (same-shape or per-channel/scalar constant operands, whose shapes are
// remapped), Concat/Split/Slice (axes remapped), Resize (scales/sizes/roi remapped),
// MaxPool/AveragePool (-> PoolNhwc), GlobalAveragePool/GlobalMaxPool (-> ReduceMean/ReduceMax
// over the spatial axes). A to-NCHW Transpose meeting a to-NHWC one cancels; one that moves
// only unit dims (a pooled [N,1,1,C]) becomes a Reshape. So a CNN runs NHWC from its first
// convolution to its head with conversions at the boundaries only. In INT8 plans the int8
// boundaries (Int8Quantize / Int8Dequantize, which convert NCHW<->NHWC themselves) absorb
// the adjacent layout Transposes, and a QConv's float output written channels-first becomes a
// channels-last output + Transpose that sinks like the others. Every value's IR shape is
// its physical layout, so the CPU reference runs the rewritten graph to the same outputs.
#include <algorithm>

#include "ops/fused_conv.h"
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

const std::vector<int64_t> kToNchw = {0, 3, 1, 2};
const std::vector<int64_t> kToNhwc = {0, 2, 3, 1};
// NCHW axis -> the same dimension's NHWC axis.
int64_t nhwcAxis(int64_t a) {
  static const int64_t m[4] = {0, 3, 1, 2};
  return m[a];
}

bool isTranspose(const Node* n, const std::vector<int64_t>& perm) {
  return n && n->op_type == "Transpose" && n->domain.empty() && n->hasInput(0) &&
         n->attrInts("perm") == perm;
}
bool unitSpatial(const Value* s) {
  const Shape& sh = s->type.shape;
  return sh.rank_known && sh.rank() == 4 && sh.dims[1].known() && sh.dims[1].value == 1 &&
         sh.dims[2].known() && sh.dims[2].value == 1;
}
// The NHWC source of v when v = Transpose(src, to-NCHW), or v = Reshape(src, [0,-1,1,1]) of a
// [N,1,1,C] src (the same data: what simplifyTranspose makes of a pooled tensor's Transpose);
// null otherwise.
Value* nhwcSource(const Value* v) {
  if (!v || !v->producer) return nullptr;
  const Node* p = v->producer;
  if (isTranspose(p, kToNchw)) {
    Value* s = p->inputs[0];
    return s->type.shape.rank_known && s->type.shape.rank() == 4 ? s : nullptr;
  }
  std::vector<int64_t> shape;
  if (p->op_type == "Reshape" && p->domain.empty() && p->inputs.size() >= 2 && p->hasInput(1) &&
      constantInts(p->inputs[1], &shape) && shape == std::vector<int64_t>{0, -1, 1, 1} &&
      unitSpatial(p->inputs[0]))
    return p->inputs[0];
  return nullptr;
}
bool rank4(const Value* v) { return v && v->type.shape.rank_known && v->type.shape.rank() == 4; }

bool isFloat(const Value* v) {
  DataType d = v->type.dtype;
  return d == DataType::kFloat32 || d == DataType::kFloat16 || d == DataType::kBFloat16;
}

const std::set<std::string>& unaryOps() {
  static const std::set<std::string> s = {
      "Relu", "Sigmoid", "Tanh", "Silu", "HardSwish", "HardSigmoid", "LeakyRelu", "Clip", "Mish",
      "Gelu", "Elu", "Selu", "Softplus", "Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "Reciprocal",
      "Floor", "Ceil", "Round", "Sign", "Cast", "Identity"};
  return s;
}
const std::set<std::string>& elementwiseOps() {  // every input broadcasts elementwise
  static const std::set<std::string> s = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min",
                                          "Sum", "Mean", "PRelu", "FusedElementwise"};
  return s;
}

std::string unique(Graph& g, const std::string& base) { return uniqueNodeName(g, base); }

class NhwcLayout final : public Pass {
 public:
  const char* name() const override { return "NhwcLayout"; }
  const char* description() const override {
    return "2-D convolutions channels-last; layout transposes sunk to the graph boundaries";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.prefer_nhwc || !cfg.canEmit("FusedConv") || !cfg.canEmit("Transpose")) return Status::Ok();
    outer_ = outerScopeNames(g);
    for (int sweep = 0; sweep < 256; ++sweep) {
      Rewriter rw{g, stats, {}};
      bool changed = false;
      for (Node* n : nodeList(g)) {
        if (!rw.alive(n) || !n->domain.empty()) continue;
        bool outs_ok = true;
        for (Value* o : n->outputs) outs_ok &= !o || !outer_.count(o->name);
        if (!outs_ok) continue;
        if (n->op_type == "Conv" || n->op_type == "FusedConv") {
          changed |= convertConv(g, rw, n);
        } else if (n->op_type == "Transpose") {
          changed |= simplifyTranspose(g, rw, n);
        } else if (n->op_type == "QConv") {
          changed |= splitQConvNchwOutput(g, rw, n);
        } else if (n->op_type == "Int8Dequantize") {
          changed |= splitDequantizeNchwOutput(g, rw, n);
        } else {
          changed |= sink(g, cfg, rw, n);
        }
      }
      if (!changed) break;
      // Fresh values need types before the next sweep can match them. A graph whose shapes
      // cannot be inferred keeps what was rewritten so far (each rewrite is exact on its own).
      if (!g.inferShapes().ok()) break;
    }
    return Status::Ok();
  }

 private:
  std::set<std::string> outer_;

  // Transpose(src, perm) as a new value.
  Value* transposed(Graph& g, Rewriter& rw, Value* src, const std::vector<int64_t>& perm,
                    const std::string& base) {
    Node* t = rw.add("Transpose", base, {src});
    t->attrs["perm"] = Attribute::fromInts(perm);
    return t->outputs[0];
  }
  // NHWC view of a rank-4 NCHW operand: the source of a to-NCHW Transpose, else a new Transpose.
  Value* toNhwc(Graph& g, Rewriter& rw, Value* v, const std::string& base) {
    if (Value* s = nhwcSource(v)) return s;
    return transposed(g, rw, v, kToNhwc, base + "_to_nhwc");
  }
  // Removes n and builds `op` over `inputs` writing fresh NHWC values; each of n's used outputs
  // is then recomputed as Transpose(fresh, to-NCHW) under its old name.
  Node* rebuild(Graph& g, Rewriter& rw, Node* n, const std::string op, std::vector<Value*> inputs) {
    std::vector<Value*> old = n->outputs;
    auto attrs = n->attrs;
    const std::string base = n->name;
    rw.remove(n);
    std::vector<Value*> fresh;
    for (Value* o : old) fresh.push_back(o ? g.addValue(g.uniqueValueName(o->name + "_nhwc")) : nullptr);
    Node* m = g.addNode(op, unique(g, base + "_nhwc"), std::move(inputs), fresh);
    m->attrs = attrs;
    ++stats_added(rw);
    for (size_t i = 0; i < old.size(); ++i) {
      if (!old[i] || useCount(old[i]) == 0) continue;
      Node* t = g.addNode("Transpose", unique(g, base + "_to_nchw"), {fresh[i]}, {old[i]});
      t->attrs["perm"] = Attribute::fromInts(kToNchw);
      ++stats_added(rw);
    }
    ++rw.stats->rewrites;
    return m;
  }
  static int64_t& stats_added(Rewriter& rw) { return rw.stats->nodes_added; }

  bool convertConv(Graph& g, Rewriter& rw, Node* c) {
    if (c->attrString("layout", "NCHW") != "NCHW") return false;
    if (c->inputs.size() < 2 || !c->hasInput(1) || !c->inputs[1]->constant || !c->hasOutput(0)) return false;
    Value* x = c->inputs[0];
    if (!rank4(x) || !isFloat(x) || c->inputs[1]->constant->rank() != 4) return false;
    const std::string ap = c->attrString("auto_pad", "NOTSET");
    if (ap != "NOTSET" && ap != "VALID") return false;
    const auto pads = c->attrInts("pads");
    if (pads.size() == 4 && (pads[0] != pads[2] || pads[1] != pads[3])) return false;
    if (c->hasInput(3) && !rank4(c->inputs[3])) return false;
    const bool was_conv = c->op_type == "Conv";
    std::vector<Value*> in = {toNhwc(g, rw, x, c->name + "_x"),
                              makeConstant(g, c->inputs[1]->name + "_krsc",
                                           ops::permuteTensor(*c->inputs[1]->constant, kToNhwc)),
                              c->hasInput(2) ? c->inputs[2] : nullptr};
    if (c->hasInput(3)) in.push_back(toNhwc(g, rw, c->inputs[3], c->name + "_z"));
    while (!in.empty() && !in.back()) in.pop_back();
    Node* f = rebuild(g, rw, c, "FusedConv", in);
    if (was_conv) f->attrs["activation"] = Attribute::fromString("none");
    f->attrs["layout"] = Attribute::fromString("NHWC");
    return true;
  }

  // QConv{out_nchw=1} writes its float result channels-first itself; as QConv{out_nchw=0} +
  // Transpose(to NCHW) the Transpose can sink into channels-last consumers like any other.
  bool splitQConvNchwOutput(Graph& g, Rewriter& rw, Node* q) {
    if (q->attrInt("out_nchw", 0) != 1 || q->attrFloat("out_scale", 0.f) > 0.f || !q->hasOutput(0)) return false;
    // Also where a Transpose may stay behind (a Concat with channels-first operands): cuDNN's
    // fused int8 kernels write float outputs channels-last only, and on the H100 they beat the
    // channels-first im2col path by more than the extra copy (YOLOv8n INT8 batch 64: 27 such
    // convolutions fell back to it, ~0.1-0.57 ms each).
    return writeChannelsLast(g, rw, q, "out_nchw");
  }

  // Int8Dequantize{nhwc=1} transposes to NCHW as it converts; as nhwc=0 + Transpose(to NCHW) the
  // Transpose can sink into channels-last consumers (a Concat with other channels-last operands)
  // or cancel. Where it stays, it costs about what the fused transpose did.
  bool splitDequantizeNchwOutput(Graph& g, Rewriter& rw, Node* d) {
    if (d->attrInt("nhwc", 0) != 1 || !d->hasOutput(0) || !rank4(d->inputs[0])) return false;
    return writeChannelsLast(g, rw, d, "nhwc");
  }

  // Node n, whose attribute `flag` = 1 makes it write its output channels-first, rebuilt with
  // flag = 0 into a fresh channels-last value, and a Transpose(to NCHW) into the old output.
  bool writeChannelsLast(Graph& g, Rewriter& rw, Node* n, const char* flag) {
    Value* old = n->outputs[0];
    if (old->is_graph_output || old->consumers.empty() || outer_.count(old->name)) return false;
    Value* fresh = g.addValue(g.uniqueValueName(old->name + "_nhwc"));
    auto attrs = n->attrs;
    attrs[flag] = Attribute::fromInt(0);
    const std::string op = n->op_type, base = n->name;
    std::vector<Value*> in = n->inputs;
    rw.remove(n);
    Node* m = g.addNode(op, unique(g, base + "_nhwc"), std::move(in), {fresh});
    m->attrs = std::move(attrs);
    Node* t = g.addNode("Transpose", unique(g, base + "_to_nchw"), {fresh}, {old});
    t->attrs["perm"] = Attribute::fromInts(kToNchw);
    stats_added(rw) += 2;
    ++rw.stats->rewrites;
    return true;
  }

  bool simplifyTranspose(Graph& g, Rewriter& rw, Node* t) {
    if (!t->hasOutput(0)) return false;
    Value* out = t->outputs[0];
    const auto q = t->attrInts("perm");
    // to-NHWC of an NCHW view (Reshape of a pooled [N,1,1,C]) is the view's source.
    if (q == kToNhwc) {
      Node* pr = t->inputs[0]->producer;
      if (pr && pr->op_type == "Reshape")
        if (Value* src = nhwcSource(t->inputs[0])) {
          if (!replaceAllUses(g, out, src)) return false;
          rw.remove(t);
          ++rw.stats->rewrites;
          return true;
        }
    }
    Node* p = t->inputs[0]->producer;
    // to-NHWC of Int8Dequantize{nhwc=1} (NHWC int8 -> NCHW float) read by nothing else: the
    // dequantization without its transpose (nhwc=0) is that NHWC tensor.
    if (q == kToNhwc && p && p->op_type == "Int8Dequantize" && rw.alive(p) && p->attrInt("nhwc", 0) == 1 &&
        useCount(t->inputs[0]) == 1 && !outer_.count(t->inputs[0]->name) && rank4(p->inputs[0])) {
      auto attrs = p->attrs;
      Value* qin = p->inputs[0];
      Node* m = rw.replace(t, "Int8Dequantize", {qin});
      m->attrs = attrs;
      m->attrs["nhwc"] = Attribute::fromInt(0);
      rw.remove(p);
      return true;
    }
    // Transpose(Transpose(a, p), q) = Transpose(a, p∘q); identity -> a.
    if (p && p->op_type == "Transpose" && p->domain.empty() && rw.alive(p)) {
      const auto pp = p->attrInts("perm");
      if (pp.size() != q.size() || q.empty()) return false;
      std::vector<int64_t> r(q.size());
      bool identity = true;
      for (size_t i = 0; i < q.size(); ++i) {
        r[i] = pp[q[i]];
        identity &= r[i] == static_cast<int64_t>(i);
      }
      Value* a = p->inputs[0];
      if (identity) {
        if (!replaceAllUses(g, out, a)) return false;
        rw.remove(t);
        ++rw.stats->rewrites;
        return true;
      }
      Node* m = rw.replace(t, "Transpose", {a});
      m->attrs["perm"] = Attribute::fromInts(r);
      return true;
    }
    // A to-NCHW Transpose of [N, 1, 1, C] moves only unit dims: a Reshape (an alias, no copy).
    if (q == kToNchw && unitSpatial(t->inputs[0])) {
      {
        Tensor shape = Tensor::fromVector<int64_t>({0, -1, 1, 1}, {4});
        Value* sv = makeConstant(g, out->name + "_shape", shape);
        rw.replace(t, "Reshape", {t->inputs[0], sv});
        return true;
      }
    }
    return false;
  }

  // Remaps a constant operand of an elementwise op on NCHW rank-4 data to NHWC; null if it
  // cannot be (rank > 4).
  Value* remapConstant(Graph& g, Value* c) {
    const Tensor& t = *c->constant;
    if (t.numel() == 1 && t.rank() <= 4) return c;
    if (t.rank() > 4) return nullptr;
    std::vector<int64_t> d4(4 - t.rank(), 1);
    d4.insert(d4.end(), t.dims().begin(), t.dims().end());
    return makeConstant(g, c->name + "_nhwc", ops::permuteTensor(t.reshaped(d4), kToNhwc));
  }

  Value* intsConst(Graph& g, const std::string& base, const std::vector<int64_t>& v) {
    return makeConstant(g, base, Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}));
  }

  bool sink(Graph& g, const PassConfig& cfg, Rewriter& rw, Node* n) {
    bool any = false;
    for (Value* v : n->inputs) any |= nhwcSource(v) != nullptr;
    if (!any || !n->hasOutput(0)) return false;
    // INT8 boundaries (after INT8 lowering): Int8Quantize{nhwc=1} transposes NCHW to its NHWC
    // int8 output itself; fed from NHWC data it quantizes elementwise (nhwc=0).
    if (n->op_type == "Int8Quantize") {
      Value* s = nhwcSource(n->inputs[0]);
      if (!s || n->attrInt("nhwc", 0) != 1) return false;
      auto attrs = n->attrs;
      Node* m = rw.replace(n, "Int8Quantize", {s});
      m->attrs = attrs;
      m->attrs["nhwc"] = Attribute::fromInt(0);
      return true;
    }
    const std::string op = n->op_type;  // a copy: rebuild() deletes n
    std::vector<Value*> in = n->inputs;
    if (unaryOps().count(op)) {
      Value* s = nhwcSource(in[0]);
      if (!s) return false;
      for (size_t i = 1; i < in.size(); ++i)
        if (in[i] && !in[i]->constant) return false;
      in[0] = s;
      rebuild(g, rw, n, op, in);
      return true;
    }
    if (elementwiseOps().count(op)) {
      if (!rank4(n->outputs[0]) || n->outputs.size() != 1) return false;
      for (size_t i = 0; i < in.size(); ++i) {
        if (!in[i]) continue;
        if (Value* s = nhwcSource(in[i])) {
          in[i] = s;
        } else if (in[i]->constant) {
          in[i] = remapConstant(g, in[i]);
          if (!in[i]) return false;
        } else {
          return false;  // a channels-first operand: leave this op NCHW
        }
      }
      rebuild(g, rw, n, op, in);
      return true;
    }
    if (op == "Concat") {
      for (size_t i = 0; i < in.size(); ++i) {
        Value* s = nhwcSource(in[i]);
        if (!s) return false;
        in[i] = s;
      }
      int64_t axis = n->attrInt("axis", 1);
      if (axis < 0) axis += 4;
      if (axis < 0 || axis > 3) return false;
      Node* m = rebuild(g, rw, n, op, in);
      m->attrs["axis"] = Attribute::fromInt(nhwcAxis(axis));
      return true;
    }
    if (op == "Split") {
      Value* s = nhwcSource(in[0]);
      if (!s) return false;
      for (size_t i = 1; i < in.size(); ++i)
        if (in[i] && !in[i]->constant) return false;
      int64_t axis = n->attrInt("axis", 0);
      if (axis < 0) axis += 4;
      if (axis < 0 || axis > 3) return false;
      in[0] = s;
      Node* m = rebuild(g, rw, n, op, in);
      m->attrs["axis"] = Attribute::fromInt(nhwcAxis(axis));
      return true;
    }
    if (op == "Slice") {
      Value* s = nhwcSource(in[0]);
      if (!s || in.size() < 3) return false;
      std::vector<int64_t> starts, axes;
      if (!constantInts(in[1], &starts)) return false;
      if (in.size() > 3 && in[3]) {
        if (!constantInts(in[3], &axes)) return false;
      } else {
        for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
      }
      for (auto& a : axes) {
        if (a < 0) a += 4;
        if (a < 0 || a > 3) return false;
        a = nhwcAxis(a);
      }
      in[0] = s;
      if (in.size() < 4) in.resize(4, nullptr);
      in[3] = intsConst(g, n->name + "_axes_nhwc", axes);
      rebuild(g, rw, n, op, in);
      return true;
    }
    if (op == "Resize") {
      Value* s = nhwcSource(in[0]);
      if (!s || n->hasAttr("axes")) return false;
      in[0] = s;
      for (size_t i = 1; i < in.size() && i < 4; ++i) {
        if (!in[i]) continue;
        if (!in[i]->constant) return false;
        const Tensor& t = *in[i]->constant;
        if (t.numel() == 0) continue;
        std::vector<double> v;
        for (int64_t k = 0; k < t.numel(); ++k) v.push_back(t.getDouble(k));
        const size_t halves = i == 1 ? 2 : 1;  // roi: starts then ends
        if (v.size() != 4 * halves) return false;
        std::vector<double> r(v.size());
        for (size_t h = 0; h < halves; ++h)
          for (size_t j = 0; j < 4; ++j) r[h * 4 + j] = v[h * 4 + kToNhwc[j]];
        if (t.dtype() == DataType::kInt64) {
          std::vector<int64_t> ri(r.begin(), r.end());
          in[i] = intsConst(g, in[i]->name + "_nhwc", ri);
        } else {
          in[i] = makeConstant(g, in[i]->name + "_nhwc",
                               tensorFromDoubles(t.dtype(), {static_cast<int64_t>(r.size())}, r));
        }
      }
      rebuild(g, rw, n, op, in);
      return true;
    }
    if (op == "MaxPool" || op == "AveragePool") {
      Value* s = nhwcSource(in[0]);
      if (!s || !cfg.canEmit("PoolNhwc")) return false;
      if (n->outputs.size() > 1 && n->outputs[1]) return false;  // MaxPool indices are NCHW-flat
      if (n->attrInts("kernel_shape").size() != 2) return false;
      Node* m = rebuild(g, rw, n, "PoolNhwc", {s});
      m->attrs["mode"] = Attribute::fromString(op == "MaxPool" ? "max" : "average");
      return true;
    }
    if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
      Value* s = nhwcSource(in[0]);
      const std::string red = op == "GlobalAveragePool" ? "ReduceMean" : "ReduceMax";
      if (!s || !cfg.canEmit(red)) return false;
      Value* axes = intsConst(g, n->name + "_axes", {1, 2});
      Node* m = rebuild(g, rw, n, red, {s, axes});
      m->attrs.clear();
      m->attrs["keepdims"] = Attribute::fromInt(1);
      return true;
    }
    return false;
  }
};

}  // namespace

std::unique_ptr<Pass> createNhwcLayout() {
  return std::make_unique<NhwcLayout>();
}

}  // namespace ramjet::passes
