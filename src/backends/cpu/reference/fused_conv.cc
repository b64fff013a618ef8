// Reference kernel of FusedConv (src/ops/fused_conv.h): the plain formula act(conv(X, W) + B + Z)
// on top of the reference Conv. Channels-last operands are viewed channels-first (a copy), so
// both layouts share one convolution. Computed in float32 (float64 for f64) and rounded once.
#include "ops/fused_conv.h"

#include <cstring>
#include <type_traits>

#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {
Tensor permuted(const Tensor& in, const std::vector<int64_t>& perm) { return permuteTensor(in, perm); }
}  // namespace

Status refFusedConv(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(ConvActivation act, parseConvActivation(ctx.node));
  RJ_ASSIGN_OR_RETURN(bool nhwc, parseConvLayoutNhwc(ctx.node));
  const Tensor& x0 = ctx.input(0);
  const Tensor& w0 = ctx.input(1);
  if (!isFloatType(x0.dtype())) return ctx.unsupported("element type ", dataTypeName(x0.dtype()));
  if (x0.rank() < 3 || w0.rank() != x0.rank())
    return ctx.error("X ", dimsToString(x0.dims()), " and W ", dimsToString(w0.dims()),
                     " must have equal rank >= 3");
  const DataType acc = x0.dtype() == DataType::kFloat64 ? DataType::kFloat64 : DataType::kFloat32;
  Tensor x = x0.cast(acc), w = w0.cast(acc), b;
  if (nhwc) {
    x = permuted(x, toChannelsFirstPerm(x.rank()));
    w = permuted(w, toChannelsFirstPerm(w.rank()));
  }
  if (ctx.hasInput(2)) b = ctx.input(2).cast(acc);
  // Output dims channels-first from the node's own geometry (the same function as Conv).
  std::vector<TensorType> types = {x.type(), w.type()};
  if (ctx.hasInput(2)) types.push_back(b.type());
  InferContext ic(ctx.node, types, std::vector<const Tensor*>(types.size(), nullptr));
  RJ_RETURN_IF_ERROR(inferConv(ic));
  if (!ic.outputs()[0].shape.fullyKnown()) return ctx.error("output shape is not computable");
  KernelContext cc(ctx.node, {&x, &w, ctx.hasInput(2) ? &b : nullptr}, 1);
  cc.outputs[0] = Tensor(acc, ic.outputs()[0].shape.concrete());
  RJ_RETURN_IF_ERROR(refConv(cc));
  Tensor y = nhwc ? permuted(cc.outputs[0], toChannelsLastPerm(cc.outputs[0].rank())) : cc.outputs[0];
  if (ctx.hasInput(3)) {
    const Tensor& z0 = ctx.input(3);
    if (z0.dims() != y.dims())
      return ctx.error("residual Z ", dimsToString(z0.dims()), " must have the output's shape ",
                       dimsToString(y.dims()));
    Tensor z = z0.cast(acc);
    visitType(acc, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_floating_point_v<T>) {
        T* py = y.data<T>();
        const T* pz = z.data<T>();
        for (int64_t i = 0; i < y.numel(); ++i) py[i] += pz[i];
      }
    });
  }
  if (act.kind != ConvAct::kNone) {
    visitType(acc, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_floating_point_v<T>) {
        T* py = y.data<T>();
        for (int64_t i = 0; i < y.numel(); ++i) py[i] = static_cast<T>(act(static_cast<double>(py[i])));
      }
    });
  }
  Tensor out = y.cast(x0.dtype());
  if (ctx.output(0).defined() && ctx.output(0).dims() != out.dims())
    return ctx.error("output ", dimsToString(out.dims()), " differs from the inferred ",
                     dimsToString(ctx.output(0).dims()));
  ctx.outputs[0] = std::move(out);
  return Status::Ok();
}

Status refPoolNhwc(KernelContext& ctx) {
  const std::string mode = ctx.node.attrString("mode", "");
  if (mode != "max" && mode != "average") return ctx.error("mode '", mode, "' must be max or average");
  const Tensor& x0 = ctx.input(0);
  if (x0.rank() < 3) return ctx.error("X ", dimsToString(x0.dims()), " must have rank >= 3");
  Tensor x = permuted(x0, toChannelsFirstPerm(x0.rank()));
  InferContext ic(ctx.node, {x.type()}, {nullptr});
  RJ_RETURN_IF_ERROR(mode == "max" ? inferMaxPool(ic) : inferAveragePool(ic));
  if (!ic.outputs()[0].shape.fullyKnown()) return ctx.error("output shape is not computable");
  KernelContext pc(ctx.node, {&x}, 1);
  pc.outputs[0] = Tensor(x.dtype(), ic.outputs()[0].shape.concrete());
  RJ_RETURN_IF_ERROR(mode == "max" ? refMaxPool(pc) : refAveragePool(pc));
  ctx.outputs[0] = permuted(pc.outputs[0], toChannelsLastPerm(pc.outputs[0].rank()));
  return Status::Ok();
}

}  // namespace ramjet::ops
