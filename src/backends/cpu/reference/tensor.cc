// Reference kernels for the tensor family: reshapes, data movement, shape ops and friends.
// Shape-determined ops rely on the interpreter preallocating outputs from shape inference (which
// sees every input value at run time); data-dependent ones (NonZero, Unique, Compress) allocate.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "backends/cpu/reference/ref_util.h"
#include "core/dispatch.h"
#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

using reference::permuteCopy;
using reference::stridedCopy;

std::vector<int64_t> inputInts(const KernelContext& ctx, size_t i) {
  if (!ctx.hasInput(i)) return {};
  return ctx.input(i).toInt64Vector();
}

Status requireOutput(KernelContext& ctx, size_t i) {
  if (!ctx.output(i).defined())
    return makeError(StatusCode::kInternal, ctx.node.describe(), ": output ", i,
                     " was not preallocated (its shape should be known when all inputs are)");
  return Status::Ok();
}

static const uint8_t* bytes(const Tensor& t) { return static_cast<const uint8_t*>(t.raw()); }
static uint8_t* bytes(Tensor& t) { return static_cast<uint8_t*>(t.raw()); }

// Ops whose output is the input with other dims (no data movement).
static Status viewKernel(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  if (ctx.output(0).numel() != in.numel())
    return ctx.error("cannot view ", dimsToString(in.dims()), " as ", dimsToString(ctx.output(0).dims()));
  ctx.outputs[0] = in.reshaped(ctx.output(0).dims());
  return Status::Ok();
}

Status refReshape(KernelContext& ctx) { return viewKernel(ctx); }
Status refSqueeze(KernelContext& ctx) { return viewKernel(ctx); }
Status refUnsqueeze(KernelContext& ctx) { return viewKernel(ctx); }
Status refFlatten(KernelContext& ctx) { return viewKernel(ctx); }

Status refTranspose(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  int64_t r = in.rank();
  std::vector<int64_t> perm = ctx.node.attrInts("perm");
  if (perm.empty())
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  for (auto& p : perm)
    if (p < 0) p += r;
  permuteCopy(in, in.dims(), perm, ctx.output(0));
  return Status::Ok();
}

Status refConcat(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  Tensor& out = ctx.output(0);
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, out.rank(), ctx.node));
  size_t es = dataTypeSize(out.dtype());
  int64_t outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= out.dims()[i];
  int64_t out_row = numElements(out.dims()) / std::max<int64_t>(outer, 1);
  int64_t col = 0;
  for (size_t k = 0; k < ctx.inputs.size(); ++k) {
    const Tensor& in = ctx.input(k);
    int64_t row = outer ? in.numel() / outer : 0;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(bytes(out) + (o * out_row + col) * es, bytes(in) + o * row * es, row * es);
    col += row;
  }
  return Status::Ok();
}

Status refSplit(KernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node));
  std::vector<int64_t> split;
  bool has_split = ctx.hasInput(1);
  if (has_split) split = inputInts(ctx, 1);
  RJ_ASSIGN_OR_RETURN(auto sizes, splitSizes(ctx.node, in.dims()[axis], ctx.outputs.size(), has_split ? &split : nullptr));
  size_t es = dataTypeSize(in.dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= in.dims()[i];
  for (size_t i = axis + 1; i < in.rank(); ++i) inner *= in.dims()[i];
  int64_t off = 0;
  for (size_t k = 0; k < ctx.outputs.size(); ++k) {
    std::vector<int64_t> d = in.dims();
    d[axis] = sizes[k];
    Tensor& out = ctx.outputs[k];
    if (!out.defined() || out.dims() != d) out = Tensor(in.dtype(), d);
    int64_t chunk = sizes[k] * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(bytes(out) + o * chunk * es, bytes(in) + (o * in.dims()[axis] * inner + off) * es, chunk * es);
    off += chunk;
  }
  return Status::Ok();
}

Status refSlice(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  std::vector<int64_t> starts = inputInts(ctx, 1), ends = inputInts(ctx, 2), axes = inputInts(ctx, 3),
                       steps = inputInts(ctx, 4);
  RJ_ASSIGN_OR_RETURN(SliceParams p, sliceParams(ctx.node, in.dims(), starts, ends, ctx.hasInput(3) ? &axes : nullptr,
                                                  ctx.hasInput(4) ? &steps : nullptr));
  std::vector<int64_t> is = stridesOf(in.dims()), st(in.rank());
  int64_t off = 0;
  for (size_t i = 0; i < in.rank(); ++i) {
    if (p.len[i] > 0) off += p.start[i] * is[i];
    st[i] = is[i] * p.step[i];
  }
  stridedCopy(bytes(in), off, p.len, st, bytes(ctx.output(0)), dataTypeSize(in.dtype()));
  return Status::Ok();
}

// Strides of `in_dims` broadcast to `out_dims` (0 where an input dim of 1 is repeated).
static std::vector<int64_t> broadcastStrides(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims) {
  std::vector<int64_t> is = stridesOf(in_dims), s(out_dims.size(), 0);
  size_t off = out_dims.size() - in_dims.size();
  for (size_t i = 0; i < in_dims.size(); ++i) s[off + i] = in_dims[i] == 1 ? 0 : is[i];
  return s;
}

Status refExpand(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  stridedCopy(bytes(in), 0, out.dims(), broadcastStrides(in.dims(), out.dims()), bytes(out), dataTypeSize(in.dtype()));
  return Status::Ok();
}

Status refTile(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  // Tile == expand a [1,d0,1,d1,...] view to [r0,d0,r1,d1,...], then view as the output.
  std::vector<int64_t> reps = inputInts(ctx, 1), dims, strides, is = stridesOf(in.dims());
  for (size_t i = 0; i < in.rank(); ++i) {
    dims.push_back(reps[i]);
    strides.push_back(0);
    dims.push_back(in.dims()[i]);
    strides.push_back(is[i]);
  }
  stridedCopy(bytes(in), 0, dims, strides, bytes(out), dataTypeSize(in.dtype()));
  return Status::Ok();
}

static Status padInto(KernelContext& ctx, const Tensor& in, Tensor& out, const std::vector<int64_t>& full,
                      const std::string& mode, const std::vector<uint8_t>& fill);

Status refPad(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  int64_t r = in.rank();
  std::string mode = ctx.node.attrString("mode", "constant");
  std::vector<int64_t> pads = inputInts(ctx, 1), axes = inputInts(ctx, 3);
  RJ_ASSIGN_OR_RETURN(auto full, padsForRank(ctx.node, pads, ctx.hasInput(3) ? &axes : nullptr, r));
  size_t es = dataTypeSize(in.dtype());
  std::vector<uint8_t> fill(es, 0);
  if (ctx.hasInput(2) && ctx.input(2).numel() > 0) {
    if (ctx.input(2).dtype() != in.dtype()) {
      Tensor c = ctx.input(2).cast(in.dtype());
      std::memcpy(fill.data(), c.raw(), es);
    } else {
      std::memcpy(fill.data(), ctx.input(2).raw(), es);
    }
  }
  return padInto(ctx, in, out, full, mode, fill);
}

// Pads (or, with negative pads, crops) `in` into the preallocated `out`. full = [begins, ends].
static Status padInto(KernelContext& ctx, const Tensor& in, Tensor& out, const std::vector<int64_t>& full,
                      const std::string& mode, const std::vector<uint8_t>& fill) {
  int64_t r = in.rank();
  size_t es = dataTypeSize(in.dtype());
  // Per axis: output coordinate -> input coordinate, or -1 for the constant.
  std::vector<std::vector<int64_t>> map(r);
  for (int64_t a = 0; a < r; ++a) {
    int64_t d = in.dims()[a], od = out.dims()[a];
    if (d == 0 && od > 0 && mode != "constant")
      return ctx.error("cannot ", mode, "-pad axis ", a, " of size 0");
    map[a].resize(od);
    for (int64_t o = 0; o < od; ++o) {
      int64_t x = o - full[a];
      if (x >= 0 && x < d) {
        map[a][o] = x;
      } else if (mode == "constant") {
        map[a][o] = -1;
      } else if (mode == "edge") {
        map[a][o] = std::clamp<int64_t>(x, 0, d - 1);
      } else if (mode == "wrap") {
        map[a][o] = ((x % d) + d) % d;
      } else {  // reflect (mirror without repeating the edge), periodic with 2(d-1)
        if (d == 1) {
          map[a][o] = 0;
        } else {
          int64_t period = 2 * (d - 1);
          int64_t m = ((x % period) + period) % period;
          map[a][o] = m < d ? m : period - m;
        }
      }
    }
  }
  std::vector<int64_t> is = stridesOf(in.dims()), idx(r, 0);
  uint8_t* dst = bytes(out);
  for (int64_t o = 0; o < out.numel(); ++o, dst += es) {
    int64_t src = 0;
    bool constant = false;
    for (int64_t a = 0; a < r; ++a) {
      int64_t m = map[a][idx[a]];
      if (m < 0) { constant = true; break; }
      src += m * is[a];
    }
    std::memcpy(dst, constant ? fill.data() : bytes(in) + src * es, es);
    for (int64_t a = r - 1; a >= 0; --a) {
      if (++idx[a] < out.dims()[a]) break;
      idx[a] = 0;
    }
  }
  return Status::Ok();
}

// CenterCropPad: a centered crop or zero pad per axis (the extra element goes to the end).
Status refCenterCropPad(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  int64_t r = in.rank();
  std::vector<int64_t> full(2 * r, 0);
  for (int64_t a = 0; a < r; ++a) {
    int64_t d = out.dims()[a] - in.dims()[a];  // > 0 pads, < 0 crops
    int64_t begin = d >= 0 ? d / 2 : -((-d) / 2);
    full[a] = begin;
    full[a + r] = d - begin;
  }
  return padInto(ctx, in, out, full, "constant", std::vector<uint8_t>(dataTypeSize(in.dtype()), 0));
}

// DepthToSpace / SpaceToDepth are a reshape to 6-D, a transpose and a reshape.
Status refDepthToSpace(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  int64_t b = ctx.node.attrInt("blocksize", 1);
  int64_t n = in.dims()[0], c = in.dims()[1], h = in.dims()[2], w = in.dims()[3];
  if (ctx.node.attrString("mode", "DCR") == "DCR")
    permuteCopy(in, {n, b, b, c / (b * b), h, w}, {0, 3, 4, 1, 5, 2}, ctx.output(0));
  else
    permuteCopy(in, {n, c / (b * b), b, b, h, w}, {0, 1, 4, 2, 5, 3}, ctx.output(0));
  return Status::Ok();
}

Status refSpaceToDepth(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  int64_t b = ctx.node.attrInt("blocksize", 1);
  int64_t n = in.dims()[0], c = in.dims()[1], h = in.dims()[2], w = in.dims()[3];
  if (ctx.node.attrString("mode", "DCR") == "CRD")  // the inverse of DepthToSpace CRD
    permuteCopy(in, {n, c, h / b, b, w / b, b}, {0, 1, 3, 5, 2, 4}, ctx.output(0));
  else
    permuteCopy(in, {n, c, h / b, b, w / b, b}, {0, 3, 5, 1, 2, 4}, ctx.output(0));
  return Status::Ok();
}

Status refShape(KernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  int64_t r = in.rank();
  int64_t start = ctx.node.attrInt("start", 0), end = ctx.node.attrInt("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<int64_t> v(in.dims().begin() + start, in.dims().begin() + std::max(start, end));
  ctx.outputs[0] = Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())});
  return Status::Ok();
}

Status refSize(KernelContext& ctx) {
  ctx.outputs[0] = Tensor::scalar<int64_t>(ctx.input(0).numel());
  return Status::Ok();
}

Status refConstantOfShape(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  Tensor& out = ctx.output(0);
  const Tensor* v = ctx.node.attrTensor("value");
  if (!v) return Status::Ok();  // zero-filled f32
  size_t es = dataTypeSize(out.dtype());
  for (int64_t i = 0; i < out.numel(); ++i) std::memcpy(bytes(out) + i * es, v->raw(), es);
  return Status::Ok();
}

Status refRange(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  Tensor& out = ctx.output(0);
  bool ok = visitNumericType(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    A start = static_cast<A>(ctx.input(0).data<T>()[0]), delta = static_cast<A>(ctx.input(2).data<T>()[0]);
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = static_cast<T>(start + static_cast<A>(i) * delta);
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(out.dtype()));
  return Status::Ok();
}

Status refCumSum(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  if (ctx.input(1).numel() != 1) return ctx.error("axis must be a scalar");
  int64_t axis = ctx.input(1).getInt(0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node));
  bool exclusive = ctx.node.attrInt("exclusive", 0), reverse = ctx.node.attrInt("reverse", 0);
  int64_t outer = 1, n = in.rank() ? in.dims()[axis] : 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= in.dims()[i];
  for (size_t i = axis + 1; i < in.rank(); ++i) inner *= in.dims()[i];
  bool ok = visitNumericType(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* x = in.data<T>();
    T* y = out.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        A acc = 0;
        for (int64_t k = 0; k < n; ++k) {
          int64_t kk = reverse ? n - 1 - k : k;
          int64_t at = (o * n + kk) * inner + i;
          if (exclusive) {
            y[at] = static_cast<T>(acc);
            acc += static_cast<A>(x[at]);
          } else {
            acc += static_cast<A>(x[at]);
            y[at] = static_cast<T>(acc);
          }
        }
      }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(in.dtype()));
  return Status::Ok();
}

// Whether element i is nonzero, for any element type.
static bool nonzeroAt(const Tensor& t, int64_t i) {
  if (t.dtype() == DataType::kBool) return t.data<bool>()[i];
  return t.getDouble(i) != 0;
}

Status refNonZero(KernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  std::vector<int64_t> hits;
  for (int64_t i = 0; i < in.numel(); ++i)
    if (nonzeroAt(in, i)) hits.push_back(i);
  int64_t r = in.rank(), n = hits.size();
  Tensor& out = ctx.allocOutput(0, DataType::kInt64, {r, n});
  int64_t* o = out.data<int64_t>();
  for (int64_t k = 0; k < n; ++k) {
    int64_t lin = hits[k];
    for (int64_t a = r - 1; a >= 0; --a) {
      o[a * n + k] = lin % in.dims()[a];
      lin /= in.dims()[a];
    }
  }
  return Status::Ok();
}

Status refOneHot(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& idx = ctx.input(0);
  const Tensor& vals = ctx.input(2);
  Tensor& out = ctx.output(0);
  int64_t axis = ctx.node.attrInt("axis", -1);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, idx.rank() + 1, ctx.node));
  int64_t depth = out.dims()[axis];
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= idx.dims()[i];
  for (size_t i = axis; i < idx.rank(); ++i) inner *= idx.dims()[i];
  size_t es = dataTypeSize(out.dtype());
  const uint8_t* off = bytes(vals);
  const uint8_t* on = bytes(vals) + es;
  uint8_t* dst = bytes(out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t d = 0; d < depth; ++d)
      for (int64_t i = 0; i < inner; ++i, dst += es) {
        double v = idx.getDouble(o * inner + i);
        int64_t k = static_cast<int64_t>(v);
        if (k < 0) k += depth;
        std::memcpy(dst, k == d ? on : off, es);
      }
  return Status::Ok();
}

Status refTrilu(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  if (ctx.hasInput(1) && ctx.input(1).numel() != 1)
    return ctx.error("k must have exactly one element, got ", ctx.input(1).numel());
  int64_t k = ctx.hasInput(1) ? ctx.input(1).getInt(0) : 0;
  bool upper = ctx.node.attrInt("upper", 1) != 0;
  int64_t rows = in.dim(-2), cols = in.dim(-1);
  size_t es = dataTypeSize(in.dtype());
  std::memcpy(out.raw(), in.raw(), in.nbytes());
  int64_t mats = (rows > 0 && cols > 0) ? in.numel() / (rows * cols) : 0;
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        bool keep = upper ? j - i >= k : j - i <= k;
        if (!keep) std::memset(bytes(out) + ((m * rows + i) * cols + j) * es, 0, es);
      }
  return Status::Ok();
}

Status refCompress(KernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  const Tensor& cond = ctx.input(1);
  size_t es = dataTypeSize(in.dtype());
  bool has_axis = ctx.node.hasAttr("axis");
  int64_t axis = ctx.node.attrInt("axis", 0);
  int64_t outer = 1, n = in.numel(), inner = 1;
  if (has_axis) {
    RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node));
    n = in.dims()[axis];
    for (int64_t i = 0; i < axis; ++i) outer *= in.dims()[i];
    for (size_t i = axis + 1; i < in.rank(); ++i) inner *= in.dims()[i];
  }
  if (cond.numel() > n)
    return ctx.error("condition has ", cond.numel(), " elements but the selected axis has ", n);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond.numel(); ++i)
    if (cond.data<bool>()[i]) keep.push_back(i);
  std::vector<int64_t> dims = {static_cast<int64_t>(keep.size())};
  if (has_axis) {
    dims = in.dims();
    dims[axis] = keep.size();
  }
  Tensor& out = ctx.allocOutput(0, in.dtype(), dims);
  uint8_t* dst = bytes(out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : keep) {
      std::memcpy(dst, bytes(in) + (o * n + k) * inner * es, inner * es);
      dst += inner * es;
    }
  return Status::Ok();
}

Status refReverseSequence(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  int64_t ba = ctx.node.attrInt("batch_axis", 1), ta = ctx.node.attrInt("time_axis", 0);
  int64_t nb = in.dims()[ba], nt = in.dims()[ta];
  const Tensor& lens = ctx.input(1);
  if (lens.numel() != nb) return ctx.error("sequence_lens has ", lens.numel(), " entries but the batch is ", nb);
  int64_t inner = 1;
  for (size_t i = 2; i < in.rank(); ++i) inner *= in.dims()[i];
  size_t es = dataTypeSize(in.dtype());
  std::memcpy(out.raw(), in.raw(), in.nbytes());
  for (int64_t b = 0; b < nb; ++b) {
    int64_t len = lens.getInt(b);
    if (len < 0 || len > nt) return ctx.error("sequence length ", len, " for batch ", b, " is outside [0, ", nt, "]");
    for (int64_t t = 0; t < len; ++t) {
      int64_t src_t = len - 1 - t;
      auto at = [&](int64_t tt) { return (ta == 0 ? tt * nb + b : b * nt + tt) * inner; };
      std::memcpy(bytes(out) + at(t) * es, bytes(in) + at(src_t) * es, inner * es);
    }
  }
  return Status::Ok();
}

Status refEyeLike(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  Tensor& out = ctx.output(0);
  int64_t k = ctx.node.attrInt("k", 0);
  int64_t rows = out.dims()[0], cols = out.dims()[1];
  bool ok = visitType(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    for (int64_t i = 0; i < rows; ++i) {
      int64_t j = i + k;
      if (j >= 0 && j < cols) o[i * cols + j] = static_cast<T>(1);
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(out.dtype()));
  return Status::Ok();
}

Status refUnique(KernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  bool sorted = ctx.node.attrInt("sorted", 1) != 0;
  bool has_axis = ctx.node.hasAttr("axis");
  int64_t axis = ctx.node.attrInt("axis", 0);
  // View the input as [outer, n, inner]; a "slice" k is every [o, k, i].
  int64_t outer = 1, n = in.numel(), inner = 1;
  if (has_axis) {
    RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node));
    n = in.dims()[axis];
    for (int64_t i = 0; i < axis; ++i) outer *= in.dims()[i];
    for (size_t i = axis + 1; i < in.rank(); ++i) inner *= in.dims()[i];
  }
  std::vector<int64_t> first;  // first occurrence of each unique slice, in order of appearance
  std::vector<int64_t> inverse(n), counts;
  bool ok = visitType(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* x = in.data<T>();
    auto less = [&](int64_t a, int64_t b) {
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          A va = static_cast<A>(x[(o * n + a) * inner + i]), vb = static_cast<A>(x[(o * n + b) * inner + i]);
          if (va < vb) return true;
          if (vb < va) return false;
        }
      return false;
    };
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), less);
    // Groups of equal slices in sorted order; each group's first element is its first occurrence.
    std::vector<int64_t> group_of(n), group_first;
    for (int64_t k = 0; k < n; ++k) {
      if (k == 0 || less(order[k - 1], order[k])) group_first.push_back(order[k]);
      group_of[order[k]] = group_first.size() - 1;
    }
    std::vector<int64_t> rank_of(group_first.size());
    if (sorted) {
      first = group_first;
      std::iota(rank_of.begin(), rank_of.end(), 0);
    } else {
      std::vector<int64_t> gs(group_first.size());
      std::iota(gs.begin(), gs.end(), 0);
      std::sort(gs.begin(), gs.end(), [&](int64_t a, int64_t b) { return group_first[a] < group_first[b]; });
      for (size_t j = 0; j < gs.size(); ++j) {
        rank_of[gs[j]] = j;
        first.push_back(group_first[gs[j]]);
      }
    }
    counts.assign(first.size(), 0);
    for (int64_t k = 0; k < n; ++k) {
      inverse[k] = rank_of[group_of[k]];
      ++counts[inverse[k]];
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(in.dtype()));
  int64_t u = first.size();
  std::vector<int64_t> ydims = {u};
  if (has_axis) {
    ydims = in.dims();
    ydims[axis] = u;
  }
  Tensor& y = ctx.allocOutput(0, in.dtype(), ydims);
  size_t es = dataTypeSize(in.dtype());
  uint8_t* dst = bytes(y);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : first) {
      std::memcpy(dst, bytes(in) + (o * n + k) * inner * es, inner * es);
      dst += inner * es;
    }
  if (ctx.outputs.size() > 1) ctx.outputs[1] = Tensor::fromVector<int64_t>(first, {u});
  if (ctx.outputs.size() > 2) ctx.outputs[2] = Tensor::fromVector<int64_t>(inverse, {n});
  if (ctx.outputs.size() > 3) ctx.outputs[3] = Tensor::fromVector<int64_t>(counts, {u});
  return Status::Ok();
}

}  // namespace ramjet::ops
