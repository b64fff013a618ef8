// Shape functions of the ramjet-internal fused ops (ops_fused.def).
#include "ops/op_registry.h"

namespace ramjet::ops {

Status inferSilu(InferContext& ctx) {
  if (!isFloatType(ctx.dtype(0)))
    return ctx.error("input X must be a float tensor, got ", dataTypeName(ctx.dtype(0)));
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0));
  return Status::Ok();
}

// Attention(Q[..., Sq, D], K[..., Sk, D], V[..., Sk, Dv], mask?) -> [..., Sq, Dv];
// mask (additive float, or bool where false excludes a key) broadcasts to [..., Sq, Sk].
Status inferAttention(InferContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!isFloatType(dt)) return ctx.error("Q must be a float tensor, got ", dataTypeName(dt));
  for (size_t i = 1; i < 3; ++i)
    if (ctx.dtype(i) != dt)
      return ctx.error(i == 1 ? "K" : "V", " is ", dataTypeName(ctx.dtype(i)), " but Q is ",
                       dataTypeName(dt));
  if (ctx.node().attrInt("is_causal", 0) != 0 || ctx.node().attrFloat("softcap", 0.f) != 0.f)
    return ctx.error("is_causal and softcap are not supported by ramjet's Attention");
  const Shape& q = ctx.shape(0);
  const Shape& k = ctx.shape(1);
  const Shape& v = ctx.shape(2);
  if (!q.rank_known || !k.rank_known || !v.rank_known) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return Status::Ok();
  }
  const size_t r = q.rank();
  if (r < 2 || k.rank() != r || v.rank() != r)
    return ctx.error("Q, K and V must have the same rank >= 2, got ", q.toString(), ", ",
                     k.toString(), ", ", v.toString());
  auto conflict = [](const Dim& a, const Dim& b) {
    return a.known() && b.known() && a.value != b.value;
  };
  for (size_t i = 0; i + 2 < r; ++i)
    if (conflict(q.dims[i], k.dims[i]) || conflict(q.dims[i], v.dims[i]))
      return ctx.error("batch dims of Q ", q.toString(), ", K ", k.toString(), ", V ", v.toString(),
                       " differ");
  if (conflict(q.dims[r - 1], k.dims[r - 1]))
    return ctx.error("Q ", q.toString(), " and K ", k.toString(), " differ in the head size");
  if (conflict(k.dims[r - 2], v.dims[r - 2]))
    return ctx.error("K ", k.toString(), " and V ", v.toString(), " differ in the key count");
  Shape out = q;
  out.dims[r - 1] = v.dims[r - 1];
  if (ctx.hasInput(3)) {
    const DataType mt = ctx.dtype(3);
    if (mt != dt && mt != DataType::kBool)
      return ctx.error("mask must be bool or ", dataTypeName(dt), ", got ", dataTypeName(mt));
    Shape scores = q;
    scores.dims[r - 1] = k.dims[r - 2];
    RJ_ASSIGN_OR_RETURN(Shape b, broadcastShapes({scores, ctx.shape(3)}, ctx.node()));
    if (b.rank() != r)
      return ctx.error("mask ", ctx.shape(3).toString(), " does not broadcast to ",
                       scores.toString());
  }
  ctx.setOutput(0, dt, std::move(out));
  return Status::Ok();
}


// SoftmaxWeightedSum(X, W){axis}: X float of rank >= 1, W a 1-D float vector of X.dims[axis]
// weights; Y has X's type and shape with dims[axis] = 1.
Status inferSoftmaxWeightedSum(InferContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!isFloatType(dt)) return ctx.error("X must be a float tensor, got ", dataTypeName(dt));
  if (!isFloatType(ctx.dtype(1))) return ctx.error("W must be a float tensor, got ", dataTypeName(ctx.dtype(1)));
  const Shape& x = ctx.shape(0);
  const Shape& w = ctx.shape(1);
  if (w.rank_known && w.rank() != 1) return ctx.error("W must be 1-D, got ", w.toString());
  if (!x.rank_known) {
    ctx.setOutput(0, dt, Shape::unknownRank());
    return Status::Ok();
  }
  int64_t axis = ctx.node().attrInt("axis", 1);
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, static_cast<int64_t>(x.rank()), ctx.node()));
  const Dim& k = x.dims[static_cast<size_t>(axis)];
  if (w.rank_known && k.known() && w.dims[0].known() && w.dims[0].value != k.value)
    return ctx.error("W has ", w.dims[0].value, " weights for an axis of ", k.value);
  Shape out = x;
  out.dims[static_cast<size_t>(axis)] = Dim(1);
  ctx.setOutput(0, dt, std::move(out));
  return Status::Ok();
}

}  // namespace ramjet::ops
