// Reference kernels for elementwise ops: obviously correct, computed in the element type's
// accumulation type (float for f16/bf16).
#include <cstring>

#include "backends/cpu/reference/broadcast.h"
#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {

using reference::BroadcastIndexer;

Status refIdentity(KernelContext& ctx) {
  ctx.outputs[0] = ctx.input(0);  // shares storage: tensors are immutable once produced
  return Status::Ok();
}

template <typename F>
static Status binaryKernel(KernelContext& ctx, F f) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  Tensor& out = ctx.output(0);
  BroadcastIndexer ia(a.dims(), out.dims()), ib(b.dims(), out.dims());
  bool ok = visitNumericType(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i)
      po[i] = static_cast<T>(f(static_cast<A>(pa[ia(i)]), static_cast<A>(pb[ib(i)])));
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(a.dtype()));
  return Status::Ok();
}

Status refAdd(KernelContext& ctx) {
  return binaryKernel(ctx, [](auto x, auto y) { return x + y; });
}

}  // namespace ramjet::ops
