// Reference kernels of ramjet's internal INT8 ops (src/ops/int8.cc): exact int32 accumulation
// of int8 products, then the shared epilogue of src/precision/int8_math.h, so the CUDA kernels
// can be compared bit for bit (SiLU: within 1 LSB).
#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/reference/gemm.h"
#include "core/dispatch.h"
#include "ops/op_registry.h"
#include "precision/int8_math.h"

namespace ramjet::ops {
namespace {

using int8::EpilogueParams;

EpilogueParams epilogueParams(const Node& n) {
  EpilogueParams p;
  p.act = static_cast<int32_t>(n.attrInt("activation", 0));
  p.alpha = n.attrFloat("alpha", 0.f);
  p.beta = n.attrFloat("beta", 0.f);
  p.act_after_residual = n.attrInt("act_after_residual", 1) != 0;
  p.res_scale = n.attrFloat("res_scale", 0.f);
  p.out_scale = n.attrFloat("out_scale", 0.f);
  return p;
}

Tensor& outputFor(KernelContext& ctx, DataType dt, const std::vector<int64_t>& dims) {
  if (!ctx.output(0).defined() || ctx.output(0).dims() != dims || ctx.output(0).dtype() != dt)
    ctx.allocOutput(0, dt, dims);
  return ctx.output(0);
}

// Writes element (row m, channel k) of an [M, K] result; `nchw` maps rows back to (n, h*w).
struct EpilogueWriter {
  Tensor* y;
  EpilogueParams p;
  const float* bias;
  const float* mul;
  const int8_t* res;  // [M, K] or null
  bool nchw = false;
  int64_t hw = 1, K = 0;
  void operator()(int64_t m, int64_t k, int32_t acc) const {
    const int64_t i = m * K + k;
    float v = int8::epilogue(acc, mul[k], bias[k], res != nullptr, res ? res[i] : int8_t{0}, p);
    if (p.out_scale > 0.f) {
      y->data<int8_t>()[i] = int8::quantizeInt8(v, p.out_scale);
      return;
    }
    int64_t o = i;
    if (nchw) o = ((m / hw) * K + k) * hw + (m % hw);
    visitFloatType(y->dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      y->data<T>()[o] = static_cast<T>(v);
    });
  }
};

}  // namespace

namespace {
// Int8Quantize's attributes and its int8 output (NHWC when `nhwc`).
Result<int8_t*> int8QuantizeOutput(KernelContext& ctx, float* scale, bool* nhwc) {
  const Tensor& x = ctx.input(0);
  *scale = ctx.node.attrFloat("scale", 0.f);
  *nhwc = ctx.node.attrInt("nhwc", 0) != 0;
  if (*nhwc && x.rank() != 4) return ctx.error("nhwc needs rank 4");
  std::vector<int64_t> od = x.dims();
  if (*nhwc) od = {x.dim(0), x.dim(2), x.dim(3), x.dim(1)};
  return outputFor(ctx, DataType::kInt8, od).data<int8_t>();
}
}  // namespace

Status refInt8Quantize(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  float scale;
  bool nhwc;
  RJ_ASSIGN_OR_RETURN(int8_t * py, int8QuantizeOutput(ctx, &scale, &nhwc));
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    if (!nhwc) {
      for (int64_t i = 0; i < x.numel(); ++i) py[i] = int8::quantizeInt8(static_cast<float>(px[i]), scale);
      return;
    }
    const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t s = 0; s < HW; ++s)
          py[(n * HW + s) * C + c] = int8::quantizeInt8(static_cast<float>(px[(n * C + c) * HW + s]), scale);
  });
  if (!ok) return ctx.unsupported("input type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

// The same values as refInt8Quantize (the same quantizeInt8 per element), in parallel and, for
// the NCHW -> NHWC case, in 32-pixel tiles so reads and writes both stay contiguous.
Status fastInt8Quantize(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DataType::kFloat32) return refInt8Quantize(ctx);
  float scale;
  bool nhwc;
  RJ_ASSIGN_OR_RETURN(int8_t * py, int8QuantizeOutput(ctx, &scale, &nhwc));
  const float* px = x.data<float>();
  if (!nhwc) {
    reference::parallelRange(x.numel(), 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) py[i] = int8::quantizeInt8(px[i], scale);
    });
    return Status::Ok();
  }
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  constexpr int64_t kTile = 32;
  const int64_t tiles = (HW + kTile - 1) / kTile;
  reference::parallelRange(N * tiles, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / tiles, s0 = (t % tiles) * kTile, s1 = std::min(HW, s0 + kTile);
      for (int64_t c = 0; c < C; ++c) {
        const float* src = px + (n * C + c) * HW;
        for (int64_t s = s0; s < s1; ++s) py[(n * HW + s) * C + c] = int8::quantizeInt8(src[s], scale);
      }
    }
  });
  return Status::Ok();
}

Status refInt8Dequantize(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const float scale = ctx.node.attrFloat("scale", 0.f);
  const bool nhwc = ctx.node.attrInt("nhwc", 0) != 0;
  const DataType to = static_cast<DataType>(ctx.node.attrInt("to", static_cast<int64_t>(DataType::kFloat32)));
  if (nhwc && x.rank() != 4) return ctx.error("nhwc needs rank 4");
  std::vector<int64_t> od = x.dims();
  if (nhwc) od = {x.dim(0), x.dim(3), x.dim(1), x.dim(2)};
  Tensor& y = outputFor(ctx, to, od);
  const int8_t* px = x.data<int8_t>();
  bool ok = visitFloatType(to, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* py = y.data<T>();
    if (!nhwc) {
      for (int64_t i = 0; i < x.numel(); ++i) py[i] = static_cast<T>(int8::dequantizeInt8(px[i], scale));
      return;
    }
    const int64_t N = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < HW; ++s)
        for (int64_t c = 0; c < C; ++c)
          py[(n * C + c) * HW + s] = static_cast<T>(int8::dequantizeInt8(px[(n * HW + s) * C + c], scale));
  });
  if (!ok) return ctx.unsupported("output type ", dataTypeName(to));
  return Status::Ok();
}

namespace {

// QConv's geometry and epilogue, shared by the reference and the fast kernel.
struct QConvSetup {
  int64_t N, H, W, C, K, R, S, OH, OW, patch;
  std::vector<int64_t> st, pads, dil;
  EpilogueWriter wr;
};

Result<QConvSetup> qconvSetup(KernelContext& ctx) {
  const Node& node = ctx.node;
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() != 4 || w.rank() != 4 || x.dim(3) != w.dim(3)) return ctx.error("x/w shapes");
  QConvSetup q;
  q.N = x.dim(0), q.H = x.dim(1), q.W = x.dim(2), q.C = x.dim(3);
  q.K = w.dim(0), q.R = w.dim(1), q.S = w.dim(2);
  q.st = node.attrInts("strides"), q.pads = node.attrInts("pads"), q.dil = node.attrInts("dilations");
  if (q.st.empty()) q.st = {1, 1};
  if (q.pads.empty()) q.pads = {0, 0, 0, 0};
  if (q.dil.empty()) q.dil = {1, 1};
  q.OH = (q.H + q.pads[0] + q.pads[2] - q.dil[0] * (q.R - 1) - 1) / q.st[0] + 1;
  q.OW = (q.W + q.pads[1] + q.pads[3] - q.dil[1] * (q.S - 1) - 1) / q.st[1] + 1;
  q.patch = q.R * q.S * q.C;
  EpilogueWriter& wr = q.wr;
  wr.p = epilogueParams(node);
  const bool int8_out = wr.p.out_scale > 0.f;
  wr.nchw = !int8_out && node.attrInt("out_nchw", 0) != 0;
  const DataType to = int8_out ? DataType::kInt8
                               : static_cast<DataType>(node.attrInt("to", static_cast<int64_t>(DataType::kFloat32)));
  std::vector<int64_t> od = wr.nchw ? std::vector<int64_t>{q.N, q.K, q.OH, q.OW} : std::vector<int64_t>{q.N, q.OH, q.OW, q.K};
  wr.y = &outputFor(ctx, to, od);
  wr.bias = ctx.input(2).data<float>();
  wr.mul = ctx.input(3).data<float>();
  if (ctx.hasInput(4)) {
    if (ctx.input(4).numel() != q.N * q.OH * q.OW * q.K) return ctx.error("residual has the wrong size");
    wr.res = ctx.input(4).data<int8_t>();
  } else {
    wr.res = nullptr;
  }
  wr.hw = q.OH * q.OW;
  wr.K = q.K;
  return q;
}

// The NHWC patch of output pixel m: (r, s, c) order, zeros outside the image.
template <typename T>
void qconvPatch(const QConvSetup& q, const int8_t* px, int64_t m, T* dst0) {
  const int64_t n = m / (q.OH * q.OW), oh = (m / q.OW) % q.OH, ow = m % q.OW;
  for (int64_t r = 0; r < q.R; ++r)
    for (int64_t s = 0; s < q.S; ++s) {
      const int64_t ih = oh * q.st[0] - q.pads[0] + r * q.dil[0], iw = ow * q.st[1] - q.pads[1] + s * q.dil[1];
      T* dst = dst0 + (r * q.S + s) * q.C;
      if (ih < 0 || ih >= q.H || iw < 0 || iw >= q.W) {
        std::fill(dst, dst + q.C, T{0});
      } else {
        const int8_t* src = px + ((n * q.H + ih) * q.W + iw) * q.C;
        for (int64_t c = 0; c < q.C; ++c) dst[c] = static_cast<T>(src[c]);
      }
    }
}

}  // namespace

Status refQConv(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(QConvSetup q, qconvSetup(ctx));
  const int8_t* px = ctx.input(0).data<int8_t>();
  const int8_t* pw = ctx.input(1).data<int8_t>();
  reference::parallelRange(q.N * q.OH * q.OW, 16, [&](int64_t b, int64_t e) {
    std::vector<int16_t> col(static_cast<size_t>(q.patch));
    for (int64_t m = b; m < e; ++m) {
      qconvPatch(q, px, m, col.data());
      for (int64_t k = 0; k < q.K; ++k) {
        const int8_t* wk = pw + k * q.patch;
        int32_t acc = 0;
        for (int64_t i = 0; i < q.patch; ++i) acc += static_cast<int32_t>(col[i]) * wk[i];
        q.wr(m, k, acc);
      }
    }
  });
  return Status::Ok();
}

// The CPU backend's fast QConv: the same int32 accumulators as refQConv, so bit-identical
// outputs, computed as im2col + the packed float GEMM over chunks of at most 1000 products
// (|int8 x int8| <= 16384, so every partial sum of a chunk is an integer below 2^24 and float
// adds it exactly), each chunk's result added into int32.
Status fastQConv(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(QConvSetup q, qconvSetup(ctx));
  const int8_t* px = ctx.input(0).data<int8_t>();
  const int8_t* pw = ctx.input(1).data<int8_t>();
  const int64_t P = q.N * q.OH * q.OW;
  constexpr int64_t kChunk = 1000;
  // The weights as float on every run: a KernelContext kernel has no prepare step; this costs
  // K x patch conversions, about 1% of the layer's multiply-adds at P >= 100 pixels.
  std::vector<float> wf(static_cast<size_t>(q.K * q.patch));
  for (size_t i = 0; i < wf.size(); ++i) wf[i] = static_cast<float>(pw[i]);
  std::vector<float> col(static_cast<size_t>(P * q.patch));
  reference::parallelRange(P, 64, [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) qconvPatch(q, px, m, col.data() + m * q.patch);
  });
  // out[P, K] = col[P, chunk] * wf[K, chunk]^T per chunk of the patch; a single chunk is the
  // accumulator itself, several are summed in int32.
  std::vector<float> out(static_cast<size_t>(P * q.K));
  std::vector<int32_t> acc(q.patch > kChunk ? out.size() : 0, 0);
  for (int64_t k0 = 0; k0 < q.patch; k0 += kChunk) {
    const int64_t kc = std::min(kChunk, q.patch - k0);
    reference::gemm(false, true, P, q.K, kc, 1.f, col.data() + k0, q.patch, wf.data() + k0, q.patch, 0.f, out.data(),
                    q.K);
    if (!acc.empty())
      reference::parallelRange(P * q.K, 65536, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) acc[i] += static_cast<int32_t>(out[i]);
      });
  }
  reference::parallelRange(P, 64, [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m)
      for (int64_t k = 0; k < q.K; ++k) {
        const int64_t i = m * q.K + k;
        q.wr(m, k, acc.empty() ? static_cast<int32_t>(out[i]) : acc[i]);
      }
  });
  return Status::Ok();
}

Status refQGemm(KernelContext& ctx) {
  const Node& node = ctx.node;
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() < 2 || w.rank() != 2 || x.dim(-1) != w.dim(1)) return ctx.error("x/w shapes");
  const int64_t K = w.dim(1), N = w.dim(0), M = x.numel() / K;
  EpilogueWriter wr;
  wr.p = epilogueParams(node);
  const bool int8_out = wr.p.out_scale > 0.f;
  const DataType to = int8_out ? DataType::kInt8
                               : static_cast<DataType>(node.attrInt("to", static_cast<int64_t>(DataType::kFloat32)));
  std::vector<int64_t> od = x.dims();
  od.back() = N;
  wr.y = &outputFor(ctx, to, od);
  wr.bias = ctx.input(2).data<float>();
  wr.mul = ctx.input(3).data<float>();
  if (ctx.hasInput(4)) {
    if (ctx.input(4).numel() != M * N) return ctx.error("residual has the wrong size");
    wr.res = ctx.input(4).data<int8_t>();
  } else {
    wr.res = nullptr;
  }
  wr.K = N;
  const int8_t* px = x.data<int8_t>();
  const int8_t* pw = w.data<int8_t>();
  reference::parallelRange(M, 4, [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int32_t acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += static_cast<int32_t>(px[m * K + k]) * pw[n * K + k];
        wr(m, n, acc);
      }
  });
  return Status::Ok();
}

}  // namespace ramjet::ops
