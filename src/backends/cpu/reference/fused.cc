// Reference kernels of the ramjet-internal fused ops (src/ops/ops_fused.def). They define what
// a fused node means, so each is written as the plain formula of the subgraph it replaces.
#include <cmath>
#include <limits>
#include <vector>

#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {

Status refSilu(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!ctx.output(0).defined() || ctx.output(0).dims() != x.dims())
    ctx.allocOutput(0, x.dtype(), x.dims());
  Tensor& y = ctx.output(0);
  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename AccType<T>::type;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      // x * Sigmoid(x) with Sigmoid's own overflow-free formula, so an f32 graph gives the
      // same bits fused or not.
      const A v = static_cast<A>(px[i]);
      A sig;
      if (v >= 0) {
        sig = A(1) / (A(1) + std::exp(-v));
      } else {
        const A e = std::exp(v);
        sig = e / (A(1) + e);
      }
      py[i] = static_cast<T>(v * sig);
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()), " is not supported");
  return Status::Ok();
}

Status refAttention(KernelContext& ctx) {
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const size_t r = q.rank();
  if (r < 2 || k.rank() != r || v.rank() != r)
    return ctx.error("Q, K and V must have the same rank >= 2");
  for (size_t i = 0; i + 2 < r; ++i)
    if (q.dims()[i] != k.dims()[i] || q.dims()[i] != v.dims()[i])
      return ctx.error("batch dims of Q ", dimsToString(q.dims()), ", K ", dimsToString(k.dims()),
                       ", V ", dimsToString(v.dims()), " differ");
  const int64_t sq = q.dim(-2), d = q.dim(-1), sk = k.dim(-2), dv = v.dim(-1);
  if (k.dim(-1) != d || v.dim(-2) != sk)
    return ctx.error("Q ", dimsToString(q.dims()), ", K ", dimsToString(k.dims()), ", V ",
                     dimsToString(v.dims()), " do not fit Q·Kᵀ·V");
  const int64_t batch = sq > 0 && d > 0 ? q.numel() / (sq * d) : 0;
  std::vector<int64_t> odims = q.dims();
  odims[r - 1] = dv;
  if (!ctx.output(0).defined() || ctx.output(0).dims() != odims)
    ctx.allocOutput(0, q.dtype(), odims);
  Tensor& out = ctx.output(0);
  const double scale = ctx.node.hasAttr("scale") ? ctx.node.attrFloat("scale", 1.f)
                                                 : 1.0 / std::sqrt(static_cast<double>(d));
  // The mask broadcast to [batch..., Sq, Sk] once (additive; bool false -> -inf).
  std::vector<float> mask;
  if (ctx.hasInput(3)) {
    const Tensor& m = ctx.input(3);
    std::vector<int64_t> full(q.dims().begin(), q.dims().end() - 1);
    full.push_back(sk);
    if (m.rank() > full.size())
      return ctx.error("mask ", dimsToString(m.dims()), " has too many dims");
    std::vector<int64_t> mstr(full.size(), 0);
    const auto ms = stridesOf(m.dims());
    const size_t off = full.size() - m.rank();
    for (size_t i = 0; i < m.rank(); ++i) {
      if (m.dims()[i] != 1 && m.dims()[i] != full[off + i])
        return ctx.error("mask ", dimsToString(m.dims()), " does not broadcast to ",
                         dimsToString(full));
      mstr[off + i] = m.dims()[i] == 1 ? 0 : ms[i];
    }
    const int64_t total = numElements(full);
    mask.resize(static_cast<size_t>(total));
    const auto fs = stridesOf(full);
    const bool is_bool = m.dtype() == DataType::kBool;
    for (int64_t i = 0; i < total; ++i) {
      int64_t src = 0, rem = i;
      for (size_t a = 0; a < full.size(); ++a) {
        src += (rem / fs[a]) * mstr[a];
        rem %= fs[a];
      }
      const double mv = m.getDouble(src);
      mask[static_cast<size_t>(i)] = is_bool
                                         ? (mv != 0 ? 0.f : -std::numeric_limits<float>::infinity())
                                         : static_cast<float>(mv);
    }
  }
  bool ok = visitFloatType(q.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* pq = q.data<T>();
    const T* pk = k.data<T>();
    const T* pv = v.data<T>();
    T* po = out.data<T>();
    std::vector<A> s(static_cast<size_t>(sk)), acc(static_cast<size_t>(dv));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < sq; ++i) {
        const T* qi = pq + (b * sq + i) * d;
        A mx = -std::numeric_limits<A>::infinity();
        for (int64_t j = 0; j < sk; ++j) {
          const T* kj = pk + (b * sk + j) * d;
          A dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += static_cast<A>(qi[c]) * static_cast<A>(kj[c]);
          A val = dot * static_cast<A>(scale);
          if (!mask.empty())
            val += static_cast<A>(mask[static_cast<size_t>((b * sq + i) * sk + j)]);
          s[static_cast<size_t>(j)] = val;
          if (val > mx) mx = val;
        }
        A sum = 0;
        for (int64_t j = 0; j < sk; ++j) {
          // A row masked out entirely gives NaN, as Softmax over all -inf does.
          const A e = std::exp(s[static_cast<size_t>(j)] - mx);
          s[static_cast<size_t>(j)] = e;
          sum += e;
        }
        std::fill(acc.begin(), acc.end(), A(0));
        for (int64_t j = 0; j < sk; ++j) {
          const A p = s[static_cast<size_t>(j)] / sum;
          const T* vj = pv + (b * sk + j) * dv;
          for (int64_t c = 0; c < dv; ++c) acc[static_cast<size_t>(c)] += p * static_cast<A>(vj[c]);
        }
        T* oi = po + (b * sq + i) * dv;
        for (int64_t c = 0; c < dv; ++c) oi[c] = static_cast<T>(acc[static_cast<size_t>(c)]);
      }
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(q.dtype()), " is not supported");
  return Status::Ok();
}

}  // namespace ramjet::ops
