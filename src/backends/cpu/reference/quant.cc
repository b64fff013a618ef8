// Reference kernels for linear quantization: QuantizeLinear, DequantizeLinear,
// DynamicQuantizeLinear, QLinearMatMul and QLinearConv. Rounding is half-to-even (the default
// floating-point rounding mode, as numpy's rint) and results saturate to the quantized range.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "ops/misc_shapes.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// Maps an element index of x to the index of its scale / zero point (per-tensor, per-axis or
// blocked along `axis`).
struct QuantParamIndexer {
  enum Mode { kTensor, kAxis, kBlock } mode = kTensor;
  int64_t inner = 1, dim = 1, block = 1, blocks = 1;
  int64_t operator()(int64_t i) const {
    switch (mode) {
      case kTensor: return 0;
      case kAxis: return (i / inner) % dim;
      case kBlock: {
        int64_t outer = i / (dim * inner), c = (i / inner) % dim, in = i % inner;
        return (outer * blocks + c / block) * inner + in;
      }
    }
    return 0;
  }
};

Result<QuantParamIndexer> makeIndexer(const KernelContext& ctx, const Tensor& x, const Tensor& scale) {
  QuantParamIndexer q;
  const int64_t block = ctx.node.attrInt("block_size", 0);
  if (ctx.hasInput(2) && ctx.input(2).dims() != scale.dims())
    return ctx.error("zero point shape ", dimsToString(ctx.input(2).dims()), " differs from scale shape ",
                     dimsToString(scale.dims()));
  if (scale.numel() == 1 && block == 0 && scale.rank() <= 1) return q;
  int64_t axis = ctx.node.attrInt("axis", 1);
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (axis < -rank || axis >= rank) return ctx.error("axis ", axis, " is out of range for rank ", rank);
  if (axis < 0) axis += rank;
  q.dim = x.dims()[axis];
  for (int64_t d = axis + 1; d < rank; ++d) q.inner *= x.dims()[d];
  if (block <= 0) {
    if (scale.rank() != 1 || scale.numel() != q.dim)
      return ctx.error("per-axis scale must be 1-D with ", q.dim, " entries (dim ", axis, " of x ",
                       dimsToString(x.dims()), "), got ", dimsToString(scale.dims()));
    q.mode = QuantParamIndexer::kAxis;
    return q;
  }
  q.mode = QuantParamIndexer::kBlock;
  q.block = block;
  q.blocks = (q.dim + block - 1) / block;
  std::vector<int64_t> want = x.dims();
  want[axis] = q.blocks;
  if (scale.dims() != want)
    return ctx.error("blocked scale must have shape ", dimsToString(want), " for block_size ", block, ", got ",
                     dimsToString(scale.dims()));
  return q;
}

template <typename Q>
Q saturateRound(double v) {
  v = std::nearbyint(v);
  constexpr double lo = static_cast<double>(std::numeric_limits<Q>::min());
  constexpr double hi = static_cast<double>(std::numeric_limits<Q>::max());
  if (std::isnan(v)) return Q(0);
  return static_cast<Q>(std::clamp(v, lo, hi));
}

// Calls f with the C++ type of a quantized element type.
template <typename F>
bool visitQuantType(DataType t, F&& f) {
  switch (t) {
    case DataType::kUInt8: f(TypeTag<uint8_t>{}); return true;
    case DataType::kInt8: f(TypeTag<int8_t>{}); return true;
    case DataType::kUInt16: f(TypeTag<uint16_t>{}); return true;
    case DataType::kInt16: f(TypeTag<int16_t>{}); return true;
    case DataType::kInt32: f(TypeTag<int32_t>{}); return true;
    default: return false;
  }
}

}  // namespace

Status refQuantizeLinear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  RJ_ASSIGN_OR_RETURN(QuantParamIndexer idx, makeIndexer(ctx, x, scale));
  Tensor& y = ctx.output(0);
  const Tensor* zp = ctx.hasInput(2) ? &ctx.input(2) : nullptr;
  for (int64_t i = 0; i < scale.numel(); ++i)
    if (!(scale.getDouble(i) != 0)) return ctx.error("scale[", i, "] is zero or NaN");
  bool ok = visitQuantType(y.dtype(), [&](auto qtag) {
    using Q = typename decltype(qtag)::type;
    Q* py = y.data<Q>();
    const Q* pz = zp ? zp->data<Q>() : nullptr;
    visitType(x.dtype(), [&](auto xtag) {
      using X = typename decltype(xtag)::type;
      if constexpr (!std::is_same_v<X, bool>) {
        const X* px = x.data<X>();
        for (int64_t i = 0; i < x.numel(); ++i) {
          int64_t k = idx(i);
          double q;
          if constexpr (std::is_integral_v<X>) q = std::nearbyint(static_cast<double>(px[i]) / scale.getDouble(k));
          else q = std::nearbyint(static_cast<float>(px[i]) / static_cast<float>(scale.getDouble(k)));
          py[i] = saturateRound<Q>(q + (pz ? static_cast<double>(pz[k]) : 0.0));
        }
      }
    });
  });
  if (!ok) return ctx.unsupported("quantized type ", dataTypeName(y.dtype()));
  return Status::Ok();
}

Status refDequantizeLinear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  RJ_ASSIGN_OR_RETURN(QuantParamIndexer idx, makeIndexer(ctx, x, scale));
  Tensor& y = ctx.output(0);
  const Tensor* zp = ctx.hasInput(2) ? &ctx.input(2) : nullptr;
  bool ok = visitQuantType(x.dtype(), [&](auto qtag) {
    using Q = typename decltype(qtag)::type;
    const Q* px = x.data<Q>();
    const Q* pz = zp ? zp->data<Q>() : nullptr;
    visitFloatType(y.dtype(), [&](auto ytag) {
      using Y = typename decltype(ytag)::type;
      Y* py = y.data<Y>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        int64_t k = idx(i);
        double v = (static_cast<double>(px[i]) - (pz ? static_cast<double>(pz[k]) : 0.0));
        py[i] = static_cast<Y>(static_cast<float>(v) * static_cast<float>(scale.getDouble(k)));
      }
    });
  });
  if (!ok) return ctx.unsupported("quantized type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

Status refDynamicQuantizeLinear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const float* px = x.data<float>();
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (std::isnan(px[i])) return ctx.error("x contains NaN");
    lo = std::min(lo, px[i]);
    hi = std::max(hi, px[i]);
  }
  if (std::isinf(lo) || std::isinf(hi)) return ctx.error("x contains an infinity");
  const float scale = (hi == lo ? 1.0f : hi - lo) / 255.0f;
  const float zp = std::nearbyint(std::clamp(0.0f - lo / scale, 0.0f, 255.0f));
  uint8_t* py = ctx.output(0).data<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i)
    py[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(px[i] / scale) + zp, 0.0f, 255.0f));
  *ctx.output(1).data<float>() = scale;
  *ctx.output(2).data<uint8_t>() = static_cast<uint8_t>(zp);
  return Status::Ok();
}

namespace {

// Per-tensor or 1-D per-channel parameter (scale or zero point) as double for channel c.
Result<double> paramAt(const KernelContext& ctx, size_t input, int64_t c, int64_t channels, const char* what) {
  if (!ctx.hasInput(input)) return 0.0;
  const Tensor& t = ctx.input(input);
  if (t.numel() == 1) return t.getDouble(0);
  if (t.rank() == 1 && t.numel() == channels) return t.getDouble(c);
  return ctx.error(what, " must be a scalar or have ", channels, " entries, got ", dimsToString(t.dims()));
}

Status checkScales(const KernelContext& ctx, std::initializer_list<size_t> inputs) {
  for (size_t i : inputs)
    for (int64_t k = 0; k < ctx.input(i).numel(); ++k)
      if (!(ctx.input(i).getDouble(k) > 0) || std::isinf(ctx.input(i).getDouble(k)))
        return ctx.error("scale input ", i, " must be positive and finite, got ", ctx.input(i).getDouble(k));
  return Status::Ok();
}

}  // namespace

Status refQLinearMatMul(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(checkScales(ctx, {1, 4, 6}));
  std::vector<int64_t> ad = ctx.input(0).dims(), bd = ctx.input(3).dims();
  if (ad.empty() || bd.empty()) return ctx.error("inputs must have rank >= 1");
  const bool a1 = ad.size() == 1, b1 = bd.size() == 1;
  if (a1) ad.insert(ad.begin(), 1);
  if (b1) bd.push_back(1);
  const int64_t M = ad[ad.size() - 2], K = ad.back(), N = bd.back();
  if (bd[bd.size() - 2] != K) return ctx.error("inner dimensions differ: ", dimsToString(ad), " x ", dimsToString(bd));
  std::vector<int64_t> abatch(ad.begin(), ad.end() - 2), bbatch(bd.begin(), bd.end() - 2);
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> batch, broadcastDims({abatch, bbatch}, ctx.node));
  const int64_t nb = numElements(batch);
  // Batch index -> offsets in a and b (broadcast).
  auto offset = [&](const std::vector<int64_t>& bdims, int64_t bi) {
    int64_t off = 0, stride = 1;
    for (int d = static_cast<int>(batch.size()) - 1, e = static_cast<int>(bdims.size()) - 1; d >= 0; --d, --e) {
      int64_t coord = bi % batch[d];
      bi /= batch[d];
      if (e >= 0) {
        if (bdims[e] != 1) off += coord * stride;
        stride *= bdims[e];
      }
    }
    return off;
  };
  std::vector<int32_t> acc(static_cast<size_t>(M * N));
  Tensor& y = ctx.output(0);
  Status st;
  auto get = [](const Tensor& t, int64_t i) -> int32_t { return static_cast<int32_t>(t.getInt(i)); };
  for (int64_t bi = 0; bi < nb && st.ok(); ++bi) {
    int64_t ao = offset(abatch, bi) * M * K, bo = offset(bbatch, bi) * K * N;
    for (int64_t m = 0; m < M && st.ok(); ++m) {
      auto azp = paramAt(ctx, 2, m, M, "a_zero_point");
      auto as = paramAt(ctx, 1, m, M, "a_scale");
      if (!azp.ok()) { st = azp.status(); break; }
      if (!as.ok()) { st = as.status(); break; }
      for (int64_t n = 0; n < N; ++n) {
        auto bzp = paramAt(ctx, 5, n, N, "b_zero_point");
        auto bs = paramAt(ctx, 4, n, N, "b_scale");
        auto yzp = paramAt(ctx, 7, n, N, "y_zero_point");
        auto ys = paramAt(ctx, 6, n, N, "y_scale");
        if (!bzp.ok() || !bs.ok() || !yzp.ok() || !ys.ok()) {
          st = !bzp.ok() ? bzp.status() : !bs.ok() ? bs.status() : !yzp.ok() ? yzp.status() : ys.status();
          break;
        }
        int64_t sum = 0;
        for (int64_t k = 0; k < K; ++k)
          sum += static_cast<int64_t>(get(ctx.input(0), ao + m * K + k) - static_cast<int32_t>(*azp)) *
                 (get(ctx.input(3), bo + k * N + n) - static_cast<int32_t>(*bzp));
        float mult = static_cast<float>(*as) * static_cast<float>(*bs) / static_cast<float>(*ys);
        double v = static_cast<double>(static_cast<int32_t>(sum)) * mult + *yzp;
        int64_t oi = (bi * M + m) * N + n;
        if (y.dtype() == DataType::kUInt8) y.data<uint8_t>()[oi] = saturateRound<uint8_t>(v);
        else y.data<int8_t>()[oi] = saturateRound<int8_t>(v);
      }
    }
  }
  return st;
}

Status refQLinearConv(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(checkScales(ctx, {1, 4, 6}));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  if (x.rank() < 3 || w.rank() != x.rank()) return ctx.error("x and w must have the same rank >= 3");
  const size_t ns = x.rank() - 2;
  std::vector<int64_t> in_sp(x.dims().begin() + 2, x.dims().end()), k_sp(w.dims().begin() + 2, w.dims().end());
  RJ_ASSIGN_OR_RETURN(misc::ConvGeometry g, misc::convGeometry(ctx.node, in_sp, k_sp));
  const int64_t N = x.dims()[0], C = x.dims()[1], M = w.dims()[0], G = g.group;
  if (C != w.dims()[1] * G || M % G != 0)
    return ctx.error("x has ", C, " channels, w ", dimsToString(w.dims()), " with group ", G, " does not fit");
  const int64_t cg = C / G, mg = M / G;
  if (ctx.hasInput(8) && ctx.input(8).numel() != M) return ctx.error("bias must have ", M, " entries");
  const double xzp = ctx.hasInput(2) ? ctx.input(2).getDouble(0) : 0.0;
  const double xs = ctx.input(1).getDouble(0), ys = ctx.input(6).getDouble(0);
  const double yzp = ctx.hasInput(7) ? ctx.input(7).getDouble(0) : 0.0;
  if (ctx.input(1).numel() != 1 || ctx.input(6).numel() != 1 || (ctx.hasInput(2) && ctx.input(2).numel() != 1) ||
      (ctx.hasInput(7) && ctx.input(7).numel() != 1))
    return ctx.error("x and y scales / zero points must be scalars");
  Tensor& y = ctx.output(0);
  const int64_t out_sp = numElements(g.out), k_count = numElements(g.kernel);
  std::vector<int64_t> in_strides = stridesOf(in_sp), out_strides = stridesOf(g.out), k_strides = stridesOf(g.kernel);
  const int64_t in_plane = numElements(in_sp);
  std::vector<int64_t> xi(static_cast<size_t>(x.numel())), wi(static_cast<size_t>(w.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) xi[i] = x.getInt(i);
  for (int64_t i = 0; i < w.numel(); ++i) wi[i] = w.getInt(i);
  std::vector<int64_t> opos(ns), kpos(ns);
  for (int64_t m = 0; m < M; ++m) {
    RJ_ASSIGN_OR_RETURN(double wzp, paramAt(ctx, 5, m, M, "w_zero_point"));
    RJ_ASSIGN_OR_RETURN(double ws, paramAt(ctx, 4, m, M, "w_scale"));
    const float mult = static_cast<float>(xs) * static_cast<float>(ws) / static_cast<float>(ys);
    const int64_t grp = m / mg;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t o = 0; o < out_sp; ++o) {
        for (size_t d = 0; d < ns; ++d) opos[d] = (o / out_strides[d]) % g.out[d];
        int64_t sum = ctx.hasInput(8) ? ctx.input(8).getInt(m) : 0;
        for (int64_t k = 0; k < k_count; ++k) {
          int64_t in_off = 0;
          bool inside = true;
          for (size_t d = 0; d < ns; ++d) {
            kpos[d] = (k / k_strides[d]) % g.kernel[d];
            int64_t p = opos[d] * g.strides[d] - g.pads[d] + kpos[d] * g.dilations[d];
            if (p < 0 || p >= in_sp[d]) { inside = false; break; }
            in_off += p * in_strides[d];
          }
          if (!inside) continue;  // padding contributes (x_zero_point - x_zero_point) = 0
          for (int64_t c = 0; c < cg; ++c) {
            int64_t xv = xi[((n * C) + grp * cg + c) * in_plane + in_off] - static_cast<int64_t>(xzp);
            int64_t wv = wi[(m * cg + c) * k_count + k] - static_cast<int64_t>(wzp);
            sum += xv * wv;
          }
        }
        double v = static_cast<double>(static_cast<int32_t>(sum)) * mult + yzp;
        int64_t oi = (n * M + m) * out_sp + o;
        if (y.dtype() == DataType::kUInt8) y.data<uint8_t>()[oi] = saturateRound<uint8_t>(v);
        else y.data<int8_t>()[oi] = saturateRound<int8_t>(v);
      }
    }
  }
  return Status::Ok();
}

}  // namespace ramjet::ops
