// Reference kernel for Einsum: a generic loop over all labels (any explicit/implicit form,
// ellipsis broadcasting, diagonals via repeated labels, sums), and a fast path that maps
// two-operand contractions (batch/M/N/K labels) onto batched GEMM.
#include <algorithm>

#include "backends/cpu/reference/gemm.h"
#include "core/dispatch.h"
#include "ops/nn_geometry.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// dst = src permuted: dst dims[i] = src dims[perm[i]].
template <typename A>
void permuteCopy(const A* src, const std::vector<int64_t>& dims, const std::vector<int>& perm,
                 A* dst) {
  const size_t r = dims.size();
  const std::vector<int64_t> ss = stridesOf(dims);
  std::vector<int64_t> od(r), os(r);
  for (size_t i = 0; i < r; ++i) {
    od[i] = dims[perm[i]];
    os[i] = ss[perm[i]];
  }
  const int64_t n = numElements(dims);
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = src[off];
    for (int d = static_cast<int>(r) - 1; d >= 0; --d) {
      off += os[d];
      if (++idx[d] < od[d]) break;
      off -= os[d] * od[d];
      idx[d] = 0;
    }
  }
}

struct Operand {
  std::vector<int64_t> label_stride;  // per label id: element stride (0 when absent/broadcast)
};

// Two-operand contraction as batched GEMM; false when the equation doesn't fit the pattern.
template <typename A>
bool einsumGemm(const EinsumLabels& L, const std::vector<int64_t>& size,
                const std::vector<const Tensor*>& ins, const std::vector<const A*>& data, A* out) {
  if (ins.size() != 2) return false;
  const int nl = L.num_labels;
  std::vector<int> inA(nl, 0), inB(nl, 0), inO(nl, 0);
  for (int id : L.in[0]) inA[id]++;
  for (int id : L.in[1]) inB[id]++;
  for (int id : L.out) inO[id]++;
  for (int id = 0; id < nl; ++id) {
    if (inA[id] > 1 || inB[id] > 1) return false;            // diagonal
    if ((inA[id] + inB[id]) == 1 && !inO[id]) return false;  // sum over one operand only
  }
  for (size_t k = 0; k < 2; ++k)
    for (size_t a = 0; a < L.in[k].size(); ++a)
      if (ins[k]->dim(static_cast<int>(a)) != size[L.in[k][a]]) return false;  // broadcasting
  std::vector<int> batch, ml, nlb, kl;
  for (int id : L.out) {
    if (inA[id] && inB[id])
      batch.push_back(id);
    else if (inA[id])
      ml.push_back(id);
    else
      nlb.push_back(id);
  }
  for (int id : L.in[0])
    if (inB[id] && !inO[id]) kl.push_back(id);
  auto prod = [&](const std::vector<int>& v) {
    int64_t p = 1;
    for (int id : v) p *= size[id];
    return p;
  };
  const int64_t Bn = prod(batch), M = prod(ml), N = prod(nlb), K = prod(kl);
  auto permOf = [&](const std::vector<int>& labels, const std::vector<int>& order) {
    std::vector<int> p;
    for (int id : order)
      p.push_back(static_cast<int>(std::find(labels.begin(), labels.end(), id) - labels.begin()));
    return p;
  };
  std::vector<int> orderA = batch, orderB = batch;
  orderA.insert(orderA.end(), ml.begin(), ml.end());
  orderA.insert(orderA.end(), kl.begin(), kl.end());
  orderB.insert(orderB.end(), kl.begin(), kl.end());
  orderB.insert(orderB.end(), nlb.begin(), nlb.end());
  std::vector<A> a(static_cast<size_t>(ins[0]->numel())), b(static_cast<size_t>(ins[1]->numel()));
  permuteCopy(data[0], ins[0]->dims(), permOf(L.in[0], orderA), a.data());
  permuteCopy(data[1], ins[1]->dims(), permOf(L.in[1], orderB), b.data());
  std::vector<A> c(static_cast<size_t>(Bn * M * N));
  for (int64_t i = 0; i < Bn; ++i)
    reference::gemm(false, false, M, N, K, A(1), a.data() + i * M * K, K, b.data() + i * K * N, N,
                    A(0), c.data() + i * M * N, N);
  // c is [batch, m, n] labels; permute into the output's label order.
  std::vector<int> corder = batch;
  corder.insert(corder.end(), ml.begin(), ml.end());
  corder.insert(corder.end(), nlb.begin(), nlb.end());
  std::vector<int64_t> cdims;
  for (int id : corder) cdims.push_back(size[id]);
  permuteCopy(c.data(), cdims, permOf(corder, L.out), out);
  return true;
}

}  // namespace

Status refEinsum(KernelContext& ctx) {
  std::vector<size_t> ranks;
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
    ins.push_back(ctx.inputs[i]);
    ranks.push_back(ctx.inputs[i]->rank());
  }
  RJ_ASSIGN_OR_RETURN(EinsumLabels L, einsumLabels(ctx.node, ranks));
  const int nl = L.num_labels;
  std::vector<int64_t> size(nl, -1);
  for (size_t k = 0; k < ins.size(); ++k)
    for (size_t a = 0; a < L.in[k].size(); ++a) {
      const int id = L.in[k][a];
      const int64_t d = ins[k]->dim(static_cast<int>(a));
      if (size[id] < 0 || (id >= 52 && size[id] == 1)) {
        size[id] = d;
        continue;
      }
      if (d == size[id] || (id >= 52 && d == 1)) continue;
      return ctx.error("label size mismatch: dim ", a, " of input ", k, " is ", d, " but ",
                       size[id], " elsewhere");
    }
  for (int id = 0; id < nl; ++id)
    if (size[id] < 0) size[id] = 1;
  // Per operand, per label: stride (summed for repeated labels = diagonal; 0 for broadcast).
  std::vector<Operand> ops(ins.size());
  for (size_t k = 0; k < ins.size(); ++k) {
    ops[k].label_stride.assign(nl, 0);
    const std::vector<int64_t> st = stridesOf(ins[k]->dims());
    for (size_t a = 0; a < L.in[k].size(); ++a) {
      const int id = L.in[k][a];
      if (ins[k]->dim(static_cast<int>(a)) == 1 && size[id] != 1) continue;
      ops[k].label_stride[id] += st[a];
    }
  }
  std::vector<bool> used(nl, false), in_out(nl, false);
  for (const auto& t : L.in)
    for (int id : t) used[id] = true;
  for (int id : L.out) in_out[id] = true;
  std::vector<int> red;
  for (int id = 0; id < nl; ++id)
    if (used[id] && !in_out[id]) red.push_back(id);
  Tensor& y = ctx.output(0);
  Status st = Status::Ok();
  bool ok = visitNumericType(ins[0]->dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) {
      st = ctx.unsupported("element type bool");
    } else {
      using A = std::conditional_t<std::is_floating_point_v<T> || std::is_same_v<T, Half> ||
                                       std::is_same_v<T, BFloat16>,
                                   typename reference::GemmType<T>::type, T>;
      std::vector<std::vector<A>> store(ins.size());
      std::vector<const A*> data;
      for (size_t k = 0; k < ins.size(); ++k) {
        if constexpr (std::is_same_v<A, T>) {
          data.push_back(ins[k]->data<T>());
        } else {
          data.push_back(reference::asCompute<A>(*ins[k], store[k]));
        }
      }
      reference::ComputeOutput<A> out(y);
      A* py = out.data();
      bool done = false;
      if constexpr (std::is_same_v<A, float> || std::is_same_v<A, double>)
        done = einsumGemm<A>(L, size, ins, data, py);
      if (!done) {
        const size_t no = L.out.size(), nr = red.size(), nk = ins.size();
        int64_t total_red = 1;
        for (int id : red) total_red *= size[id];
        std::vector<int64_t> oidx(no, 0), ridx(nr, 0), base(nk, 0), off(nk, 0);
        for (int64_t i = 0; i < y.numel(); ++i) {
          A acc = A(0);
          std::fill(ridx.begin(), ridx.end(), 0);
          off = base;
          for (int64_t r = 0; r < total_red; ++r) {
            A p = A(1);
            for (size_t k = 0; k < nk; ++k) p = static_cast<A>(p * data[k][off[k]]);
            acc = static_cast<A>(acc + p);
            for (int d = static_cast<int>(nr) - 1; d >= 0; --d) {
              const int id = red[d];
              for (size_t k = 0; k < nk; ++k) off[k] += ops[k].label_stride[id];
              if (++ridx[d] < size[id]) break;
              for (size_t k = 0; k < nk; ++k) off[k] -= ops[k].label_stride[id] * size[id];
              ridx[d] = 0;
            }
          }
          py[i] = acc;
          for (int d = static_cast<int>(no) - 1; d >= 0; --d) {
            const int id = L.out[d];
            for (size_t k = 0; k < nk; ++k) base[k] += ops[k].label_stride[id];
            if (++oidx[d] < size[id]) break;
            for (size_t k = 0; k < nk; ++k) base[k] -= ops[k].label_stride[id] * size[id];
            oidx[d] = 0;
          }
        }
      }
      out.flush();
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(ins[0]->dtype()));
  return st;
}

}  // namespace ramjet::ops
