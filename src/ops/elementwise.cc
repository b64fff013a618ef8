// Shape/type inference for elementwise ops (see ops_elementwise.def).
#include "ops/op_registry.h"

namespace ramjet::ops {

Status inferIdentity(InferContext& ctx) {
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0));
  return Status::Ok();
}

// Binary arithmetic with numpy broadcasting; both inputs share one type.
static Status inferBinarySameType(InferContext& ctx) {
  if (ctx.dtype(0) != ctx.dtype(1))
    return ctx.error("input types differ: ", dataTypeName(ctx.dtype(0)), " vs ", dataTypeName(ctx.dtype(1)));
  RJ_ASSIGN_OR_RETURN(Shape s, broadcastShapes({ctx.shape(0), ctx.shape(1)}, ctx.node()));
  ctx.setOutput(0, ctx.dtype(0), s);
  return Status::Ok();
}

Status inferAdd(InferContext& ctx) { return inferBinarySameType(ctx); }

}  // namespace ramjet::ops
