// Reference kernels for the normalizations: BatchNormalization (inference and training mode),
// InstanceNormalization, LayerNormalization, GroupNormalization, MeanVarianceNormalization, LRN.
// Statistics are accumulated in double; the element loops run in the compute type.
#include <cmath>

#include "backends/cpu/reference/broadcast.h"
#include "backends/cpu/reference/gemm.h"
#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

using reference::ComputeOutput;

std::vector<double> toDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.getDouble(i);
  return v;
}

Status needElements(const KernelContext& ctx, const Tensor& t, int64_t n, const char* what) {
  if (t.numel() != n) return ctx.error(what, " has ", t.numel(), " elements; expected ", n);
  return Status::Ok();
}

// y[n, c, i] = x[n, c, i] * a[c] + b[c] over planes of `inner` elements.
template <typename A>
void affinePerChannel(const A* x, A* y, int64_t N, int64_t C, int64_t inner,
                      const std::vector<double>& a, const std::vector<double>& b) {
  reference::parallelRange(N * C, std::max<int64_t>(1, 65536 / std::max<int64_t>(inner, 1)),
                           [&](int64_t nc_begin, int64_t nc_end) {
                             for (int64_t nc = nc_begin; nc < nc_end; ++nc) {
                               const int64_t c = nc % C;
                               const A av = static_cast<A>(a[c]), bv = static_cast<A>(b[c]);
                               const A* s = x + nc * inner;
                               A* d = y + nc * inner;
                               for (int64_t i = 0; i < inner; ++i) d[i] = s[i] * av + bv;
                             }
                           });
}

// Population mean and variance of n values.
template <typename A>
void meanVar(const A* s, int64_t n, int64_t stride, double* mean, double* var) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(s[i * stride]);
  const double m = n > 0 ? sum / static_cast<double>(n) : 0.0;
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(s[i * stride]) - m;
    sq += d * d;
  }
  *mean = m;
  *var = n > 0 ? sq / static_cast<double>(n) : 0.0;
}

}  // namespace

Status refBatchNormalization(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.error("input X ", dimsToString(x.dims()), " must have rank >= 2");
  const int64_t N = x.dim(0), C = x.dim(1), inner = N * C == 0 ? 0 : x.numel() / (N * C);
  const char* names[] = {"X", "scale", "B", "input_mean", "input_var"};
  for (size_t i = 1; i < 5; ++i) RJ_RETURN_IF_ERROR(needElements(ctx, ctx.input(i), C, names[i]));
  const double eps = ctx.node.attrFloat("epsilon", 1e-5f);
  const double momentum = ctx.node.attrFloat("momentum", 0.9f);
  const bool training = ctx.node.attrInt("training_mode", 0) != 0;
  std::vector<double> scale = toDoubles(ctx.input(1)), bias = toDoubles(ctx.input(2));
  std::vector<double> mean = toDoubles(ctx.input(3)), var = toDoubles(ctx.input(4));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx;
    const A* px = reference::asCompute<A>(x, sx);
    if (training) {
      // Batch statistics normalise Y; running stats blend the inputs with them.
      std::vector<double> bm(C), bv(C);
      for (int64_t c = 0; c < C; ++c) {
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < inner; ++i)
            sum += static_cast<double>(px[(n * C + c) * inner + i]);
        const double cnt = static_cast<double>(N * inner);
        bm[c] = cnt > 0 ? sum / cnt : 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t i = 0; i < inner; ++i) {
            const double d = static_cast<double>(px[(n * C + c) * inner + i]) - bm[c];
            sq += d * d;
          }
        bv[c] = cnt > 0 ? sq / cnt : 0;
      }
      for (size_t o = 1; o < 3; ++o) {
        if (!ctx.hasOutput(o)) continue;
        Tensor& t = ctx.output(o);
        std::vector<double> r(C);
        for (int64_t c = 0; c < C; ++c)
          r[c] = (o == 1 ? mean[c] : var[c]) * momentum + (o == 1 ? bm[c] : bv[c]) * (1 - momentum);
        reference::storeCompute(r.data(), t);
      }
      mean = bm;
      var = bv;
    }
    std::vector<double> a(C), b(C);
    for (int64_t c = 0; c < C; ++c) {
      a[c] = scale[c] / std::sqrt(var[c] + eps);
      b[c] = bias[c] - mean[c] * a[c];
    }
    ComputeOutput<A> out(ctx.output(0));
    affinePerChannel<A>(px, out.data(), N, C, inner, a, b);
    out.flush();
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

Status refInstanceNormalization(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return ctx.error("input X ", dimsToString(x.dims()), " must have rank >= 3");
  const int64_t N = x.dim(0), C = x.dim(1), inner = N * C == 0 ? 0 : x.numel() / (N * C);
  RJ_RETURN_IF_ERROR(needElements(ctx, ctx.input(1), C, "scale"));
  RJ_RETURN_IF_ERROR(needElements(ctx, ctx.input(2), C, "B"));
  const double eps = ctx.node.attrFloat("epsilon", 1e-5f);
  std::vector<double> scale = toDoubles(ctx.input(1)), bias = toDoubles(ctx.input(2));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx;
    const A* px = reference::asCompute<A>(x, sx);
    ComputeOutput<A> out(ctx.output(0));
    A* py = out.data();
    reference::parallelRange(
        N * C, std::max<int64_t>(1, 65536 / std::max<int64_t>(inner, 1)),
        [&](int64_t nc_begin, int64_t nc_end) {
          for (int64_t nc = nc_begin; nc < nc_end; ++nc) {
            const int64_t c = nc % C;
            double m, v;
            meanVar(px + nc * inner, inner, 1, &m, &v);
            const double a = scale[c] / std::sqrt(v + eps), b = bias[c] - m * a;
            for (int64_t i = 0; i < inner; ++i)
              py[nc * inner + i] = static_cast<A>(static_cast<double>(px[nc * inner + i]) * a + b);
          }
        });
    out.flush();
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

Status refLayerNormalization(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = ctx.node.attrInt("axis", -1);
  const int64_t rank = static_cast<int64_t>(x.rank());
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, rank, ctx.node));
  const double eps = ctx.node.attrFloat("epsilon", 1e-5f);
  std::vector<int64_t> norm(x.dims().begin() + axis, x.dims().end());
  const int64_t inner = numElements(norm), outer = inner == 0 ? 0 : x.numel() / inner;
  // Scale / B broadcast over the normalized dims: precomputed element index per position.
  auto paramIndex = [&](const Tensor& t, std::vector<int64_t>* idx) -> Status {
    if (t.rank() > norm.size())
      return ctx.error("Scale/B ", dimsToString(t.dims()), " has more dims than ",
                       dimsToString(norm));
    auto b = broadcastDims({norm, t.dims()}, ctx.node);
    if (!b.ok() || *b != norm)
      return ctx.error("Scale/B ", dimsToString(t.dims()), " does not broadcast to ",
                       dimsToString(norm));
    reference::BroadcastIndexer bi(t.dims(), norm);
    idx->resize(static_cast<size_t>(inner));
    for (int64_t i = 0; i < inner; ++i) (*idx)[i] = bi(i);
    return Status::Ok();
  };
  std::vector<int64_t> si, bi;
  RJ_RETURN_IF_ERROR(paramIndex(ctx.input(1), &si));
  if (ctx.hasInput(2)) RJ_RETURN_IF_ERROR(paramIndex(ctx.input(2), &bi));
  std::vector<double> scale = toDoubles(ctx.input(1));
  std::vector<double> bias = ctx.hasInput(2) ? toDoubles(ctx.input(2)) : std::vector<double>();
  std::vector<double> means(static_cast<size_t>(outer)), invs(static_cast<size_t>(outer));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx;
    const A* px = reference::asCompute<A>(x, sx);
    ComputeOutput<A> out(ctx.output(0));
    A* py = out.data();
    reference::parallelRange(outer, std::max<int64_t>(1, 65536 / std::max<int64_t>(inner, 1)),
                             [&](int64_t o_begin, int64_t o_end) {
                               for (int64_t o = o_begin; o < o_end; ++o) {
                                 double m, v;
                                 meanVar(px + o * inner, inner, 1, &m, &v);
                                 const double inv = 1.0 / std::sqrt(v + eps);
                                 means[o] = m;
                                 invs[o] = inv;
                                 for (int64_t i = 0; i < inner; ++i) {
                                   double r = (static_cast<double>(px[o * inner + i]) - m) * inv *
                                              scale[si[i]];
                                   if (!bi.empty()) r += bias[bi[i]];
                                   py[o * inner + i] = static_cast<A>(r);
                                 }
                               }
                             });
    out.flush();
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  if (ctx.hasOutput(1)) reference::storeCompute(means.data(), ctx.output(1));
  if (ctx.hasOutput(2)) reference::storeCompute(invs.data(), ctx.output(2));
  return Status::Ok();
}

Status refGroupNormalization(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.error("input X ", dimsToString(x.dims()), " must have rank >= 2");
  const int64_t G = ctx.node.attrInt("num_groups", 0);
  const int64_t N = x.dim(0), C = x.dim(1), inner = N * C == 0 ? 0 : x.numel() / (N * C);
  if (G < 1 || C % G != 0)
    return ctx.error("num_groups ", G, " does not divide the channel count ", C);
  const bool per_group = ctx.node.attrInt("affine_per_group", 0) != 0;
  RJ_RETURN_IF_ERROR(needElements(ctx, ctx.input(1), per_group ? G : C, "scale"));
  RJ_RETURN_IF_ERROR(needElements(ctx, ctx.input(2), per_group ? G : C, "bias"));
  const double eps = ctx.node.attrFloat("epsilon", 1e-5f);
  const int64_t Cg = C / G;
  std::vector<double> scale = toDoubles(ctx.input(1)), bias = toDoubles(ctx.input(2));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx;
    const A* px = reference::asCompute<A>(x, sx);
    ComputeOutput<A> out(ctx.output(0));
    A* py = out.data();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t base = (n * C + g * Cg) * inner;
        double m, v;
        meanVar(px + base, Cg * inner, 1, &m, &v);
        const double inv = 1.0 / std::sqrt(v + eps);
        for (int64_t c = 0; c < Cg; ++c) {
          const int64_t pc = per_group ? g : g * Cg + c;
          for (int64_t i = 0; i < inner; ++i) {
            const int64_t e = base + c * inner + i;
            py[e] = static_cast<A>((static_cast<double>(px[e]) - m) * inv * scale[pc] + bias[pc]);
          }
        }
      }
    out.flush();
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

// (X - mean) / (sqrt(var) + 1e-9) over `axes` (ONNX's function body).
Status refMeanVarianceNormalization(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  std::vector<bool> reduced(static_cast<size_t>(rank), false);
  for (int64_t a : ctx.node.attrInts("axes", {0, 2, 3})) {
    RJ_RETURN_IF_ERROR(normalizeAxis(&a, rank, ctx.node));
    reduced[a] = true;
  }
  // Group id of each element: its index over the kept dims.
  std::vector<int64_t> kept_dims;
  for (int64_t d = 0; d < rank; ++d)
    kept_dims.push_back(reduced[d] ? 1 : x.dim(static_cast<int>(d)));
  const int64_t groups = numElements(kept_dims);
  reference::BroadcastIndexer key(kept_dims, x.dims());
  std::vector<double> sum(static_cast<size_t>(groups), 0), sq(static_cast<size_t>(groups), 0);
  std::vector<int64_t> cnt(static_cast<size_t>(groups), 0);
  std::vector<double> xv = toDoubles(x);
  std::vector<int64_t> keys(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    keys[i] = key(i);
    sum[keys[i]] += xv[i];
    cnt[keys[i]]++;
  }
  for (int64_t gi = 0; gi < groups; ++gi)
    sum[gi] = cnt[gi] ? sum[gi] / static_cast<double>(cnt[gi]) : 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double d = xv[i] - sum[keys[i]];
    sq[keys[i]] += d * d;
  }
  std::vector<double> y(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = keys[i];
    const double sd = std::sqrt(cnt[k] ? sq[k] / static_cast<double>(cnt[k]) : 0.0);
    y[i] = (xv[i] - sum[k]) / (sd + 1e-9);
  }
  if (!isFloatType(x.dtype())) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  reference::storeCompute(y.data(), ctx.output(0));
  return Status::Ok();
}

// y = x / (bias + alpha / size * sum of x^2 over a window of `size` channels) ^ beta.
Status refLRN(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.error("input X ", dimsToString(x.dims()), " must have rank >= 2");
  const int64_t size = ctx.node.attrInt("size", 0);
  if (size < 1) return ctx.error("attribute 'size' must be >= 1");
  const double alpha = ctx.node.attrFloat("alpha", 1e-4f), beta = ctx.node.attrFloat("beta", 0.75f);
  const double bias = ctx.node.attrFloat("bias", 1.0f);
  const int64_t N = x.dim(0), C = x.dim(1), inner = N * C == 0 ? 0 : x.numel() / (N * C);
  const int64_t lo = (size - 1) / 2, hi = size - 1 - lo;  // channels below / above
  std::vector<double> xv = toDoubles(x), y(xv.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        double s = 0;
        for (int64_t cc = std::max<int64_t>(0, c - lo); cc <= std::min(C - 1, c + hi); ++cc) {
          const double v = xv[(n * C + cc) * inner + i];
          s += v * v;
        }
        const int64_t e = (n * C + c) * inner + i;
        y[e] = xv[e] / std::pow(bias + alpha / static_cast<double>(size) * s, beta);
      }
  if (!isFloatType(x.dtype())) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  reference::storeCompute(y.data(), ctx.output(0));
  return Status::Ok();
}

}  // namespace ramjet::ops
