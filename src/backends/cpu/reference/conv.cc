// Reference kernels for Conv, ConvTranspose and ConvInteger: im2col / col2im around the one
// shared GEMM (gemm.h). N-D (1D/2D/3D...) with groups, strides, dilations and pads.
#include <algorithm>
#include <cstring>

#include "backends/cpu/reference/gemm.h"
#include "core/dispatch.h"
#include "ops/nn_geometry.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

using reference::ComputeOutput;

std::vector<int64_t> spatialOf(const Tensor& t) {
  return std::vector<int64_t>(t.dims().begin() + 2, t.dims().end());
}

// col[(c, k...), (o...)] = x[c, o*stride - pad_begin + k*dilation] (pad_value outside).
// x holds `channels` planes of size prod(in); col has channels*prod(kernel) rows of prod(out).
template <typename T>
void im2col(const T* x, int64_t channels, const std::vector<int64_t>& in, const WindowGeometry& g,
            T pad_value, T* col) {
  const size_t nd = in.size();
  const int64_t kprod = numElements(g.kernel), P = numElements(g.out), inprod = numElements(in);
  const int64_t rows = channels * kprod;
  const int64_t ol = g.out[nd - 1], il = in[nd - 1];
  const int64_t sl = g.strides[nd - 1], dl = g.dilations[nd - 1], pl = g.pads[nd - 1];
  const std::vector<int64_t> in_strides = stridesOf(in);
  reference::parallelRange(
      rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(P, 1)),
      [&](int64_t r_begin, int64_t r_end) {
        for (int64_t r = r_begin; r < r_end; ++r) {
          const int64_t c = r / kprod;
          int64_t kr = r % kprod;
          std::vector<int64_t> kpos(nd);
          for (int d = static_cast<int>(nd) - 1; d >= 0; --d) {
            kpos[d] = kr % g.kernel[d];
            kr /= g.kernel[d];
          }
          const T* src = x + c * inprod;
          T* dst = col + r * P;
          // Last-dim valid output range: 0 <= ow*s + base < il.
          const int64_t base = kpos[nd - 1] * dl - pl;
          int64_t lo = base >= 0 ? 0 : (-base + sl - 1) / sl;
          int64_t hi = il - 1 - base < 0 ? -1 : (il - 1 - base) / sl;  // inclusive
          lo = std::min(lo, ol);
          hi = std::min(hi, ol - 1);
          std::vector<int64_t> o(nd > 1 ? nd - 1 : 0, 0);
          const int64_t outer = P / ol;
          for (int64_t oi = 0; oi < outer; ++oi) {
            T* d = dst + oi * ol;
            bool valid = true;
            int64_t off = 0;
            for (size_t k = 0; k + 1 < nd; ++k) {
              const int64_t p = o[k] * g.strides[k] - g.pads[k] + kpos[k] * g.dilations[k];
              if (p < 0 || p >= in[k]) {
                valid = false;
                break;
              }
              off += p * in_strides[k];
            }
            if (!valid || hi < lo) {
              std::fill(d, d + ol, pad_value);
            } else {
              const T* s = src + off + base;
              for (int64_t w = 0; w < lo; ++w) d[w] = pad_value;
              if (sl == 1) {
                std::memcpy(d + lo, s + lo, sizeof(T) * static_cast<size_t>(hi - lo + 1));
              } else {
                for (int64_t w = lo; w <= hi; ++w) d[w] = s[w * sl];
              }
              for (int64_t w = hi + 1; w < ol; ++w) d[w] = pad_value;
            }
            for (int k = static_cast<int>(o.size()) - 1; k >= 0; --k) {
              if (++o[k] < g.out[k]) break;
              o[k] = 0;
            }
          }
        }
      });
}

// y[m, i*stride - pad + k*dilation] += col[(m, k...), i]; y has `channels` planes of prod(out).
template <typename T>
void col2im(const T* col, int64_t channels, const std::vector<int64_t>& in, const WindowGeometry& g,
            T* y) {
  const size_t nd = in.size();
  const int64_t kprod = numElements(g.kernel), P = numElements(in), outprod = numElements(g.out);
  const std::vector<int64_t> out_strides = stridesOf(g.out);
  reference::parallelRange(channels, std::max<int64_t>(1, 32768 / std::max<int64_t>(kprod * P, 1)),
                           [&](int64_t m_begin, int64_t m_end) {
                             for (int64_t m = m_begin; m < m_end; ++m) {
                               std::vector<int64_t> kpos(nd), ipos(nd);
                               T* dst = y + m * outprod;
                               for (int64_t kr0 = 0; kr0 < kprod; ++kr0) {
                                 int64_t kr = kr0;
                                 for (int d = static_cast<int>(nd) - 1; d >= 0; --d) {
                                   kpos[d] = kr % g.kernel[d];
                                   kr /= g.kernel[d];
                                 }
                                 const T* src = col + (m * kprod + kr0) * P;
                                 std::fill(ipos.begin(), ipos.end(), 0);
                                 for (int64_t i = 0; i < P; ++i) {
                                   bool valid = true;
                                   int64_t off = 0;
                                   for (size_t d = 0; d < nd; ++d) {
                                     const int64_t p = ipos[d] * g.strides[d] - g.pads[d] +
                                                       kpos[d] * g.dilations[d];
                                     if (p < 0 || p >= g.out[d]) {
                                       valid = false;
                                       break;
                                     }
                                     off += p * out_strides[d];
                                   }
                                   if (valid) dst[off] += src[i];
                                   for (int d = static_cast<int>(nd) - 1; d >= 0; --d) {
                                     if (++ipos[d] < in[d]) break;
                                     ipos[d] = 0;
                                   }
                                 }
                               }
                             }
                           });
}

template <typename A>
void convCompute(const A* x, const A* w, const A* b, A* y, const std::vector<int64_t>& xd,
                 int64_t M, int64_t group, const WindowGeometry& g) {
  const int64_t N = xd[0], C = xd[1], Cg = C / group, Mg = M / group;
  const std::vector<int64_t> in(xd.begin() + 2, xd.end());
  const int64_t inprod = numElements(in), P = numElements(g.out), kprod = numElements(g.kernel);
  const int64_t Kdim = Cg * kprod;
  bool pointwise = true;
  for (size_t d = 0; d < in.size(); ++d)
    pointwise &=
        g.kernel[d] == 1 && g.strides[d] == 1 && g.pads[d] == 0 && g.pads[d + in.size()] == 0;
  std::vector<A> col(pointwise ? 0 : static_cast<size_t>(Kdim * P));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t gi = 0; gi < group; ++gi) {
      const A* xg = x + (n * C + gi * Cg) * inprod;
      const A* cp = xg;
      if (!pointwise) {
        im2col(xg, Cg, in, g, A(0), col.data());
        cp = col.data();
      }
      A* yg = y + (n * M + gi * Mg) * P;
      reference::gemm(false, false, Mg, P, Kdim, A(1), w + gi * Mg * Kdim, Kdim, cp, P, A(0), yg,
                      P);
      if (b) {
        for (int64_t m = 0; m < Mg; ++m) {
          const A bv = b[gi * Mg + m];
          A* row = yg + m * P;
          for (int64_t p = 0; p < P; ++p) row[p] += bv;
        }
      }
    }
  }
}

}  // namespace

Status refConv(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  Tensor& y = ctx.output(0);
  const int64_t group = ctx.node.attrInt("group", 1);
  if (x.rank() < 3 || w.rank() != x.rank())
    return ctx.error("X ", dimsToString(x.dims()), " and W ", dimsToString(w.dims()),
                     " must have equal rank >= 3");
  if (group < 1 || x.dim(1) != w.dim(1) * group || w.dim(0) % group != 0)
    return ctx.error("X ", dimsToString(x.dims()), " and W ", dimsToString(w.dims()),
                     " do not match for group ", group);
  RJ_ASSIGN_OR_RETURN(WindowGeometry g, forwardWindow(ctx.node, spatialOf(x), spatialOf(w), false));
  if (ctx.hasInput(2) && ctx.input(2).numel() != w.dim(0))
    return ctx.error("bias has ", ctx.input(2).numel(), " elements; expected ", w.dim(0));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx, sw, sb;
    const A* px = reference::asCompute<A>(x, sx);
    const A* pw = reference::asCompute<A>(w, sw);
    const A* pb = ctx.hasInput(2) ? reference::asCompute<A>(ctx.input(2), sb) : nullptr;
    ComputeOutput<A> out(y);
    convCompute<A>(px, pw, pb, out.data(), x.dims(), w.dim(0), group, g);
    out.flush();
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

// X [N, C, in...], W [C, M/group, k...]: per group col = Wg^T Xg, then col2im into Y.
Status refConvTranspose(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  Tensor& y = ctx.output(0);
  const int64_t group = ctx.node.attrInt("group", 1);
  if (x.rank() < 3 || w.rank() != x.rank())
    return ctx.error("X ", dimsToString(x.dims()), " and W ", dimsToString(w.dims()),
                     " must have equal rank >= 3");
  if (group < 1 || x.dim(1) != w.dim(0) || w.dim(0) % group != 0)
    return ctx.error("X ", dimsToString(x.dims()), " and W ", dimsToString(w.dims()),
                     " do not match for group ", group);
  const std::vector<int64_t> in = spatialOf(x);
  RJ_ASSIGN_OR_RETURN(WindowGeometry g, transposeWindow(ctx.node, in, spatialOf(w)));
  const int64_t N = x.dim(0), C = x.dim(1), Cg = C / group, Mg = w.dim(1), M = Mg * group;
  if (ctx.hasInput(2) && ctx.input(2).numel() != M)
    return ctx.error("bias has ", ctx.input(2).numel(), " elements; expected ", M);
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx, sw, sb;
    const A* px = reference::asCompute<A>(x, sx);
    const A* pw = reference::asCompute<A>(w, sw);
    const A* pb = ctx.hasInput(2) ? reference::asCompute<A>(ctx.input(2), sb) : nullptr;
    ComputeOutput<A> out(y);
    A* py = out.data();
    const int64_t inprod = numElements(in), outprod = numElements(g.out),
                  kprod = numElements(g.kernel);
    std::vector<A> col(static_cast<size_t>(Mg * kprod * inprod));
    std::fill(py, py + N * M * outprod, A(0));
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t gi = 0; gi < group; ++gi) {
        const A* xg = px + (n * C + gi * Cg) * inprod;
        const A* wg = pw + gi * Cg * Mg * kprod;
        reference::gemm(true, false, Mg * kprod, inprod, Cg, A(1), wg, Mg * kprod, xg, inprod, A(0),
                        col.data(), inprod);
        A* yg = py + (n * M + gi * Mg) * outprod;
        col2im(col.data(), Mg, in, g, yg);
      }
      if (pb)
        for (int64_t m = 0; m < M; ++m) {
          A* row = py + (n * M + m) * outprod;
          for (int64_t p = 0; p < outprod; ++p) row[p] += pb[m];
        }
    }
    out.flush();
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

// 8-bit convolution with zero points, exact int32 accumulation.
Status refConvInteger(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  Tensor& y = ctx.output(0);
  const int64_t group = ctx.node.attrInt("group", 1);
  if (x.rank() < 3 || w.rank() != x.rank())
    return ctx.error("X ", dimsToString(x.dims()), " and W ", dimsToString(w.dims()),
                     " must have equal rank >= 3");
  if (group < 1 || x.dim(1) != w.dim(1) * group || w.dim(0) % group != 0)
    return ctx.error("X ", dimsToString(x.dims()), " and W ", dimsToString(w.dims()),
                     " do not match for group ", group);
  const std::vector<int64_t> in = spatialOf(x);
  RJ_ASSIGN_OR_RETURN(WindowGeometry g, forwardWindow(ctx.node, in, spatialOf(w), false));
  const int64_t M = w.dim(0);
  int32_t xz = 0;
  if (ctx.hasInput(2)) {
    if (ctx.input(2).numel() != 1)
      return ctx.error("x_zero_point must be a scalar, got ", dimsToString(ctx.input(2).dims()));
    xz = static_cast<int32_t>(ctx.input(2).getInt(0));
  }
  std::vector<int32_t> wz(static_cast<size_t>(M), 0);
  if (ctx.hasInput(3)) {
    const Tensor& z = ctx.input(3);
    if (z.numel() != 1 && z.numel() != M)
      return ctx.error("w_zero_point has ", z.numel(), " elements; expected 1 or ", M);
    for (int64_t m = 0; m < M; ++m) wz[m] = static_cast<int32_t>(z.getInt(z.numel() == 1 ? 0 : m));
  }
  std::vector<int32_t> xv(static_cast<size_t>(x.numel())), wv(static_cast<size_t>(w.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) xv[i] = static_cast<int32_t>(x.getInt(i)) - xz;
  const int64_t N = x.dim(0), C = x.dim(1), Cg = C / group, Mg = M / group;
  const int64_t inprod = numElements(in), P = numElements(g.out), Kdim = Cg * numElements(g.kernel);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < Kdim; ++k)
      wv[m * Kdim + k] = static_cast<int32_t>(w.getInt(m * Kdim + k)) - wz[m];
  std::vector<int32_t> col(static_cast<size_t>(Kdim * P));
  int32_t* py = y.data<int32_t>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t gi = 0; gi < group; ++gi) {
      im2col<int32_t>(xv.data() + (n * C + gi * Cg) * inprod, Cg, in, g, 0, col.data());
      for (int64_t m = 0; m < Mg; ++m) {
        int32_t* row = py + (n * M + gi * Mg + m) * P;
        std::fill(row, row + P, 0);
        const int32_t* wr = wv.data() + (gi * Mg + m) * Kdim;
        for (int64_t k = 0; k < Kdim; ++k) {
          const int32_t wk = wr[k];
          const int32_t* cr = col.data() + k * P;
          for (int64_t p = 0; p < P; ++p) row[p] += wk * cr[p];
        }
      }
    }
  return Status::Ok();
}

}  // namespace ramjet::ops
