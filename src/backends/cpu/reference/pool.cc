// Reference kernels for pooling: MaxPool (+Indices), AveragePool, LpPool, the global pools and
// MaxUnpool. N-D windows via per-dimension lists of valid input coordinates.
#include <cmath>
#include <limits>

#include "backends/cpu/reference/gemm.h"
#include "core/dispatch.h"
#include "ops/nn_geometry.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// For one spatial dim: the valid input coordinates of each output position's window, and how
// many window taps fall inside the padded input (for count_include_pad).
struct DimWindows {
  std::vector<std::vector<int64_t>> taps;
  std::vector<int64_t> padded_count;
};

std::vector<DimWindows> windowsOf(const std::vector<int64_t>& in, const WindowGeometry& g) {
  const size_t nd = in.size();
  std::vector<DimWindows> w(nd);
  for (size_t d = 0; d < nd; ++d) {
    w[d].taps.resize(static_cast<size_t>(g.out[d]));
    w[d].padded_count.resize(static_cast<size_t>(g.out[d]));
    for (int64_t o = 0; o < g.out[d]; ++o) {
      int64_t padded = 0;
      for (int64_t k = 0; k < g.kernel[d]; ++k) {
        const int64_t p = o * g.strides[d] - g.pads[d] + k * g.dilations[d];
        if (p >= 0 && p < in[d]) w[d].taps[o].push_back(p);
        if (p >= -g.pads[d] && p < in[d] + g.pads[d + nd]) ++padded;
      }
      w[d].padded_count[o] = padded;
    }
  }
  return w;
}

// Calls f(plane, out_index, taps) where taps are the window's input offsets within the plane,
// for every (n, c) plane and output position; `ipos` is the tap's coordinate vector.
template <typename F>
void forEachWindow(int64_t planes, const std::vector<int64_t>& in, const WindowGeometry& g, F f) {
  const size_t nd = in.size();
  const std::vector<DimWindows> w = windowsOf(in, g);
  const std::vector<int64_t> in_strides = stridesOf(in);
  const int64_t P = numElements(g.out);
  reference::parallelRange(planes, std::max<int64_t>(1, 4096 / std::max<int64_t>(P, 1)),
                           [&](int64_t plane_begin, int64_t plane_end) {
                             for (int64_t plane = plane_begin; plane < plane_end; ++plane) {
                               std::vector<int64_t> o(nd, 0), t(nd, 0), offs, coords;
                               for (int64_t oi = 0; oi < P; ++oi) {
                                 offs.clear();
                                 coords.clear();
                                 bool empty = false;
                                 int64_t padded = 1;
                                 for (size_t d = 0; d < nd; ++d) {
                                   empty |= w[d].taps[o[d]].empty();
                                   padded *= w[d].padded_count[o[d]];
                                 }
                                 if (!empty) {
                                   std::fill(t.begin(), t.end(), 0);
                                   while (true) {
                                     int64_t off = 0;
                                     for (size_t d = 0; d < nd; ++d) {
                                       const int64_t p = w[d].taps[o[d]][t[d]];
                                       off += p * in_strides[d];
                                       coords.push_back(p);
                                     }
                                     offs.push_back(off);
                                     int d = static_cast<int>(nd) - 1;
                                     for (; d >= 0; --d) {
                                       if (++t[d] < static_cast<int64_t>(w[d].taps[o[d]].size()))
                                         break;
                                       t[d] = 0;
                                     }
                                     if (d < 0) break;
                                   }
                                 }
                                 f(plane, oi, offs, coords, padded);
                                 for (int d = static_cast<int>(nd) - 1; d >= 0; --d) {
                                   if (++o[d] < g.out[d]) break;
                                   o[d] = 0;
                                 }
                               }
                             }
                           });
}

Result<WindowGeometry> poolGeometry(KernelContext& ctx, const Tensor& x) {
  if (x.rank() < 3) return ctx.error("input X ", dimsToString(x.dims()), " must have rank >= 3");
  std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  std::vector<int64_t> kernel = ctx.node.attrInts("kernel_shape");
  if (kernel.size() != in.size())
    return ctx.error("kernel_shape ", dimsToString(kernel), " does not match input ",
                     dimsToString(x.dims()));
  return forwardWindow(ctx.node, in, kernel, true);
}

}  // namespace

Status refMaxPool(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  RJ_ASSIGN_OR_RETURN(WindowGeometry g, poolGeometry(ctx, x));
  const std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  const int64_t planes = x.dim(0) * x.dim(1), inprod = numElements(in), P = numElements(g.out);
  const bool col_major = ctx.node.attrInt("storage_order", 0) == 1;
  int64_t* idx = ctx.hasOutput(1) ? ctx.output(1).data<int64_t>() : nullptr;
  bool ok = visitNumericType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    forEachWindow(planes, in, g,
                  [&](int64_t plane, int64_t oi, const std::vector<int64_t>& offs,
                      const std::vector<int64_t>& coords, int64_t) {
                    const T* src = px + plane * inprod;
                    A best = std::numeric_limits<A>::lowest();
                    int64_t arg = -1;
                    for (size_t i = 0; i < offs.size(); ++i) {
                      const A v = static_cast<A>(src[offs[i]]);
                      if (arg < 0 || v > best) {
                        best = v;
                        arg = static_cast<int64_t>(i);
                      }
                    }
                    py[plane * P + oi] = static_cast<T>(best);
                    if (idx) {
                      int64_t flat = -1;
                      if (arg >= 0) {
                        if (!col_major) {
                          flat = plane * inprod + offs[arg];
                        } else {
                          const size_t nd = in.size();
                          int64_t off = 0, stride = 1;
                          for (size_t d = 0; d < nd; ++d) {
                            off += coords[arg * nd + d] * stride;
                            stride *= in[d];
                          }
                          flat = plane * inprod + off;
                        }
                      }
                      idx[plane * P + oi] = flat;
                    }
                  });
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

Status refAveragePool(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  RJ_ASSIGN_OR_RETURN(WindowGeometry g, poolGeometry(ctx, x));
  const std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  const int64_t planes = x.dim(0) * x.dim(1), inprod = numElements(in), P = numElements(g.out);
  const bool include_pad = ctx.node.attrInt("count_include_pad", 0) != 0;
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    forEachWindow(planes, in, g,
                  [&](int64_t plane, int64_t oi, const std::vector<int64_t>& offs,
                      const std::vector<int64_t>&, int64_t padded) {
                    const T* src = px + plane * inprod;
                    double s = 0;
                    for (int64_t o : offs) s += static_cast<double>(src[o]);
                    const int64_t n = include_pad ? padded : static_cast<int64_t>(offs.size());
                    py[plane * P + oi] = static_cast<T>(n > 0 ? s / static_cast<double>(n) : 0.0);
                  });
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

Status refLpPool(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  RJ_ASSIGN_OR_RETURN(WindowGeometry g, poolGeometry(ctx, x));
  const std::vector<int64_t> in(x.dims().begin() + 2, x.dims().end());
  const int64_t planes = x.dim(0) * x.dim(1), inprod = numElements(in), P = numElements(g.out);
  const double p = static_cast<double>(ctx.node.attrInt("p", 2));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    forEachWindow(planes, in, g,
                  [&](int64_t plane, int64_t oi, const std::vector<int64_t>& offs,
                      const std::vector<int64_t>&, int64_t) {
                    const T* src = px + plane * inprod;
                    double s = 0;
                    for (int64_t o : offs) s += std::pow(std::fabs(static_cast<double>(src[o])), p);
                    py[plane * P + oi] = static_cast<T>(std::pow(s, 1.0 / p));
                  });
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

namespace {

template <bool kMax>
Status globalPool(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  if (x.rank() < 2) return ctx.error("input X ", dimsToString(x.dims()), " must have rank >= 2");
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t n = planes == 0 ? 0 : x.numel() / planes;
  if (n == 0 && planes > 0)
    return ctx.error("input X ", dimsToString(x.dims()), " has an empty spatial extent");
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    reference::parallelRange(planes, std::max<int64_t>(1, 65536 / std::max<int64_t>(n, 1)),
                             [&](int64_t p_begin, int64_t p_end) {
                               for (int64_t p = p_begin; p < p_end; ++p) {
                                 const T* s = px + p * n;
                                 if (kMax) {
                                   double m = static_cast<double>(s[0]);
                                   for (int64_t i = 1; i < n; ++i)
                                     m = std::max(m, static_cast<double>(s[i]));
                                   py[p] = static_cast<T>(m);
                                 } else {
                                   double sum = 0;
                                   for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(s[i]);
                                   py[p] = static_cast<T>(sum / static_cast<double>(n));
                                 }
                               }
                             });
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

}  // namespace

Status refGlobalAveragePool(KernelContext& ctx) {
  return globalPool<false>(ctx);
}
Status refGlobalMaxPool(KernelContext& ctx) {
  return globalPool<true>(ctx);
}

// Indices address the default-shaped output ((in-1)*stride + kernel - pads, what MaxPool saw);
// an explicit output_shape (>= that) holds it in its leading corner, zero elsewhere (as the
// ONNX reference does).
Status refMaxUnpool(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  if (x.rank() < 3) return ctx.error("input X ", dimsToString(x.dims()), " must have rank >= 3");
  if (ind.dims() != x.dims())
    return ctx.error("indices ", dimsToString(ind.dims()), " must have X's shape ",
                     dimsToString(x.dims()));
  const size_t nd = x.rank() - 2;
  std::vector<int64_t> kernel = ctx.node.attrInts("kernel_shape");
  std::vector<int64_t> strides = ctx.node.attrInts("strides", std::vector<int64_t>(nd, 1));
  std::vector<int64_t> pads = ctx.node.attrInts("pads", std::vector<int64_t>(2 * nd, 0));
  if (kernel.size() != nd || strides.size() != nd || pads.size() != 2 * nd)
    return ctx.error("kernel_shape/strides/pads do not match ", nd, " spatial dims");
  std::vector<int64_t> inferred = {x.dim(0), x.dim(1)};
  for (size_t d = 0; d < nd; ++d)
    inferred.push_back((x.dim(static_cast<int>(d + 2)) - 1) * strides[d] + kernel[d] - pads[d] -
                       pads[d + nd]);
  Tensor* yp = &ctx.output(0);
  if (!yp->defined()) {
    if (!ctx.hasInput(2)) return ctx.error("output shape is unknown");
    yp = &ctx.allocOutput(0, x.dtype(), ctx.input(2).toInt64Vector());
  }
  Tensor& y = *yp;
  if (y.rank() != x.rank())
    return ctx.error("output shape ", dimsToString(y.dims()), " must have rank ", x.rank());
  for (size_t d = 0; d < y.rank(); ++d)
    if (y.dim(static_cast<int>(d)) < inferred[d])
      return ctx.error("output shape ", dimsToString(y.dims()),
                       " is smaller than the unpooled shape ", dimsToString(inferred));
  const int64_t inferred_n = numElements(inferred);
  const int64_t* pi = ind.data<int64_t>();
  for (int64_t i = 0; i < x.numel(); ++i)
    if (pi[i] < 0 || pi[i] >= inferred_n)
      return ctx.error("index ", pi[i], " at position ", i, " is outside the unpooled tensor ",
                       dimsToString(inferred));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    std::vector<T> tmp(static_cast<size_t>(inferred_n), static_cast<T>(0.f));
    for (int64_t i = 0; i < x.numel(); ++i) tmp[pi[i]] = px[i];
    for (int64_t i = 0; i < y.numel(); ++i) py[i] = static_cast<T>(0.f);
    const std::vector<int64_t> ys = stridesOf(y.dims());
    std::vector<int64_t> idx(inferred.size(), 0);
    for (int64_t i = 0; i < inferred_n; ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * ys[d];
      py[off] = tmp[i];
      for (int d = static_cast<int>(idx.size()) - 1; d >= 0; --d) {
        if (++idx[d] < inferred[d]) break;
        idx[d] = 0;
      }
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

}  // namespace ramjet::ops
