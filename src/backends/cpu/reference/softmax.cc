// Reference kernels for Softmax, LogSoftmax, Hardmax and LpNormalization (one walk along `axis`).
// Opset >= 13 normalises along `axis`; the importer marks older Softmax-family nodes with
// coerce_2d=1: flatten to 2-D at `axis` and normalise rows.
#include <cmath>
#include <limits>

#include "backends/cpu/reference/gemm.h"
#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

enum class Mode { kSoftmax, kLogSoftmax, kHardmax, kLpNorm1, kLpNorm2 };

template <Mode kMode>
Status softmaxKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  int64_t axis = ctx.node.attrInt("axis", -1);
  const int64_t rank = static_cast<int64_t>(x.rank());
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, rank, ctx.node));
  const bool coerce = ctx.node.attrInt("coerce_2d", 0) != 0;
  int64_t outer = 1, n = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t v = x.dim(static_cast<int>(d));
    if (d < axis)
      outer *= v;
    else if (d == axis || coerce)
      n *= v;
    else
      inner *= v;
  }
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx;
    const A* px = reference::asCompute<A>(x, sx);
    reference::ComputeOutput<A> out(y);
    A* py = out.data();
    reference::parallelRange(
        outer, std::max<int64_t>(1, 65536 / std::max<int64_t>(n * inner, 1)),
        [&](int64_t o_begin, int64_t o_end) {
          for (int64_t o = o_begin; o < o_end; ++o) {
            for (int64_t i = 0; i < inner; ++i) {
              if (n == 0) continue;  // empty axis: nothing to read or write (px/py may be null)
              const A* s = px + o * n * inner + i;
              A* d = py + o * n * inner + i;
              if (kMode == Mode::kLpNorm1 || kMode == Mode::kLpNorm2) {  // x / ||x||_p, 0 for a zero norm
                double norm = 0;
                for (int64_t k = 0; k < n; ++k) {
                  const double v = static_cast<double>(s[k * inner]);
                  norm += kMode == Mode::kLpNorm1 ? std::fabs(v) : v * v;
                }
                if (kMode == Mode::kLpNorm2) norm = std::sqrt(norm);
                for (int64_t k = 0; k < n; ++k)
                  d[k * inner] = static_cast<A>(norm > 0 ? static_cast<double>(s[k * inner]) / norm : 0.0);
                continue;
              }
              double mx = -std::numeric_limits<double>::infinity();
              int64_t arg = 0;
              for (int64_t k = 0; k < n; ++k) {
                const double v = static_cast<double>(s[k * inner]);
                if (v > mx) {
                  mx = v;
                  arg = k;
                }
              }
              if (kMode == Mode::kHardmax) {
                for (int64_t k = 0; k < n; ++k) d[k * inner] = static_cast<A>(k == arg ? 1 : 0);
                continue;
              }
              double sum = 0;
              for (int64_t k = 0; k < n; ++k)
                sum += std::exp(static_cast<double>(s[k * inner]) - mx);
              if (kMode == Mode::kSoftmax) {
                for (int64_t k = 0; k < n; ++k)
                  d[k * inner] =
                      static_cast<A>(std::exp(static_cast<double>(s[k * inner]) - mx) / sum);
              } else {
                const double ls = std::log(sum);
                for (int64_t k = 0; k < n; ++k)
                  d[k * inner] = static_cast<A>(static_cast<double>(s[k * inner]) - mx - ls);
              }
            }
          }
        });
    out.flush();
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

}  // namespace

Status refSoftmax(KernelContext& ctx) {
  return softmaxKernel<Mode::kSoftmax>(ctx);
}
Status refLogSoftmax(KernelContext& ctx) {
  return softmaxKernel<Mode::kLogSoftmax>(ctx);
}
Status refHardmax(KernelContext& ctx) {
  return softmaxKernel<Mode::kHardmax>(ctx);
}
Status refLpNormalization(KernelContext& ctx) {
  return ctx.node.attrInt("p", 2) == 1 ? softmaxKernel<Mode::kLpNorm1>(ctx) : softmaxKernel<Mode::kLpNorm2>(ctx);
}

}  // namespace ramjet::ops
