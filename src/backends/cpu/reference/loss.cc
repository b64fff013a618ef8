// Reference kernels for NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, computed in double.
#include <cmath>
#include <limits>
#include <optional>

#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// loss[n, d] = -x[n, target[n, d], d] * weight[target]; reduced by `reduction`. `x` is the
// log-probability laid out as [N, C, D] (D = product of the trailing dims).
Status nllCore(KernelContext& ctx, const std::vector<double>& x, const std::vector<int64_t>& dims,
               const Tensor& target, const Tensor* weight, Tensor& out) {
  if (dims.size() < 2) return ctx.error("input must be [N, C, ...], got ", dimsToString(dims));
  const int64_t N = dims[0], C = dims[1];
  int64_t D = 1;
  for (size_t i = 2; i < dims.size(); ++i) D *= dims[i];
  std::vector<int64_t> tdims = dims;
  tdims.erase(tdims.begin() + 1);
  if (target.dims() != tdims)
    return ctx.error("target must have shape ", dimsToString(tdims), ", got ", dimsToString(target.dims()));
  if (weight && (weight->rank() != 1 || weight->numel() != C))
    return ctx.error("weight must be [", C, "], got ", dimsToString(weight->dims()));
  std::optional<int64_t> ignore;
  if (ctx.node.hasAttr("ignore_index")) ignore = ctx.node.attrInt("ignore_index", 0);
  const std::string red = ctx.node.attrString("reduction", "mean");
  std::vector<double> loss(static_cast<size_t>(N * D));
  double wsum = 0, lsum = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t i = n * D + d;
      const int64_t t = target.getInt(i);
      if (ignore && t == *ignore) { loss[i] = 0; continue; }
      if (t < 0 || t >= C) return ctx.error("target[", i, "] = ", t, " is outside the ", C, " classes");
      const double w = weight ? weight->getDouble(t) : 1.0;
      loss[i] = -x[(n * C + t) * D + d] * w;
      wsum += w;
      lsum += loss[i];
    }
  return visitFloatType(out.dtype(), [&](auto tag) {
           using T = typename decltype(tag)::type;
           T* po = out.data<T>();
           if (red == "none") {
             for (size_t i = 0; i < loss.size(); ++i) po[i] = static_cast<T>(loss[i]);
           } else if (red == "sum") {
             po[0] = static_cast<T>(lsum);
           } else {
             po[0] = static_cast<T>(lsum / wsum);  // all targets ignored: 0/0 = NaN, as the reference
           }
         })
             ? Status::Ok()
             : ctx.unsupported("element type ", dataTypeName(out.dtype()));
}

std::vector<double> toDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.getDouble(i);
  return v;
}

}  // namespace

Status refNegativeLogLikelihoodLoss(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  return nllCore(ctx, toDoubles(x), x.dims(), ctx.input(1), ctx.hasInput(2) ? &ctx.input(2) : nullptr, ctx.output(0));
}

Status refSoftmaxCrossEntropyLoss(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.error("scores must be [N, C, ...], got ", dimsToString(x.dims()));
  const int64_t N = x.dims()[0], C = x.dims()[1];
  int64_t D = 1;
  for (size_t i = 2; i < x.rank(); ++i) D *= x.dims()[i];
  std::vector<double> lp = toDoubles(x);
  // log_softmax over the class axis.
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < C; ++c) m = std::max(m, lp[(n * C + c) * D + d]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(lp[(n * C + c) * D + d] - m);
      const double lse = m + std::log(s);
      for (int64_t c = 0; c < C; ++c) lp[(n * C + c) * D + d] -= lse;
    }
  RJ_RETURN_IF_ERROR(nllCore(ctx, lp, x.dims(), ctx.input(1), ctx.hasInput(2) ? &ctx.input(2) : nullptr, ctx.output(0)));
  if (ctx.hasOutput(1)) {
    Tensor& out = ctx.output(1);
    visitFloatType(out.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* po = out.data<T>();
      for (size_t i = 0; i < lp.size(); ++i) po[i] = static_cast<T>(lp[i]);
    });
  }
  return Status::Ok();
}

}  // namespace ramjet::ops
