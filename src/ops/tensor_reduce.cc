// Shape/type inference for reductions (Reduce*), ArgMax/ArgMin and TopK.
#include <algorithm>

#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

Result<ReduceAxes> reduceAxesFor(const Node& node, int64_t rank, const std::vector<int64_t>* axes_in) {
  ReduceAxes r;
  r.keepdims = node.attrInt("keepdims", 1) != 0;
  bool noop_empty = node.attrInt("noop_with_empty_axes", 0) != 0;
  std::vector<int64_t> axes;
  if (axes_in) axes = *axes_in;
  if (axes.empty()) {
    if (noop_empty) {
      r.noop = true;
      return r;
    }
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  RJ_RETURN_IF_ERROR(normalizeAxes(&axes, rank, node));
  r.reduced.assign(rank, false);
  for (int64_t a : axes) r.reduced[a] = true;
  return r;
}

static Status inferReduce(InferContext& ctx) {
  bool minmax = ctx.node().op_type == "ReduceMax" || ctx.node().op_type == "ReduceMin";
  if (ctx.dtype(0) == DataType::kBool && !minmax) return ctx.error("bool input is not supported");
  const Shape& in = ctx.shape(0);
  std::optional<std::vector<int64_t>> axes;
  if (ctx.hasInput(1)) {
    axes = knownInts(ctx, 1);
    if (!axes) {  // axes known only at run time
      Shape out = Shape::unknownRank();
      if (in.rank_known && ctx.node().attrInt("keepdims", 1) != 0) {
        out = in;
        for (auto& d : out.dims) d = freshDim(ctx);
      }
      ctx.setOutput(0, ctx.dtype(0), out);
      return Status::Ok();
    }
  }
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  RJ_ASSIGN_OR_RETURN(ReduceAxes r, reduceAxesFor(ctx.node(), in.rank(), axes ? &*axes : nullptr));
  if (r.noop) {
    ctx.setOutput(0, ctx.dtype(0), in);
    return Status::Ok();
  }
  Shape out;
  for (size_t i = 0; i < in.rank(); ++i) {
    if (!r.reduced[i]) out.dims.push_back(in.dims[i]);
    else if (r.keepdims) out.dims.push_back(Dim(1));
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

Status inferReduceSum(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceMean(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceMax(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceMin(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceProd(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceL1(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceL2(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceLogSum(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceLogSumExp(InferContext& ctx) { return inferReduce(ctx); }
Status inferReduceSumSquare(InferContext& ctx) { return inferReduce(ctx); }

static Status inferArg(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!in.rank_known) {
    ctx.setOutput(0, DataType::kInt64, Shape::unknownRank());
    return Status::Ok();
  }
  int64_t axis = ctx.node().attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node()));
  if (in.rank() == 0) return ctx.error("input must have rank >= 1");
  Shape out = in;
  if (ctx.node().attrInt("keepdims", 1)) out.dims[axis] = Dim(1);
  else out.dims.erase(out.dims.begin() + axis);
  ctx.setOutput(0, DataType::kInt64, out);
  return Status::Ok();
}

Status inferArgMax(InferContext& ctx) { return inferArg(ctx); }
Status inferArgMin(InferContext& ctx) { return inferArg(ctx); }

Status inferTopK(InferContext& ctx) {
  const Shape& in = ctx.shape(0);
  if (!isIndexType(ctx.dtype(1))) return ctx.error("K must be int64");
  Shape out = in;
  if (in.rank_known) {
    if (in.rank() == 0) return ctx.error("input must have rank >= 1");
    int64_t axis = ctx.node().attrInt("axis", -1);
    RJ_RETURN_IF_ERROR(checkAxis(&axis, in.rank(), ctx.node()));
    auto k = knownInts(ctx, 1);
    if (k) {
      if (k->size() != 1) return ctx.error("K must have exactly one element, got ", k->size());
      int64_t kv = (*k)[0];
      if (kv < 0) return ctx.error("K must be >= 0, got ", kv);
      if (in.dims[axis].known() && kv > in.dims[axis].value)
        return ctx.error("K=", kv, " exceeds the axis size ", in.dims[axis].value);
      out.dims[axis] = Dim(kv);
    } else {
      out.dims[axis] = freshDim(ctx);
    }
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  ctx.setOutput(1, DataType::kInt64, out);
  return Status::Ok();
}

}  // namespace ramjet::ops
