// Reference kernels for gathers and scatters. Indices may be negative (counted from the end);
// out-of-range indices are an error naming the node, never an out-of-bounds access.
#include <algorithm>
#include <cstring>

#include "core/dispatch.h"
#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

static const uint8_t* bytes(const Tensor& t) { return static_cast<const uint8_t*>(t.raw()); }
static uint8_t* bytes(Tensor& t) { return static_cast<uint8_t*>(t.raw()); }

// Index i of `idx` normalized for an axis of size n, or an error.
static Status indexAt(const KernelContext& ctx, const Tensor& idx, int64_t i, int64_t n, int64_t* out) {
  int64_t k = idx.getInt(i);
  if (k < -n || k >= n) return ctx.error("index ", k, " is out of range for an axis of size ", n);
  *out = k < 0 ? k + n : k;
  return Status::Ok();
}

Status refGather(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor &data = ctx.input(0), &idx = ctx.input(1);
  Tensor& out = ctx.output(0);
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, data.rank(), ctx.node));
  int64_t outer = 1, n = data.dims()[axis], inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= data.dims()[i];
  for (size_t i = axis + 1; i < data.rank(); ++i) inner *= data.dims()[i];
  size_t es = dataTypeSize(data.dtype());
  int64_t m = idx.numel();
  std::vector<int64_t> ks(m);
  for (int64_t j = 0; j < m; ++j) RJ_RETURN_IF_ERROR(indexAt(ctx, idx, j, n, &ks[j]));
  uint8_t* dst = bytes(out);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < m; ++j) {
      std::memcpy(dst, bytes(data) + (o * n + ks[j]) * inner * es, inner * es);
      dst += inner * es;
    }
  return Status::Ok();
}

// Calls f(linear index in `dims`, index with `axis` replaced by k) for every element of indices.
template <typename F>
static Status forEachAxisIndex(const KernelContext& ctx, const Tensor& idx, const std::vector<int64_t>& data_dims,
                               int64_t axis, F f) {
  int64_t r = idx.rank();
  std::vector<int64_t> ds = stridesOf(data_dims), pos(r, 0);
  for (int64_t i = 0; i < idx.numel(); ++i) {
    int64_t k;
    RJ_RETURN_IF_ERROR(indexAt(ctx, idx, i, data_dims[axis], &k));
    int64_t at = 0;
    for (int64_t a = 0; a < r; ++a) {
      if (a != axis && pos[a] >= data_dims[a])
        return ctx.error("indices dim ", a, " (", idx.dims()[a], ") exceeds the data dim ", data_dims[a]);
      at += (a == axis ? k : pos[a]) * ds[a];
    }
    f(i, at);
    for (int64_t a = r - 1; a >= 0; --a) {
      if (++pos[a] < idx.dims()[a]) break;
      pos[a] = 0;
    }
  }
  return Status::Ok();
}

Status refGatherElements(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor &data = ctx.input(0), &idx = ctx.input(1);
  Tensor& out = ctx.output(0);
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, data.rank(), ctx.node));
  size_t es = dataTypeSize(data.dtype());
  return forEachAxisIndex(ctx, idx, data.dims(), axis, [&](int64_t i, int64_t at) {
    std::memcpy(bytes(out) + i * es, bytes(data) + at * es, es);
  });
}

Status refGatherND(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor &data = ctx.input(0), &idx = ctx.input(1);
  Tensor& out = ctx.output(0);
  int64_t b = ctx.node.attrInt("batch_dims", 0);
  int64_t q = idx.rank(), last = idx.dims()[q - 1];
  int64_t batch = 1;
  for (int64_t i = 0; i < b; ++i) {
    if (idx.dims()[i] != data.dims()[i])
      return ctx.error("batch dim ", i, " differs: indices ", idx.dims()[i], " vs data ", data.dims()[i]);
    batch *= data.dims()[i];
  }
  int64_t per_batch_idx = 1;  // index tuples per batch
  for (int64_t i = b; i < q - 1; ++i) per_batch_idx *= idx.dims()[i];
  int64_t slice = 1;
  for (size_t i = b + last; i < data.rank(); ++i) slice *= data.dims()[i];
  std::vector<int64_t> ds = stridesOf(data.dims());
  int64_t batch_stride = b > 0 ? ds[b - 1] : data.numel();
  size_t es = dataTypeSize(data.dtype());
  uint8_t* dst = bytes(out);
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t t = 0; t < per_batch_idx; ++t) {
      int64_t base = (bi * per_batch_idx + t) * last, at = bi * batch_stride;
      for (int64_t j = 0; j < last; ++j) {
        int64_t k;
        RJ_RETURN_IF_ERROR(indexAt(ctx, idx, base + j, data.dims()[b + j], &k));
        at += k * ds[b + j];
      }
      std::memcpy(dst, bytes(data) + at * es, slice * es);
      dst += slice * es;
    }
  return Status::Ok();
}

// Applies the reduction attribute to one element.
template <typename T>
static void reduceInto(T* dst, T v, int red) {
  using A = typename AccType<T>::type;
  switch (red) {
    case 0: *dst = v; break;
    case 1: *dst = static_cast<T>(static_cast<A>(*dst) + static_cast<A>(v)); break;
    case 2: *dst = static_cast<T>(static_cast<A>(*dst) * static_cast<A>(v)); break;
    case 3: if (static_cast<A>(v) > static_cast<A>(*dst)) *dst = v; break;
    case 4: if (static_cast<A>(v) < static_cast<A>(*dst)) *dst = v; break;
  }
}

static int reductionCode(const Node& n) {
  std::string r = n.attrString("reduction", "none");
  return r == "add" ? 1 : r == "mul" ? 2 : r == "max" ? 3 : r == "min" ? 4 : 0;
}

Status refScatterElements(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor &data = ctx.input(0), &idx = ctx.input(1), &upd = ctx.input(2);
  Tensor& out = ctx.output(0);
  if (upd.dims() != idx.dims())
    return ctx.error("updates ", dimsToString(upd.dims()), " must have the shape of indices ", dimsToString(idx.dims()));
  int64_t axis = ctx.node.attrInt("axis", 0);
  RJ_RETURN_IF_ERROR(checkAxis(&axis, data.rank(), ctx.node));
  std::memcpy(out.raw(), data.raw(), data.nbytes());
  int red = reductionCode(ctx.node);
  Status st;
  bool ok = visitType(data.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* u = upd.data<T>();
    T* o = out.data<T>();
    st = forEachAxisIndex(ctx, idx, data.dims(), axis, [&](int64_t i, int64_t at) { reduceInto(o + at, u[i], red); });
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(data.dtype()));
  return st;
}

Status refScatterND(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor &data = ctx.input(0), &idx = ctx.input(1), &upd = ctx.input(2);
  Tensor& out = ctx.output(0);
  int64_t q = idx.rank(), r = data.rank();
  if (q == 0) return ctx.error("indices must have rank >= 1");
  int64_t last = idx.dims()[q - 1];
  if (last > r) return ctx.error("index tuples have ", last, " entries but data has rank ", r);
  // updates shape must be indices.shape[:-1] + data.shape[last:]
  std::vector<int64_t> want(idx.dims().begin(), idx.dims().end() - 1);
  want.insert(want.end(), data.dims().begin() + last, data.dims().end());
  if (upd.dims() != want)
    return ctx.error("updates have shape ", dimsToString(upd.dims()), ", expected ", dimsToString(want));
  std::memcpy(out.raw(), data.raw(), data.nbytes());
  std::vector<int64_t> ds = stridesOf(data.dims());
  int64_t slice = 1;
  for (int64_t i = last; i < r; ++i) slice *= data.dims()[i];
  int64_t tuples = last ? idx.numel() / last : 0;
  if (last == 0) tuples = numElements(std::vector<int64_t>(idx.dims().begin(), idx.dims().end() - 1));
  int red = reductionCode(ctx.node);
  Status st;
  bool ok = visitType(data.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* u = upd.data<T>();
    T* o = out.data<T>();
    for (int64_t t = 0; t < tuples && st.ok(); ++t) {
      int64_t at = 0;
      for (int64_t j = 0; j < last; ++j) {
        int64_t k;
        st = indexAt(ctx, idx, t * last + j, data.dims()[j], &k);
        if (!st.ok()) return;
        at += k * ds[j];
      }
      for (int64_t e = 0; e < slice; ++e) reduceInto(o + at + e, u[t * slice + e], red);
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(data.dtype()));
  return st;
}

}  // namespace ramjet::ops
