// Reference kernels for reductions, ArgMax/ArgMin and TopK. Reductions accumulate in long double
// (exact for every int64 sum that fits, and no overflow in LogSumExp for float inputs).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/dispatch.h"
#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

namespace {

enum class Red { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

template <typename T>
T fromLongDouble(long double v) {
  if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return 0;
    if (v >= static_cast<long double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    if (v <= static_cast<long double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    return static_cast<T>(v);
  } else {
    return static_cast<T>(static_cast<typename AccType<T>::type>(v));
  }
}

Status reduceKernel(KernelContext& ctx, Red op) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  std::vector<int64_t> axes;
  bool has_axes = ctx.hasInput(1);
  if (has_axes) axes = inputInts(ctx, 1);
  RJ_ASSIGN_OR_RETURN(ReduceAxes ra, reduceAxesFor(ctx.node, in.rank(), has_axes ? &axes : nullptr));
  int64_t r = in.rank();
  if (ra.noop) {  // noop_with_empty_axes and no axes: the input unchanged
    ctx.outputs[0] = in;
    return Status::Ok();
  }
  // Output strides per input axis (0 on reduced axes), in the keepdims layout.
  std::vector<int64_t> kd = in.dims();
  for (int64_t a = 0; a < r; ++a)
      if (ra.reduced[a]) kd[a] = 1;
  std::vector<int64_t> ks = stridesOf(kd), os(r);
  for (int64_t a = 0; a < r; ++a) os[a] = ra.reduced[a] ? 0 : ks[a];
  int64_t n_out = out.numel();
  int64_t count = n_out ? in.numel() / n_out : 0;
  long double init = 0;
  if (op == Red::kProd) init = 1;
  if (op == Red::kMax) init = -std::numeric_limits<long double>::infinity();
  if (op == Red::kMin) init = std::numeric_limits<long double>::infinity();
  std::vector<long double> acc(n_out, init);
  // Max/Min are defined for bool (opset 20); the other reductions are not.
  auto visit = [&](auto&& f) {
    return (op == Red::kMax || op == Red::kMin) ? visitType(in.dtype(), f) : visitNumericType(in.dtype(), f);
  };
  bool ok = visit([&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* x = in.data<T>();
    std::vector<int64_t> pos(r, 0);
    int64_t o = 0;
    for (int64_t i = 0; i < in.numel(); ++i) {
      long double v = static_cast<long double>(static_cast<A>(x[i]));
      long double& a = acc[o];
      switch (op) {
        case Red::kSum: case Red::kMean: case Red::kLogSum: a += v; break;
        case Red::kMax: if (v > a || std::isnan(v)) a = std::isnan(a) ? a : v; break;
        case Red::kMin: if (v < a || std::isnan(v)) a = std::isnan(a) ? a : v; break;
        case Red::kProd: a *= v; break;
        case Red::kL1: a += std::fabs(v); break;
        case Red::kL2: case Red::kSumSquare: a += v * v; break;
        case Red::kLogSumExp: a += std::exp(v); break;
      }
      for (int64_t d = r - 1; d >= 0; --d) {
        o += os[d];
        if (++pos[d] < in.dims()[d]) break;
        o -= os[d] * in.dims()[d];
        pos[d] = 0;
      }
    }
    T* y = out.data<T>();
    for (int64_t j = 0; j < n_out; ++j) {
      long double a = acc[j];
      switch (op) {
        case Red::kMean: a = count ? a / count : std::numeric_limits<long double>::quiet_NaN(); break;
        case Red::kL2: a = std::sqrt(a); break;
        case Red::kLogSum: case Red::kLogSumExp: a = std::log(a); break;
        default: break;
      }
      y[j] = fromLongDouble<T>(a);
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(in.dtype()));
  return Status::Ok();
}

}  // namespace

Status refReduceSum(KernelContext& ctx) { return reduceKernel(ctx, Red::kSum); }
Status refReduceMean(KernelContext& ctx) { return reduceKernel(ctx, Red::kMean); }
Status refReduceMax(KernelContext& ctx) { return reduceKernel(ctx, Red::kMax); }
Status refReduceMin(KernelContext& ctx) { return reduceKernel(ctx, Red::kMin); }
Status refReduceProd(KernelContext& ctx) { return reduceKernel(ctx, Red::kProd); }
Status refReduceL1(KernelContext& ctx) { return reduceKernel(ctx, Red::kL1); }
Status refReduceL2(KernelContext& ctx) { return reduceKernel(ctx, Red::kL2); }
Status refReduceLogSum(KernelContext& ctx) { return reduceKernel(ctx, Red::kLogSum); }
Status refReduceLogSumExp(KernelContext& ctx) { return reduceKernel(ctx, Red::kLogSumExp); }
Status refReduceSumSquare(KernelContext& ctx) { return reduceKernel(ctx, Red::kSumSquare); }

static Status argKernel(KernelContext& ctx, bool is_max) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node));
  bool last = ctx.node.attrInt("select_last_index", 0) != 0;
  int64_t outer = 1, n = in.dims()[axis], inner = 1;
  if (n == 0) return ctx.error("cannot take Arg", is_max ? "Max" : "Min", " over an empty axis");
  for (int64_t i = 0; i < axis; ++i) outer *= in.dims()[i];
  for (size_t i = axis + 1; i < in.rank(); ++i) inner *= in.dims()[i];
  int64_t* y = ctx.output(0).data<int64_t>();
  bool ok = visitNumericType(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* x = in.data<T>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t best = 0;
        A bv = static_cast<A>(x[o * n * inner + i]);
        for (int64_t k = 1; k < n; ++k) {
          A v = static_cast<A>(x[(o * n + k) * inner + i]);
          bool better = is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv));
          if (better) { best = k; bv = v; }
        }
        y[o * inner + i] = best;
      }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(in.dtype()));
  return Status::Ok();
}

Status refArgMax(KernelContext& ctx) { return argKernel(ctx, true); }
Status refArgMin(KernelContext& ctx) { return argKernel(ctx, false); }

Status refTopK(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 1));
  const Tensor& in = ctx.input(0);
  int64_t axis = ctx.node.attrInt("axis", -1);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node));
  bool largest = ctx.node.attrInt("largest", 1) != 0;
  int64_t k = ctx.input(1).getInt(0);
  int64_t outer = 1, n = in.dims()[axis], inner = 1;
  if (k < 0 || k > n) return ctx.error("K=", k, " is outside [0, ", n, "]");
  for (int64_t i = 0; i < axis; ++i) outer *= in.dims()[i];
  for (size_t i = axis + 1; i < in.rank(); ++i) inner *= in.dims()[i];
  int64_t* yi = ctx.output(1).data<int64_t>();
  bool ok = visitNumericType(in.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* x = in.data<T>();
    T* yv = ctx.output(0).data<T>();
    std::vector<int64_t> order(n);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        auto val = [&](int64_t j) { return static_cast<A>(x[(o * n + j) * inner + i]); };
        std::iota(order.begin(), order.end(), 0);
        // Ties go to the lower index; NaN counts as the largest value (as in numpy sorts).
        auto before = [&](int64_t a, int64_t b) {
          A va = val(a), vb = val(b);
          bool na = va != va, nb = vb != vb;
          if (na || nb) {
            if (na && nb) return a < b;
            return largest ? na : nb;
          }
          if (va != vb) return largest ? va > vb : va < vb;
          return a < b;
        };
        std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
        for (int64_t j = 0; j < k; ++j) {
          int64_t at = (o * k + j) * inner + i;
          yv[at] = x[(o * n + order[j]) * inner + i];
          yi[at] = order[j];
        }
      }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(in.dtype()));
  return Status::Ok();
}

}  // namespace ramjet::ops
