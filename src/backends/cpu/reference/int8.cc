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

Status refInt8Quantize(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const float scale = ctx.node.attrFloat("scale", 0.f);
  const bool nhwc = ctx.node.attrInt("nhwc", 0) != 0;
  if (nhwc && x.rank() != 4) return ctx.error("nhwc needs rank 4");
  std::vector<int64_t> od = x.dims();
  if (nhwc) od = {x.dim(0), x.dim(2), x.dim(3), x.dim(1)};
  Tensor& y = outputFor(ctx, DataType::kInt8, od);
  int8_t* py = y.data<int8_t>();
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

Status refQConv(KernelContext& ctx) {
  const Node& node = ctx.node;
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() != 4 || w.rank() != 4 || x.dim(3) != w.dim(3)) return ctx.error("x/w shapes");
  const int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const int64_t K = w.dim(0), R = w.dim(1), S = w.dim(2);
  auto st = node.attrInts("strides"), pads = node.attrInts("pads"), dil = node.attrInts("dilations");
  if (st.empty()) st = {1, 1};
  if (pads.empty()) pads = {0, 0, 0, 0};
  if (dil.empty()) dil = {1, 1};
  const int64_t OH = (H + pads[0] + pads[2] - dil[0] * (R - 1) - 1) / st[0] + 1;
  const int64_t OW = (W + pads[1] + pads[3] - dil[1] * (S - 1) - 1) / st[1] + 1;
  EpilogueWriter wr;
  wr.p = epilogueParams(node);
  const bool int8_out = wr.p.out_scale > 0.f;
  wr.nchw = !int8_out && node.attrInt("out_nchw", 0) != 0;
  const DataType to = int8_out ? DataType::kInt8
                               : static_cast<DataType>(node.attrInt("to", static_cast<int64_t>(DataType::kFloat32)));
  std::vector<int64_t> od = wr.nchw ? std::vector<int64_t>{N, K, OH, OW} : std::vector<int64_t>{N, OH, OW, K};
  wr.y = &outputFor(ctx, to, od);
  wr.bias = ctx.input(2).data<float>();
  wr.mul = ctx.input(3).data<float>();
  if (ctx.hasInput(4)) {
    if (ctx.input(4).numel() != N * OH * OW * K) return ctx.error("residual has the wrong size");
    wr.res = ctx.input(4).data<int8_t>();
  } else {
    wr.res = nullptr;
  }
  wr.hw = OH * OW;
  wr.K = K;
  const int8_t* px = x.data<int8_t>();
  const int8_t* pw = w.data<int8_t>();
  const int64_t patch = R * S * C;
  reference::parallelRange(N * OH * OW, 16, [&](int64_t b, int64_t e) {
    std::vector<int16_t> col(static_cast<size_t>(patch));
    std::vector<int16_t> wrow(static_cast<size_t>(patch));
    for (int64_t m = b; m < e; ++m) {
      const int64_t n = m / (OH * OW), oh = (m / OW) % OH, ow = m % OW;
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) {
          const int64_t ih = oh * st[0] - pads[0] + r * dil[0], iw = ow * st[1] - pads[1] + s * dil[1];
          int16_t* dst = col.data() + (r * S + s) * C;
          if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
            std::fill(dst, dst + C, int16_t{0});
          } else {
            const int8_t* src = px + ((n * H + ih) * W + iw) * C;
            for (int64_t c = 0; c < C; ++c) dst[c] = src[c];
          }
        }
      for (int64_t k = 0; k < K; ++k) {
        const int8_t* wk = pw + k * patch;
        int32_t acc = 0;
        for (int64_t i = 0; i < patch; ++i) acc += static_cast<int32_t>(col[i]) * wk[i];
        wr(m, k, acc);
      }
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
