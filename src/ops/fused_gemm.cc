// Shape functions of the transformer-oriented fused ops (ops_fused.def): FusedGemm and
// MultiHeadAttention. Their reference kernels live in src/backends/cpu/reference/fused_gemm.cc.
#include <cmath>

#include "ops/op_registry.h"

namespace ramjet::ops {

namespace {
bool conflict(const Dim& a, const Dim& b) { return a.known() && b.known() && a.value != b.value; }
}  // namespace

// FusedGemm(A[..., M, K], B[K, N] (or [N, K] with trans_b=1), bias[N]?, residual[..., M, N]?)
//   Y = act(alpha * A·op(B) + bias + residual),  act in {none, relu, gelu, gelu_tanh}.
Status inferFusedGemm(InferContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!isFloatType(dt)) return ctx.error("A must be a float tensor, got ", dataTypeName(dt));
  if (ctx.dtype(1) != dt) return ctx.error("B is ", dataTypeName(ctx.dtype(1)), " but A is ", dataTypeName(dt));
  const std::string act = ctx.node().attrString("activation", "none");
  if (act != "none" && act != "relu" && act != "gelu" && act != "gelu_tanh")
    return ctx.error("activation '", act, "' is not one of none, relu, gelu, gelu_tanh");
  const Shape& a = ctx.shape(0);
  const Shape& b = ctx.shape(1);
  if (!a.rank_known || !b.rank_known) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return Status::Ok();
  }
  if (a.rank() < 2) return ctx.error("A must have rank >= 2, got ", a.toString());
  if (b.rank() != 2) return ctx.error("B must be 2-D, got ", b.toString());
  const bool tb = ctx.node().attrInt("trans_b", 0) != 0;
  const Dim k = tb ? b.dims[1] : b.dims[0];
  const Dim n = tb ? b.dims[0] : b.dims[1];
  if (conflict(a.dims.back(), k))
    return ctx.error("A ", a.toString(), " and B ", b.toString(), (tb ? " (transposed)" : ""), " differ in K");
  Shape out = a;
  out.dims.back() = n;
  if (ctx.hasInput(2)) {
    if (ctx.dtype(2) != dt) return ctx.error("bias is ", dataTypeName(ctx.dtype(2)), " but A is ", dataTypeName(dt));
    const Shape& s = ctx.shape(2);
    if (s.rank_known && (s.rank() != 1 || conflict(s.dims[0], n)))
      return ctx.error("bias must be 1-D [N=", n.toString(), "], got ", s.toString());
  }
  if (ctx.hasInput(3)) {
    if (ctx.dtype(3) != dt)
      return ctx.error("residual is ", dataTypeName(ctx.dtype(3)), " but A is ", dataTypeName(dt));
    const Shape& s = ctx.shape(3);
    if (s.rank_known) {
      bool ok = s.rank() == out.rank();
      for (size_t i = 0; ok && i < s.rank(); ++i) ok = !conflict(s.dims[i], out.dims[i]);
      if (!ok) return ctx.error("residual ", s.toString(), " must have the output's shape ", out.toString());
    }
  }
  ctx.setOutput(0, dt, std::move(out));
  return Status::Ok();
}

// Fp8Gemm(A[..., M, K] float, W[N, K] uint8 = E4M3 codes, bias[N]?, residual[..., M, N]?)
//   {x_scale, w_scale, alpha, activation, out_scale?, to?}: A is quantized per tensor,
//   q = e4m3(A / x_scale) (saturating), and Y = act(alpha * x_scale * w_scale * (q . e4m3(W)ᵀ) +
//   bias + residual), with FP32 accumulation; Y has A's type. A may instead be uint8 E4M3 codes
//   already (q itself; the float type is then attribute `to`), and with out_scale > 0 Y is
//   written as E4M3 codes of Y / out_scale (uint8): chained FP8 GEMMs pass codes, not floats.
//   The --fp8 lowering's form of FusedGemm/Gemm/MatMul.
Status inferFp8Gemm(InferContext& ctx) {
  const Node& n = ctx.node();
  const DataType a_dt = ctx.dtype(0);
  const DataType dt = a_dt == DataType::kUInt8 ? static_cast<DataType>(n.attrInt("to", 0)) : a_dt;
  if (a_dt == DataType::kUInt8 && !isFloatType(dt))
    return ctx.error("A holds E4M3 codes (uint8): attribute 'to' must name the float type, got ", n.attrInt("to", 0));
  if (!isFloatType(dt)) return ctx.error("A must be a float tensor or uint8 E4M3 codes, got ", dataTypeName(a_dt));
  const float os = n.attrFloat("out_scale", 0.f);
  if (os != 0.f && (!(os > 0.f) || !std::isfinite(os)))
    return ctx.error("attribute out_scale must be a positive finite scale (or absent), got ", os);
  if (ctx.dtype(1) != DataType::kUInt8) return ctx.error("W must hold uint8 E4M3 codes, got ", dataTypeName(ctx.dtype(1)));
  for (const char* s : {"x_scale", "w_scale"}) {
    const float v = n.attrFloat(s, 0.f);
    if (!(v > 0.f) || !std::isfinite(v)) return ctx.error("attribute ", s, " must be a positive finite scale, got ", v);
  }
  const std::string act = n.attrString("activation", "none");
  if (act != "none" && act != "relu" && act != "gelu" && act != "gelu_tanh")
    return ctx.error("activation '", act, "' is not one of none, relu, gelu, gelu_tanh");
  const Shape& a = ctx.shape(0);
  const Shape& w = ctx.shape(1);
  if (w.rank_known && w.rank() != 2) return ctx.error("W must be 2-D [N, K], got ", w.toString());
  if (!a.rank_known || !w.rank_known) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return Status::Ok();
  }
  if (a.rank() < 2) return ctx.error("A must have rank >= 2, got ", a.toString());
  if (conflict(a.dims.back(), w.dims[1])) return ctx.error("A ", a.toString(), " and W ", w.toString(), " differ in K");
  Shape out = a;
  out.dims.back() = w.dims[0];
  if (ctx.hasInput(2)) {
    if (ctx.dtype(2) != dt) return ctx.error("bias is ", dataTypeName(ctx.dtype(2)), " but A is ", dataTypeName(dt));
    const Shape& s = ctx.shape(2);
    if (s.rank_known && (s.rank() != 1 || conflict(s.dims[0], w.dims[0])))
      return ctx.error("bias must be 1-D [N=", w.dims[0].toString(), "], got ", s.toString());
  }
  if (ctx.hasInput(3)) {
    if (ctx.dtype(3) != dt) return ctx.error("residual is ", dataTypeName(ctx.dtype(3)), " but A is ", dataTypeName(dt));
    const Shape& s = ctx.shape(3);
    if (s.rank_known) {
      bool ok = s.rank() == out.rank();
      for (size_t i = 0; ok && i < s.rank(); ++i) ok = !conflict(s.dims[i], out.dims[i]);
      if (!ok) return ctx.error("residual ", s.toString(), " must have the output's shape ", out.toString());
    }
  }
  ctx.setOutput(0, os > 0.f ? DataType::kUInt8 : dt, std::move(out));
  return Status::Ok();
}

// MultiHeadAttention(Q, K, V): heads packed in the last dim of [S, B, W] (layout "sbh") or
// [B, S, W] (layout "bsh") tensors. Head h of Q is columns q_offset + h*head_size ...
// + head_size; likewise K (k_offset) and V (v_offset, v_head_size). Q, K, V may be one tensor
// (a packed QKV projection). Output: [Sq, B, H*Dv] ("sbh") or [B, Sq, H*Dv] ("bsh"), heads
// packed the same way: out[.., h*Dv + c] = softmax(Q_h·K_hᵀ·scale)·V_h.
Status inferMultiHeadAttention(InferContext& ctx) {
  const Node& n = ctx.node();
  const DataType dt = ctx.dtype(0);
  if (!isFloatType(dt)) return ctx.error("Q must be a float tensor, got ", dataTypeName(dt));
  for (size_t i = 1; i < 3; ++i)
    if (ctx.dtype(i) != dt)
      return ctx.error(i == 1 ? "K" : "V", " is ", dataTypeName(ctx.dtype(i)), " but Q is ", dataTypeName(dt));
  if (ctx.hasInput(3)) return ctx.error("a mask is not supported by MultiHeadAttention");
  const std::string layout = n.attrString("layout", "sbh");
  if (layout != "sbh" && layout != "bsh") return ctx.error("layout '", layout, "' is not sbh or bsh");
  const int64_t heads = n.attrInt("num_heads", 0), d = n.attrInt("head_size", 0);
  const int64_t dv = n.attrInt("v_head_size", d);
  if (heads <= 0 || d <= 0 || dv <= 0)
    return ctx.error("num_heads (", heads, "), head_size (", d, ") and v_head_size (", dv, ") must be positive");
  const int64_t offs[3] = {n.attrInt("q_offset", 0), n.attrInt("k_offset", 0), n.attrInt("v_offset", 0)};
  const int64_t widths[3] = {heads * d, heads * d, heads * dv};
  const int sdim = layout == "sbh" ? 0 : 1, bdim = 1 - sdim;
  for (size_t i = 0; i < 3; ++i) {
    const Shape& s = ctx.shape(i);
    if (!s.rank_known) continue;
    if (s.rank() != 3) return ctx.error("input ", i, " must be 3-D [", layout, "], got ", s.toString());
    if (offs[i] < 0 || (s.dims[2].known() && offs[i] + widths[i] > s.dims[2].value))
      return ctx.error("input ", i, " ", s.toString(), ": columns ", offs[i], "..", offs[i] + widths[i],
                       " do not fit its last dim");
  }
  const Shape& q = ctx.shape(0);
  const Shape& k = ctx.shape(1);
  const Shape& v = ctx.shape(2);
  if (!q.rank_known) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return Status::Ok();
  }
  if (k.rank_known && v.rank_known) {
    if (conflict(q.dims[bdim], k.dims[bdim]) || conflict(q.dims[bdim], v.dims[bdim]))
      return ctx.error("batch dims of Q ", q.toString(), ", K ", k.toString(), ", V ", v.toString(), " differ");
    if (conflict(k.dims[sdim], v.dims[sdim]))
      return ctx.error("K ", k.toString(), " and V ", v.toString(), " differ in the key count");
  }
  Shape out = q;
  out.dims[2] = Dim(heads * dv);
  ctx.setOutput(0, dt, std::move(out));
  return Status::Ok();
}

// AddLayerNorm(X, R, scale, bias?){axis, epsilon} -> (Y = LayerNorm(X + R), S = X + R): the
// residual Add of a pre-norm transformer block fused into the LayerNormalization after it; S
// feeds the next residual. X and R have the same shape.
Status inferAddLayerNorm(InferContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!isFloatType(dt)) return ctx.error("X must be a float tensor, got ", dataTypeName(dt));
  for (size_t i = 1; i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i) && ctx.dtype(i) != dt)
      return ctx.error("input ", i, " is ", dataTypeName(ctx.dtype(i)), " but X is ", dataTypeName(dt));
  const Shape& x = ctx.shape(0);
  const Shape& r = ctx.shape(1);
  if (x.rank_known && r.rank_known) {
    bool ok = x.rank() == r.rank();
    for (size_t i = 0; ok && i < x.rank(); ++i) ok = !conflict(x.dims[i], r.dims[i]);
    if (!ok) return ctx.error("X ", x.toString(), " and R ", r.toString(), " must have the same shape");
  }
  ctx.setOutput(0, dt, x);
  if (ctx.numOutputs() > 1) ctx.setOutput(1, dt, x);
  return Status::Ok();
}

}  // namespace ramjet::ops
