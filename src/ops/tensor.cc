// Shape/type inference for the tensor family (see ops_tensor.def): reshapes, data movement,
// gathers/scatters, shape ops. Reductions, TopK and Arg* are in tensor_reduce.cc; Resize in
// tensor_resize.cc.
//
// Shape subgraphs (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) are followed through
// TensorType::shape_value so that models with a symbolic batch still get exact dims.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

// ---------------------------------------------------------------- helpers

static bool isIntType(DataType dt) { return dt == DataType::kInt64 || dt == DataType::kInt32; }

std::optional<std::vector<Dim>> knownDims(const InferContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return std::nullopt;
  if (const Tensor* t = ctx.value(i)) {
    if ((!isIntegerType(t->dtype()) && t->dtype() != DataType::kBool) || t->rank() > 1 ||
        t->numel() > kMaxShapeValueElems)
      return std::nullopt;
    std::vector<Dim> out;
    out.reserve(t->numel());
    // Negative numbers (a Reshape's -1) stay numbers: value < 0 with an empty symbol.
    for (int64_t k = 0; k < t->numel(); ++k) out.emplace_back(t->getInt(k));
    return out;
  }
  const TensorType& tt = ctx.input(i);
  if (tt.shape_value) return *tt.shape_value;
  return std::nullopt;
}

// A Dim coming from a value may hold a negative number (e.g. -1 in a Reshape target); such a
// Dim has an empty symbol. These helpers tell numbers from symbols.
static bool isNumber(const Dim& d) { return d.symbol.empty(); }

std::optional<std::vector<int64_t>> knownInts(const InferContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return std::nullopt;
  if (const Tensor* t = ctx.value(i)) {
    if (!isIntegerType(t->dtype()) && t->dtype() != DataType::kBool) return std::nullopt;
    return t->toInt64Vector();
  }
  auto dims = knownDims(ctx, i);
  if (!dims) return std::nullopt;
  std::vector<int64_t> out;
  for (const Dim& d : *dims) {
    if (!isNumber(d)) return std::nullopt;
    out.push_back(d.value);
  }
  return out;
}

void setShapeValue(InferContext& ctx, size_t out, std::vector<Dim> v) {
  if (out >= ctx.numOutputs()) return;
  TensorType& t = ctx.outputs()[out];
  if ((!isIntType(t.dtype) && t.dtype != DataType::kBool) || static_cast<int64_t>(v.size()) > kMaxShapeValueElems)
    return;
  t.shape_value = std::make_shared<const std::vector<Dim>>(std::move(v));
}

Dim freshDim(const InferContext& ctx) { return ctx.newSymbol(ctx.node().name); }

std::pair<std::string, int64_t> splitSymbol(const std::string& sym) {
  size_t star = sym.rfind('*');
  if (star == std::string::npos || star == 0 || star + 1 == sym.size()) return {sym, 1};
  int64_t k = 0;
  for (size_t i = star + 1; i < sym.size(); ++i) {
    if (sym[i] < '0' || sym[i] > '9' || k > (int64_t{1} << 40)) return {sym, 1};
    k = k * 10 + (sym[i] - '0');
  }
  if (k < 2) return {sym, 1};
  return {sym.substr(0, star), k};
}

Dim scaledSymbol(const std::string& base, int64_t factor) {
  if (factor == 0) return Dim(0);
  if (factor == 1) return Dim::symbolic(base);
  return Dim::symbolic(base + "*" + std::to_string(factor));
}

Dim dimProduct(const InferContext& ctx, const std::vector<Dim>& dims) {
  int64_t p = 1;
  std::string base;
  int nsym = 0;
  for (const Dim& d : dims) {
    if (d.known()) {
      p *= d.value;
    } else {
      auto [b, k] = splitSymbol(d.symbol);
      base = b;
      p *= k;
      ++nsym;
    }
  }
  if (nsym == 0) return Dim(p);
  if (p == 0) return Dim(0);
  if (nsym == 1) return scaledSymbol(base, p);
  return freshDim(ctx);
}

Status checkAxis(int64_t* axis, int64_t rank, const Node& node) {
  if (rank == 0)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": axis ", *axis, " given for a scalar (rank 0) input");
  return normalizeAxis(axis, rank, node);
}

Status normalizeAxes(std::vector<int64_t>* axes, int64_t rank, const Node& node) {
  for (auto& a : *axes) RJ_RETURN_IF_ERROR(checkAxis(&a, rank, node));
  std::sort(axes->begin(), axes->end());
  if (std::adjacent_find(axes->begin(), axes->end()) != axes->end())
    return makeError(StatusCode::kInvalidModel, node.describe(), ": axes contain a duplicate");
  return Status::Ok();
}

bool isIndexType(DataType dt) { return dt == DataType::kInt64 || dt == DataType::kInt32; }

// ---------------------------------------------------------------- Reshape

// Output dims of Reshape(in, target): 0 copies (unless allowzero), -1 is inferred. Symbols in
// `target` are used as-is; the -1 dim cancels symbols shared with the input.
static Result<Shape> reshapeDims(const InferContext& ctx, const Shape& in, const std::vector<Dim>& target,
                                 bool allowzero) {
  Shape out;
  int infer_at = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    const Dim& t = target[i];
    if (!isNumber(t)) {
      out.dims.push_back(t);
      continue;
    }
    if (t.value == -1) {
      if (infer_at >= 0) return ctx.error("the target shape has more than one -1");
      infer_at = static_cast<int>(i);
      out.dims.push_back(Dim(1));
    } else if (t.value == 0 && !allowzero) {
      if (!in.rank_known) {
        out.dims.push_back(freshDim(ctx));
      } else if (i >= in.rank()) {
        return ctx.error("target dim ", i, " is 0 (copy) but the input ", in.toString(), " has rank ",
                         in.rank());
      } else {
        out.dims.push_back(in.dims[i]);
      }
    } else if (t.value < 0) {
      return ctx.error("target dim ", i, " is ", t.value, " (only -1 and sizes >= 0 are allowed)");
    } else {
      out.dims.push_back(Dim(t.value));
    }
  }
  if (allowzero && infer_at >= 0) {
    for (const Dim& t : target)
      if (isNumber(t) && t.value == 0)
        return ctx.error("allowzero=1 with both 0 and -1 in the target shape");
  }
  if (!in.rank_known) {
    if (infer_at >= 0) out.dims[infer_at] = freshDim(ctx);
    return out;
  }
  // Multisets of symbols and products of the known dims on both sides.
  std::multiset<std::string> in_syms, out_syms;
  int64_t in_p = 1, out_p = 1;
  bool any_symbol = false;
  for (const Dim& d : in.dims) {
    if (d.known()) {
      in_p *= d.value;
    } else {
      auto [b, k] = splitSymbol(d.symbol);
      in_syms.insert(b);
      in_p *= k;
      any_symbol = true;
    }
  }
  for (size_t i = 0; i < out.dims.size(); ++i) {
    if (static_cast<int>(i) == infer_at) continue;
    const Dim& d = out.dims[i];
    if (d.known()) {
      out_p *= d.value;
    } else {
      auto [b, k] = splitSymbol(d.symbol);
      out_syms.insert(b);
      out_p *= k;
      any_symbol = true;
    }
  }
  // Cancel symbols present on both sides.
  for (auto it = out_syms.begin(); it != out_syms.end();) {
    auto f = in_syms.find(*it);
    if (f != in_syms.end()) {
      in_syms.erase(f);
      it = out_syms.erase(it);
    } else {
      ++it;
    }
  }
  bool all_known = in_syms.empty() && out_syms.empty();
  if (infer_at >= 0) {
    if (all_known && out_p == 0) {
      if (in_p != 0 && !any_symbol) return ctx.error("cannot infer the -1 dim: the other target dims multiply to 0");
      out.dims[infer_at] = in_p == 0 ? Dim(0) : freshDim(ctx);
    } else if (all_known && in_p % out_p == 0) {
      out.dims[infer_at] = Dim(in_p / out_p);
    } else if (all_known && !any_symbol) {
      return ctx.error("cannot reshape ", in.toString(), " to ", Shape(target).toString(), ": ", in_p,
                       " elements are not divisible by ", out_p);
    } else if (out_syms.empty() && in_syms.size() == 1 && out_p != 0 && in_p % out_p == 0) {
      out.dims[infer_at] = scaledSymbol(*in_syms.begin(), in_p / out_p);
    } else {
      out.dims[infer_at] = freshDim(ctx);
    }
  } else if (all_known && !any_symbol && in_p != out_p) {
    return ctx.error("cannot reshape ", in.toString(), " (", in_p, " elements) to ", out.toString(),
                     " (", out_p, " elements)");
  }
  return out;
}

Status inferReshape(InferContext& ctx) {
  bool allowzero = ctx.node().attrInt("allowzero", 0) != 0;
  const Shape& in = ctx.shape(0);
  auto target = knownDims(ctx, 1);
  Shape out = Shape::unknownRank();
  if (target) {
    RJ_ASSIGN_OR_RETURN(out, reshapeDims(ctx, in, *target, allowzero));
  } else if (ctx.shape(1).rank_known && ctx.shape(1).rank() == 1 && ctx.shape(1).dims[0].known()) {
    out = Shape();
    for (int64_t i = 0; i < ctx.shape(1).dims[0].value; ++i) out.dims.push_back(freshDim(ctx));
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  if (auto v = knownDims(ctx, 0); v && out.rank() <= 1) setShapeValue(ctx, 0, *v);
  return Status::Ok();
}

// ---------------------------------------------------------------- Transpose

Status inferTranspose(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = in.rank();
  std::vector<int64_t> perm = ctx.node().attrInts("perm");
  if (perm.empty())
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != r)
    return ctx.error("perm has ", perm.size(), " entries but the input has rank ", r);
  std::vector<bool> seen(r, false);
  Shape out;
  for (int64_t p : perm) {
    if (p < 0) p += r;  // onnxruntime accepts negative perm entries; so do we
    if (p < 0 || p >= r || seen[p]) return ctx.error("perm is not a permutation of 0..", r - 1);
    seen[p] = true;
    out.dims.push_back(in.dims[p]);
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

// ---------------------------------------------------------------- Concat

Status inferConcat(InferContext& ctx) {
  if (!ctx.node().hasAttr("axis")) return ctx.error("missing required attribute 'axis'");
  int64_t axis = ctx.node().attrInt("axis", 0);
  DataType dt = ctx.dtype(0);
  int64_t rank = -1;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
    if (ctx.dtype(i) != dt)
      return ctx.error("input ", i, " is ", dataTypeName(ctx.dtype(i)), " but input 0 is ", dataTypeName(dt));
    if (!ctx.shape(i).rank_known) continue;
    if (rank >= 0 && static_cast<int64_t>(ctx.shape(i).rank()) != rank)
      return ctx.error("input ", i, " has rank ", ctx.shape(i).rank(), " but another input has rank ", rank);
    rank = ctx.shape(i).rank();
  }
  if (rank < 0) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return Status::Ok();
  }
  if (rank == 0) return ctx.error("cannot concatenate scalars");
  RJ_RETURN_IF_ERROR(checkAxis(&axis, rank, ctx.node()));
  Shape out;
  out.dims.assign(rank, Dim());
  std::vector<bool> set(rank, false);
  int64_t total = 0;
  bool total_known = true;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    const Shape& s = ctx.shape(i);
    if (!s.rank_known) { total_known = false; continue; }
    for (int64_t d = 0; d < rank; ++d) {
      if (d == axis) {
        if (s.dims[d].known()) total += s.dims[d].value; else total_known = false;
        continue;
      }
      const Dim& x = s.dims[d];
      if (!set[d] || (!out.dims[d].known() && x.known())) {
        if (set[d] && out.dims[d].known() && x.known() && out.dims[d].value != x.value)
          return ctx.error("input ", i, " dim ", d, " is ", x.value, " but another input has ", out.dims[d].value);
        out.dims[d] = x;
        set[d] = true;
      } else if (out.dims[d].known() && x.known() && out.dims[d].value != x.value) {
        return ctx.error("input ", i, " has dim ", d, " = ", x.value, " but another input has ",
                         out.dims[d].value, " (only axis ", axis, " may differ)");
      }
    }
  }
  for (int64_t d = 0; d < rank; ++d)
    if (!set[d]) out.dims[d] = freshDim(ctx);
  out.dims[axis] = total_known ? Dim(total) : freshDim(ctx);
  ctx.setOutput(0, dt, out);
  if (rank == 1) {
    std::vector<Dim> vals;
    for (size_t i = 0; i < ctx.numInputs(); ++i) {
      auto v = knownDims(ctx, i);
      if (!v) return Status::Ok();
      vals.insert(vals.end(), v->begin(), v->end());
    }
    setShapeValue(ctx, 0, vals);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- Split

// Sizes of the pieces along the axis for a concrete dim; shared with the kernel.
Result<std::vector<int64_t>> splitSizes(const Node& node, int64_t dim, size_t n_out,
                                        const std::vector<int64_t>* split) {
  if (split) {
    if (split->size() != n_out)
      return makeError(StatusCode::kInvalidModel, node.describe(), ": 'split' has ", split->size(),
                       " entries but the node has ", n_out, " outputs");
    int64_t sum = 0;
    for (int64_t s : *split) {
      if (s < 0) return makeError(StatusCode::kInvalidModel, node.describe(), ": negative split size ", s);
      sum += s;
    }
    if (dim >= 0 && sum != dim)
      return makeError(StatusCode::kInvalidModel, node.describe(), ": split sizes sum to ", sum,
                       " but the axis has size ", dim);
    return *split;
  }
  int64_t n = static_cast<int64_t>(n_out);
  if (node.hasAttr("num_outputs") && node.attrInt("num_outputs", 0) != n)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": num_outputs=", node.attrInt("num_outputs", 0),
                     " but the node has ", n, " outputs");
  int64_t chunk = (dim + n - 1) / n;
  std::vector<int64_t> out(n, chunk);
  out.back() = dim - chunk * (n - 1);
  if (out.back() < 0)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": cannot split an axis of size ", dim,
                     " into ", n, " parts");
  return out;
}

Status inferSplit(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  size_t n = ctx.numOutputs();
  if (!in.rank_known) {
    for (size_t i = 0; i < n; ++i) ctx.setOutput(i, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t axis = ctx.node().attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node()));
  std::optional<std::vector<int64_t>> split;
  if (ctx.hasInput(1)) {
    split = knownInts(ctx, 1);
    if (!split) {
      for (size_t i = 0; i < n; ++i) {
        Shape s = in;
        s.dims[axis] = freshDim(ctx);
        ctx.setOutput(i, ctx.dtype(0), s);
      }
      return Status::Ok();
    }
  }
  const Dim& d = in.dims[axis];
  if (!d.known() && !split) {
    for (size_t i = 0; i < n; ++i) {
      Shape s = in;
      s.dims[axis] = n == 1 ? d : freshDim(ctx);
      ctx.setOutput(i, ctx.dtype(0), s);
    }
    return Status::Ok();
  }
  RJ_ASSIGN_OR_RETURN(auto sizes, splitSizes(ctx.node(), d.known() ? d.value : -1, n, split ? &*split : nullptr));
  for (size_t i = 0; i < n; ++i) {
    Shape s = in;
    s.dims[axis] = Dim(sizes[i]);
    ctx.setOutput(i, ctx.dtype(0), s);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- Slice

// Clamped start and output length of one sliced axis (ONNX Slice-13 rules).
void sliceAxis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t* out_start, int64_t* out_len) {
  if (dim == 0) {  // nothing to slice (and the clamps below would be empty ranges)
    *out_start = 0;
    *out_len = 0;
    return;
  }
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    *out_len = end > start ? (end - start - 1) / step + 1 : 0;  // no overflow for huge steps
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    *out_len = start > end ? (start - end - 1) / -step + 1 : 0;
  }
  *out_start = start;
}

Result<SliceParams> sliceParams(const Node& node, const std::vector<int64_t>& dims, const std::vector<int64_t>& starts,
                                const std::vector<int64_t>& ends, const std::vector<int64_t>* axes_in,
                                const std::vector<int64_t>* steps_in) {
  int64_t r = dims.size();
  if (starts.size() != ends.size())
    return makeError(StatusCode::kInvalidModel, node.describe(), ": starts has ", starts.size(),
                     " entries but ends has ", ends.size());
  std::vector<int64_t> axes;
  if (axes_in) {
    axes = *axes_in;
  } else {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(i);
  }
  if (axes.size() != starts.size() || (steps_in && steps_in->size() != starts.size()))
    return makeError(StatusCode::kInvalidModel, node.describe(), ": starts, ends, axes and steps must have the same length");
  SliceParams p;
  p.start.assign(r, 0);
  p.step.assign(r, 1);
  p.len = dims;
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i];
    RJ_RETURN_IF_ERROR(checkAxis(&a, r, node));
    if (seen[a]) return makeError(StatusCode::kInvalidModel, node.describe(), ": axis ", a, " is sliced twice");
    seen[a] = true;
    int64_t step = steps_in ? (*steps_in)[i] : 1;
    if (step == 0 || step == std::numeric_limits<int64_t>::min())
      return makeError(StatusCode::kInvalidModel, node.describe(), ": invalid step ", step, " for axis ", a);
    sliceAxis(dims[a], starts[i], ends[i], step, &p.start[a], &p.len[a]);
    p.step[a] = step;
  }
  return p;
}

Status inferSlice(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = in.rank();
  auto starts = knownInts(ctx, 1), ends = knownInts(ctx, 2);
  std::optional<std::vector<int64_t>> axes, steps;
  bool axes_ok = true, steps_ok = true;
  if (ctx.hasInput(3)) { axes = knownInts(ctx, 3); axes_ok = axes.has_value(); }
  if (ctx.hasInput(4)) { steps = knownInts(ctx, 4); steps_ok = steps.has_value(); }
  if (!starts || !ends || !axes_ok || !steps_ok) {
    Shape out = in;
    if (axes_ok && axes) {
      for (int64_t a : *axes) {
        RJ_RETURN_IF_ERROR(checkAxis(&a, r, ctx.node()));
        out.dims[a] = freshDim(ctx);
      }
    } else {
      for (auto& d : out.dims) d = freshDim(ctx);
    }
    ctx.setOutput(0, ctx.dtype(0), out);
    return Status::Ok();
  }
  // Symbolic dims: use a huge stand-in so the clamping logic still runs, then decide per axis.
  constexpr int64_t kBig = std::numeric_limits<int64_t>::max() / 4;
  std::vector<int64_t> dims(r);
  for (int64_t i = 0; i < r; ++i) dims[i] = in.dims[i].known() ? in.dims[i].value : kBig;
  RJ_ASSIGN_OR_RETURN(SliceParams p, sliceParams(ctx.node(), dims, *starts, *ends, axes ? &*axes : nullptr,
                                                  steps ? &*steps : nullptr));
  Shape out;
  for (int64_t i = 0; i < r; ++i) {
    if (in.dims[i].known()) {
      out.dims.push_back(Dim(p.len[i]));
    } else if (p.start[i] == 0 && p.step[i] == 1 && p.len[i] == kBig) {
      out.dims.push_back(in.dims[i]);  // full range of a symbolic dim
    } else {
      out.dims.push_back(freshDim(ctx));
    }
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  if (r == 1 && in.dims[0].known()) {
    if (auto v = knownDims(ctx, 0)) {
      std::vector<Dim> vals;
      for (int64_t k = 0; k < p.len[0]; ++k) vals.push_back((*v)[p.start[0] + k * p.step[0]]);
      setShapeValue(ctx, 0, vals);
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- Squeeze / Unsqueeze / Flatten

Status inferSqueeze(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = in.rank();
  std::optional<std::vector<int64_t>> axes;
  if (ctx.hasInput(1)) {
    axes = knownInts(ctx, 1);
    if (!axes) {
      ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
      return Status::Ok();
    }
  }
  Shape out;
  if (axes && !axes->empty()) {
    RJ_RETURN_IF_ERROR(normalizeAxes(&*axes, r, ctx.node()));
    for (int64_t a : *axes)
      if (in.dims[a].known() && in.dims[a].value != 1)
        return ctx.error("cannot squeeze axis ", a, " of size ", in.dims[a].value, " (input ", in.toString(), ")");
    for (int64_t i = 0; i < r; ++i)
      if (!std::binary_search(axes->begin(), axes->end(), i)) out.dims.push_back(in.dims[i]);
  } else {
    for (const Dim& d : in.dims) {
      if (!d.known()) {  // might be 1 at run time: the rank is unknown
        ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
        return Status::Ok();
      }
      if (d.value != 1) out.dims.push_back(d);
    }
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  if (auto v = knownDims(ctx, 0)) setShapeValue(ctx, 0, *v);
  return Status::Ok();
}

Status inferUnsqueeze(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!ctx.hasInput(1)) return ctx.error("the axes input is required");
  auto axes = knownInts(ctx, 1);
  if (!in.rank_known || !axes) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = in.rank() + axes->size();
  RJ_RETURN_IF_ERROR(normalizeAxes(&*axes, r, ctx.node()));
  Shape out;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) {
    if (std::binary_search(axes->begin(), axes->end(), i)) out.dims.push_back(Dim(1));
    else out.dims.push_back(in.dims[k++]);
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  if (auto v = knownDims(ctx, 0)) setShapeValue(ctx, 0, *v);
  return Status::Ok();
}

Status inferFlatten(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape({freshDim(ctx), freshDim(ctx)}));
    return Status::Ok();
  }
  int64_t r = in.rank();
  int64_t axis = ctx.node().attrInt("axis", 1);
  if (axis < -r || axis > r) return ctx.error("axis ", axis, " is out of range for rank ", r);
  if (axis < 0) axis += r;
  std::vector<Dim> a(in.dims.begin(), in.dims.begin() + axis), b(in.dims.begin() + axis, in.dims.end());
  ctx.setOutput(0, ctx.dtype(0), Shape({dimProduct(ctx, a), dimProduct(ctx, b)}));
  return Status::Ok();
}

// ---------------------------------------------------------------- Expand / Tile / Pad

Status inferExpand(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  auto target = knownDims(ctx, 1);
  if (target) {
    for (const Dim& d : *target)
      if (isNumber(d) && d.value < 0) return ctx.error("negative dim ", d.value, " in the target shape");
    RJ_ASSIGN_OR_RETURN(Shape out, broadcastShapes({in, Shape(*target)}, ctx.node()));
    ctx.setOutput(0, ctx.dtype(0), out);
    return Status::Ok();
  }
  const Shape& ts = ctx.shape(1);
  if (in.rank_known && ts.rank_known && ts.rank() == 1 && ts.dims[0].known()) {
    int64_t r = std::max<int64_t>(in.rank(), ts.dims[0].value);
    Shape out;
    for (int64_t i = 0; i < r; ++i) out.dims.push_back(freshDim(ctx));
    ctx.setOutput(0, ctx.dtype(0), out);
    return Status::Ok();
  }
  ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
  return Status::Ok();
}

Status inferTile(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  auto reps = knownInts(ctx, 1);
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  Shape out = in;
  if (!reps) {
    for (auto& d : out.dims) d = freshDim(ctx);
  } else {
    if (reps->size() != in.rank())
      return ctx.error("repeats has ", reps->size(), " entries but the input has rank ", in.rank());
    for (size_t i = 0; i < in.rank(); ++i) {
      int64_t k = (*reps)[i];
      if (k < 0) return ctx.error("negative repeat ", k, " for axis ", i);
      if (in.dims[i].known()) out.dims[i] = Dim(in.dims[i].value * k);
      else if (k == 0) out.dims[i] = Dim(0);
      else if (k != 1) out.dims[i] = freshDim(ctx);
    }
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

// Full per-axis pads [begin..., end...] for rank r from the pads and optional axes inputs.
Result<std::vector<int64_t>> padsForRank(const Node& node, const std::vector<int64_t>& pads,
                                         const std::vector<int64_t>* axes_in, int64_t r) {
  std::vector<int64_t> axes;
  if (axes_in) axes = *axes_in;
  else for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  if (pads.size() != 2 * axes.size())
    return makeError(StatusCode::kInvalidModel, node.describe(), ": pads has ", pads.size(),
                     " entries, expected ", 2 * axes.size(), " (2 per padded axis)");
  std::vector<int64_t> full(2 * r, 0);
  size_t n = axes.size();
  for (size_t i = 0; i < n; ++i) {
    int64_t a = axes[i];
    RJ_RETURN_IF_ERROR(checkAxis(&a, r, node));
    full[a] = pads[i];
    full[a + r] = pads[i + n];
  }
  return full;
}

Status inferPad(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  std::string mode = ctx.node().attrString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    return ctx.error("unknown mode '", mode, "'");
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = in.rank();
  auto pads = knownInts(ctx, 1);
  std::optional<std::vector<int64_t>> axes;
  bool axes_ok = true;
  if (ctx.hasInput(3)) { axes = knownInts(ctx, 3); axes_ok = axes.has_value(); }
  Shape out = in;
  if (!pads || !axes_ok) {
    for (auto& d : out.dims) d = freshDim(ctx);
  } else {
    RJ_ASSIGN_OR_RETURN(auto full, padsForRank(ctx.node(), *pads, axes ? &*axes : nullptr, r));
    for (int64_t i = 0; i < r; ++i) {
      if (full[i] == 0 && full[i + r] == 0) continue;
      if (in.dims[i].known()) {
        int64_t d = in.dims[i].value + full[i] + full[i + r];
        if (d < 0) return ctx.error("pads make axis ", i, " negative (", d, ")");
        out.dims[i] = Dim(d);
      } else {
        out.dims[i] = freshDim(ctx);
      }
    }
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

Status inferCenterCropPad(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!isIndexType(ctx.dtype(1))) return ctx.error("shape must be int64 or int32");
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = in.rank();
  std::vector<int64_t> axes = ctx.node().attrInts("axes");
  if (!ctx.node().hasAttr("axes"))
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  std::vector<int64_t> sorted = axes;
  RJ_RETURN_IF_ERROR(normalizeAxes(&sorted, r, ctx.node()));
  for (auto& a : axes) RJ_RETURN_IF_ERROR(checkAxis(&a, r, ctx.node()));
  Shape out = in;
  auto target = knownDims(ctx, 1);
  if (target && target->size() != axes.size())
    return ctx.error("shape has ", target->size(), " entries but ", axes.size(), " axes are cropped/padded");
  for (size_t i = 0; i < axes.size(); ++i) {
    if (!target) {
      out.dims[axes[i]] = freshDim(ctx);
      continue;
    }
    const Dim& t = (*target)[i];
    if (isNumber(t) && t.value < 0) return ctx.error("negative target size ", t.value);
    out.dims[axes[i]] = t;
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

// ---------------------------------------------------------------- DepthToSpace / SpaceToDepth

static Status blockOp(InferContext& ctx, bool to_space) {
  const Shape& in = ctx.shape(0);
  int64_t b = ctx.node().attrInt("blocksize", 0);
  if (b <= 0) return ctx.error("blocksize must be positive, got ", b);
  {
    std::string mode = ctx.node().attrString("mode", "DCR");
    if (mode != "DCR" && mode != "CRD") return ctx.error("unknown mode '", mode, "'");
  }
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape({freshDim(ctx), freshDim(ctx), freshDim(ctx), freshDim(ctx)}));
    return Status::Ok();
  }
  if (in.rank() != 4) return ctx.error("input must be 4-D (N,C,H,W), got ", in.toString());
  Shape out = in;
  auto mul = [&](const Dim& d, int64_t k) { return d.known() ? Dim(d.value * k) : (k == 1 ? d : freshDim(ctx)); };
  auto div = [&](const Dim& d, int64_t k, const char* what) -> Result<Dim> {
    if (!d.known()) return k == 1 ? d : freshDim(ctx);
    if (d.value % k != 0) return ctx.error(what, " ", d.value, " is not divisible by ", k);
    return Dim(d.value / k);
  };
  if (to_space) {
    RJ_ASSIGN_OR_RETURN(out.dims[1], div(in.dims[1], b * b, "channel count"));
    out.dims[2] = mul(in.dims[2], b);
    out.dims[3] = mul(in.dims[3], b);
  } else {
    out.dims[1] = mul(in.dims[1], b * b);
    RJ_ASSIGN_OR_RETURN(out.dims[2], div(in.dims[2], b, "height"));
    RJ_ASSIGN_OR_RETURN(out.dims[3], div(in.dims[3], b, "width"));
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

Status inferDepthToSpace(InferContext& ctx) { return blockOp(ctx, true); }
Status inferSpaceToDepth(InferContext& ctx) { return blockOp(ctx, false); }

// ---------------------------------------------------------------- Shape / Size / ConstantOfShape / Range

Status inferShape(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!in.rank_known) {
    ctx.setOutput(0, DataType::kInt64, Shape({freshDim(ctx)}));
    return Status::Ok();
  }
  int64_t r = in.rank();
  int64_t start = ctx.node().attrInt("start", 0), end = ctx.node().attrInt("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<Dim> vals;
  for (int64_t i = start; i < end; ++i) vals.push_back(in.dims[i]);
  ctx.setOutput(0, DataType::kInt64, Shape({Dim(static_cast<int64_t>(vals.size()))}));
  setShapeValue(ctx, 0, vals);
  return Status::Ok();
}

Status inferSize(InferContext& ctx) {
  ctx.setOutput(0, DataType::kInt64, Shape());
  const Shape& in = ctx.shape(0);
  if (in.rank_known && in.fullyKnown()) setShapeValue(ctx, 0, {Dim(numElements(in.concrete()))});
  return Status::Ok();
}

Status inferConstantOfShape(InferContext& ctx) {
  DataType dt = DataType::kFloat32;
  if (const Tensor* v = ctx.node().attrTensor("value")) {
    if (v->numel() != 1) return ctx.error("'value' must hold exactly one element, got ", v->numel());
    dt = v->dtype();
  }
  auto dims = knownDims(ctx, 0);
  if (dims) {
    for (const Dim& d : *dims)
      if (isNumber(d) && d.value < 0) return ctx.error("negative dim ", d.value, " in the shape input");
    ctx.setOutput(0, dt, Shape(*dims));
    // ConstantOfShape(Shape(x)) feeds Expand/Where shape arithmetic (torch's expand(-1)).
    const Tensor* v = ctx.node().attrTensor("value");
    int64_t n = 1;
    for (const Dim& d : *dims) n = d.known() ? n * d.value : kMaxShapeValueElems + 1;
    if (dims->size() <= 1 && n <= kMaxShapeValueElems)
      setShapeValue(ctx, 0, std::vector<Dim>(n, Dim(v ? v->getInt(0) : 0)));
    return Status::Ok();
  }
  const Shape& s = ctx.shape(0);
  if (s.rank_known && s.rank() == 1 && s.dims[0].known()) {
    Shape out;
    for (int64_t i = 0; i < s.dims[0].value; ++i) out.dims.push_back(freshDim(ctx));
    ctx.setOutput(0, dt, out);
  } else {
    ctx.setOutput(0, dt, Shape::unknownRank());
  }
  return Status::Ok();
}

Result<int64_t> rangeCount(const Node& node, double start, double limit, double delta) {
  if (delta == 0) return makeError(StatusCode::kInvalidModel, node.describe(), ": delta is 0");
  double n = std::ceil((limit - start) / delta);
  if (!(n < 1e12)) return makeError(StatusCode::kInvalidModel, node.describe(), ": range is too long");
  return std::max<int64_t>(0, static_cast<int64_t>(n));
}

Status inferRange(InferContext& ctx) {
  DataType dt = ctx.dtype(0);
  for (size_t i = 1; i < 3; ++i)
    if (ctx.dtype(i) != dt) return ctx.error("start, limit and delta must have the same type");
  const Tensor *s = ctx.value(0), *l = ctx.value(1), *d = ctx.value(2);
  if (s && l && d) {
    if (s->numel() != 1 || l->numel() != 1 || d->numel() != 1) return ctx.error("start, limit and delta must be scalars");
    RJ_ASSIGN_OR_RETURN(int64_t n, rangeCount(ctx.node(), s->getDouble(0), l->getDouble(0), d->getDouble(0)));
    ctx.setOutput(0, dt, Shape({Dim(n)}));
    if (isIntType(dt) && n <= kMaxShapeValueElems) {
      std::vector<Dim> v;
      for (int64_t i = 0; i < n; ++i) v.push_back(Dim(s->getInt(0) + i * d->getInt(0)));
      setShapeValue(ctx, 0, v);
    }
    return Status::Ok();
  }
  ctx.setOutput(0, dt, Shape({freshDim(ctx)}));
  return Status::Ok();
}

// ---------------------------------------------------------------- gathers and scatters

Status inferGather(InferContext& ctx) {
  const Shape &data = ctx.shape(0), &idx = ctx.shape(1);
  if (!isIndexType(ctx.dtype(1))) return ctx.error("indices must be int32 or int64, got ", dataTypeName(ctx.dtype(1)));
  if (!data.rank_known || !idx.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = data.rank();
  if (r == 0) return ctx.error("data must have rank >= 1");
  int64_t axis = ctx.node().attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, r, ctx.node()));
  Shape out;
  for (int64_t i = 0; i < axis; ++i) out.dims.push_back(data.dims[i]);
  for (const Dim& d : idx.dims) out.dims.push_back(d);
  for (int64_t i = axis + 1; i < r; ++i) out.dims.push_back(data.dims[i]);
  ctx.setOutput(0, ctx.dtype(0), out);
  // Shape value: gathering elements of a 1-D shape vector.
  if (r == 1) {
    auto v = knownDims(ctx, 0);
    auto ind = knownInts(ctx, 1);
    if (v && ind) {
      std::vector<Dim> vals;
      int64_t n = v->size();
      for (int64_t k : *ind) {
        if (k < -n || k >= n) return ctx.error("index ", k, " is out of range for axis of size ", n);
        vals.push_back((*v)[k < 0 ? k + n : k]);
      }
      setShapeValue(ctx, 0, vals);
    }
  }
  return Status::Ok();
}

Status inferGatherElements(InferContext& ctx) {
  if (!isIndexType(ctx.dtype(1))) return ctx.error("indices must be int32 or int64");
  const Shape &data = ctx.shape(0), &idx = ctx.shape(1);
  if (data.rank_known && idx.rank_known) {
    if (data.rank() != idx.rank())
      return ctx.error("data ", data.toString(), " and indices ", idx.toString(), " must have the same rank");
    int64_t axis = ctx.node().attrInt("axis", 0);
    RJ_RETURN_IF_ERROR(checkAxis(&axis, data.rank(), ctx.node()));
  }
  ctx.setOutput(0, ctx.dtype(0), idx);
  return Status::Ok();
}

Status inferGatherND(InferContext& ctx) {
  if (!isIndexType(ctx.dtype(1))) return ctx.error("indices must be int32 or int64");
  const Shape &data = ctx.shape(0), &idx = ctx.shape(1);
  int64_t b = ctx.node().attrInt("batch_dims", 0);
  if (idx.rank_known && idx.rank() == 0) return ctx.error("indices must have rank >= 1");
  if (!data.rank_known || !idx.rank_known || !idx.dims.back().known()) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t q = idx.rank(), r = data.rank(), last = idx.dims.back().value;
  if (b < 0 || b >= std::min(q, r)) return ctx.error("batch_dims ", b, " must be in [0, min(rank(data), rank(indices)))");
  if (last < 1 || last > r - b)
    return ctx.error("the last indices dim is ", last, " but must be in [1, ", r - b, "]");
  Shape out;
  for (int64_t i = 0; i < q - 1; ++i) out.dims.push_back(idx.dims[i]);
  for (int64_t i = b + last; i < r; ++i) out.dims.push_back(data.dims[i]);
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

static Status checkReduction(const InferContext& ctx) {
  std::string red = ctx.node().attrString("reduction", "none");
  if (red != "none" && red != "add" && red != "mul" && red != "max" && red != "min")
    return ctx.error("unknown reduction '", red, "'");
  return Status::Ok();
}

Status inferScatterND(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(checkReduction(ctx));
  if (!isIndexType(ctx.dtype(1))) return ctx.error("indices must be int32 or int64");
  if (ctx.dtype(2) != ctx.dtype(0)) return ctx.error("updates and data types differ");
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0));
  return Status::Ok();
}

Status inferScatterElements(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(checkReduction(ctx));
  if (!isIndexType(ctx.dtype(1))) return ctx.error("indices must be int32 or int64");
  if (ctx.dtype(2) != ctx.dtype(0)) return ctx.error("updates and data types differ");
  const Shape &data = ctx.shape(0), &idx = ctx.shape(1);
  if (data.rank_known && idx.rank_known) {
    if (data.rank() != idx.rank()) return ctx.error("data and indices must have the same rank");
    int64_t axis = ctx.node().attrInt("axis", 0);
    RJ_RETURN_IF_ERROR(checkAxis(&axis, data.rank(), ctx.node()));
  }
  ctx.setOutput(0, ctx.dtype(0), data);
  return Status::Ok();
}

// ---------------------------------------------------------------- misc data movement

Status inferCumSum(InferContext& ctx) {
  if (!isIndexType(ctx.dtype(1))) return ctx.error("axis must be int32 or int64");
  if (ctx.dtype(0) == DataType::kBool) return ctx.error("bool input is not supported");
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0));
  return Status::Ok();
}

Status inferNonZero(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  Dim r = in.rank_known ? Dim(static_cast<int64_t>(in.rank())) : freshDim(ctx);
  Dim n = freshDim(ctx);
  if (const Tensor* t = ctx.value(0)) {
    int64_t k = 0;
    for (int64_t i = 0; i < t->numel(); ++i) k += t->getDouble(i) != 0;
    n = Dim(k);
  }
  ctx.setOutput(0, DataType::kInt64, Shape({r, n}));
  return Status::Ok();
}

Status inferOneHot(InferContext& ctx) {
  const Shape& idx = ctx.shape(0);
  const Shape& vals = ctx.shape(2);
  if (vals.rank_known && vals.fullyKnown() && numElements(vals.concrete()) != 2)
    return ctx.error("values must have exactly 2 elements (off, on), got ", vals.toString());
  if (!idx.rank_known) {
    ctx.setOutput(0, ctx.dtype(2), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = idx.rank() + 1;
  int64_t axis = ctx.node().attrInt("axis", -1);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, r, ctx.node()));
  Dim depth = freshDim(ctx);
  if (const Tensor* d = ctx.value(1)) {
    if (d->numel() != 1) return ctx.error("depth must have one element");
    int64_t n = static_cast<int64_t>(d->getDouble(0));
    if (n < 1) return ctx.error("depth must be positive, got ", n);
    depth = Dim(n);
  }
  Shape out = idx;
  out.dims.insert(out.dims.begin() + axis, depth);
  ctx.setOutput(0, ctx.dtype(2), out);
  return Status::Ok();
}

Status inferTrilu(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (in.rank_known && in.rank() < 2) return ctx.error("input must have rank >= 2, got ", in.toString());
  ctx.setOutput(0, ctx.dtype(0), in);
  return Status::Ok();
}

Status inferCompress(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (ctx.dtype(1) != DataType::kBool) return ctx.error("condition must be bool");
  Dim n = freshDim(ctx);
  if (const Tensor* c = ctx.value(1)) {
    int64_t k = 0;
    for (int64_t i = 0; i < c->numel(); ++i) k += c->getInt(i) != 0;
    n = Dim(k);
  }
  if (!ctx.node().hasAttr("axis")) {
    ctx.setOutput(0, ctx.dtype(0), Shape({n}));
    return Status::Ok();
  }
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t axis = ctx.node().attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node()));
  Shape out = in;
  out.dims[axis] = n;
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

Status inferReverseSequence(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (in.rank_known && in.rank() < 2) return ctx.error("input must have rank >= 2");
  int64_t b = ctx.node().attrInt("batch_axis", 1), t = ctx.node().attrInt("time_axis", 0);
  if ((b != 0 && b != 1) || (t != 0 && t != 1) || b == t)
    return ctx.error("batch_axis and time_axis must be 0 and 1 in some order, got ", b, " and ", t);
  ctx.setOutput(0, ctx.dtype(0), in);
  return Status::Ok();
}

Status inferEyeLike(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (in.rank_known && in.rank() != 2) return ctx.error("input must be 2-D, got ", in.toString());
  DataType dt = ctx.dtype(0);
  if (ctx.node().hasAttr("dtype")) {
    if (!dataTypeFromOnnx(static_cast<int32_t>(ctx.node().attrInt("dtype", 1)), &dt) || !isSupportedDataType(dt))
      return ctx.error("unsupported dtype ", ctx.node().attrInt("dtype", 1));
  }
  ctx.setOutput(0, dt, in);
  return Status::Ok();
}

Status inferUnique(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  Dim u = freshDim(ctx);
  if (ctx.node().hasAttr("axis")) {
    if (!in.rank_known) {
      ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    } else {
      int64_t axis = ctx.node().attrInt("axis", 0);
      RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node()));
      Shape out = in;
      out.dims[axis] = u;
      ctx.setOutput(0, ctx.dtype(0), out);
      if (ctx.numOutputs() > 2) ctx.setOutput(2, DataType::kInt64, Shape({in.dims[axis]}));
    }
  } else {
    ctx.setOutput(0, ctx.dtype(0), Shape({u}));
    if (ctx.numOutputs() > 2)
      ctx.setOutput(2, DataType::kInt64, Shape({in.rank_known ? dimProduct(ctx, in.dims) : freshDim(ctx)}));
  }
  if (ctx.numOutputs() > 1) ctx.setOutput(1, DataType::kInt64, Shape({u}));
  if (ctx.numOutputs() > 2 && ctx.outputs()[2].dtype == DataType::kUndefined)
    ctx.setOutput(2, DataType::kInt64, Shape({freshDim(ctx)}));
  if (ctx.numOutputs() > 3) ctx.setOutput(3, DataType::kInt64, Shape({u}));
  return Status::Ok();
}

}  // namespace ramjet::ops
