// Shape functions of ramjet's internal INT8 ops (ops_fused.def), made by the precision lowering
// (src/precision/lowering.cc). Layout: quantized activations of convolutions are NHWC int8;
// weights are per-output-channel symmetric int8, [K, kh, kw, C] for QConv and [N, K] for QGemm.
//   Int8Quantize(x float)   -> int8, attrs: scale (f), nhwc (i: NCHW rank-4 input -> NHWC)
//   Int8Dequantize(q int8)  -> float, attrs: scale, nhwc (NHWC input -> NCHW), to (DataType)
//   QConv(x, w, bias f32[K], mul f32[K], residual?) -> NHWC int8 (out_scale > 0) or float
//         (attr to; out_nchw=1 writes NCHW); attrs strides, pads [t,l,b,r], dilations,
//         activation, alpha, beta, act_after_residual, res_scale, out_scale
//   QGemm(x [..., K], w [N, K], bias, mul, residual?) -> [..., N], same epilogue attributes
// The arithmetic is in src/precision/int8_math.h.
#include <cmath>

#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

Status checkScale(InferContext& ctx, const char* attr) {
  float s = ctx.node().attrFloat(attr, 0.f);
  if (!(s > 0.f) || !std::isfinite(s)) return ctx.error("attribute ", attr, " must be a positive finite scale, got ", s);
  return Status::Ok();
}

DataType floatOut(InferContext& ctx) {
  return static_cast<DataType>(ctx.node().attrInt("to", static_cast<int64_t>(DataType::kFloat32)));
}

Status checkEpilogue(InferContext& ctx, int64_t channels) {
  const Node& n = ctx.node();
  if (ctx.dtype(0) != DataType::kInt8 || ctx.dtype(1) != DataType::kInt8)
    return ctx.error("x and w must be int8, got ", dataTypeName(ctx.dtype(0)), " and ", dataTypeName(ctx.dtype(1)));
  for (size_t i = 2; i < 4; ++i) {
    if (ctx.dtype(i) != DataType::kFloat32) return ctx.error("input ", i, " (bias/mul) must be float32");
    const Shape& s = ctx.shape(i);
    if (s.rank_known && (s.rank() != 1 || (s.dims[0].known() && channels >= 0 && s.dims[0].value != channels)))
      return ctx.error("input ", i, " (bias/mul) must be [", channels, "], got ", s.toString());
  }
  if (ctx.hasInput(4)) {
    if (ctx.dtype(4) != DataType::kInt8) return ctx.error("residual must be int8");
    RJ_RETURN_IF_ERROR(checkScale(ctx, "res_scale"));
  }
  const int64_t act = n.attrInt("activation", 0);
  if (act < 0 || act > 4) return ctx.error("unknown activation code ", act);
  if (n.attrFloat("out_scale", 0.f) != 0.f) RJ_RETURN_IF_ERROR(checkScale(ctx, "out_scale"));
  DataType to = floatOut(ctx);
  if (n.attrFloat("out_scale", 0.f) == 0.f && !isFloatType(to))
    return ctx.error("float output type 'to' must be a float type, got ", dataTypeName(to));
  return Status::Ok();
}

DataType epilogueOut(InferContext& ctx) {
  return ctx.node().attrFloat("out_scale", 0.f) > 0.f ? DataType::kInt8 : floatOut(ctx);
}

}  // namespace

Status inferInt8Quantize(InferContext& ctx) {
  if (!isFloatType(ctx.dtype(0))) return ctx.error("input must be float, got ", dataTypeName(ctx.dtype(0)));
  RJ_RETURN_IF_ERROR(checkScale(ctx, "scale"));
  Shape s = ctx.shape(0);
  if (ctx.node().attrInt("nhwc", 0)) {
    if (!s.rank_known || s.rank() != 4) return ctx.error("nhwc needs a rank-4 NCHW input, got ", s.toString());
    s = Shape(std::vector<Dim>{s.dims[0], s.dims[2], s.dims[3], s.dims[1]});
  }
  ctx.setOutput(0, DataType::kInt8, s);
  return Status::Ok();
}

Status inferInt8Dequantize(InferContext& ctx) {
  if (ctx.dtype(0) != DataType::kInt8) return ctx.error("input must be int8, got ", dataTypeName(ctx.dtype(0)));
  RJ_RETURN_IF_ERROR(checkScale(ctx, "scale"));
  DataType to = floatOut(ctx);
  if (!isFloatType(to)) return ctx.error("'to' must be a float type, got ", dataTypeName(to));
  Shape s = ctx.shape(0);
  if (ctx.node().attrInt("nhwc", 0)) {
    if (!s.rank_known || s.rank() != 4) return ctx.error("nhwc needs a rank-4 NHWC input, got ", s.toString());
    s = Shape(std::vector<Dim>{s.dims[0], s.dims[3], s.dims[1], s.dims[2]});
  }
  ctx.setOutput(0, to, s);
  return Status::Ok();
}

Status inferQConv(InferContext& ctx) {
  const Node& n = ctx.node();
  const Shape& x = ctx.shape(0);
  const Shape& w = ctx.shape(1);
  if (!w.fullyKnown() || w.rank() != 4) return ctx.error("w must be a known [K, kh, kw, C] tensor, got ", w.toString());
  auto wd = w.concrete();
  RJ_RETURN_IF_ERROR(checkEpilogue(ctx, wd[0]));
  if (!x.rank_known || x.rank() != 4) return ctx.error("x must be NHWC rank 4, got ", x.toString());
  if (x.dims[3].known() && x.dims[3].value != wd[3])
    return ctx.error("x has ", x.dims[3].value, " channels but w expects ", wd[3]);
  auto st = n.attrInts("strides"), pads = n.attrInts("pads"), dil = n.attrInts("dilations");
  if (st.empty()) st = {1, 1};
  if (pads.empty()) pads = {0, 0, 0, 0};
  if (dil.empty()) dil = {1, 1};
  if (st.size() != 2 || pads.size() != 4 || dil.size() != 2) return ctx.error("strides/pads/dilations must have 2/4/2 entries");
  Shape out(std::vector<Dim>{x.dims[0], Dim(), Dim(), Dim(wd[0])});
  for (int i = 0; i < 2; ++i) {
    if (st[i] < 1 || dil[i] < 1 || pads[i] < 0 || pads[i + 2] < 0) return ctx.error("bad strides/pads/dilations");
    const Dim& in = x.dims[1 + i];
    if (in.known()) {
      int64_t o = (in.value + pads[i] + pads[i + 2] - dil[i] * (wd[1 + i] - 1) - 1) / st[i] + 1;
      if (o < 1) return ctx.error("output spatial dim ", i, " would be ", o);
      out.dims[1 + i] = Dim(o);
    } else {
      out.dims[1 + i] = ctx.newSymbol("QConv_hw");
    }
  }
  if (ctx.hasInput(4) && ctx.shape(4).rank_known && ctx.shape(4).rank() != 4)
    return ctx.error("residual must be NHWC like the output");
  DataType dt = epilogueOut(ctx);
  if (dt != DataType::kInt8 && n.attrInt("out_nchw", 0)) out = Shape(std::vector<Dim>{out.dims[0], out.dims[3], out.dims[1], out.dims[2]});
  ctx.setOutput(0, dt, out);
  return Status::Ok();
}

Status inferQGemm(InferContext& ctx) {
  const Shape& x = ctx.shape(0);
  const Shape& w = ctx.shape(1);
  if (!w.fullyKnown() || w.rank() != 2) return ctx.error("w must be a known [N, K] tensor, got ", w.toString());
  auto wd = w.concrete();
  RJ_RETURN_IF_ERROR(checkEpilogue(ctx, wd[0]));
  if (!x.rank_known || x.rank() < 2) return ctx.error("x must have rank >= 2, got ", x.toString());
  if (x.dims.back().known() && x.dims.back().value != wd[1])
    return ctx.error("x has K = ", x.dims.back().value, " but w expects ", wd[1]);
  Shape out = x;
  out.dims.back() = Dim(wd[0]);
  ctx.setOutput(0, epilogueOut(ctx), out);
  return Status::Ok();
}

}  // namespace ramjet::ops
