// Reference kernels of FusedGemm, MultiHeadAttention and FusedElementwise (ops_fused.def):
// the plain formula of the subgraph each replaces, computed in float (double for f64 inputs)
// and rounded once at the end.
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/reference/broadcast.h"
#include "backends/cpu/reference/gemm.h"
#include "ops/elementwise_program.h"
#include "ops/op_registry.h"
#include "precision/fp8_math.h"

namespace ramjet::ops {

namespace {

// Tensor -> accumulation-type vector (float, or double for f64).
template <typename A>
std::vector<A> toAcc(const Tensor& t) {
  std::vector<A> v(static_cast<size_t>(t.numel()));
  if constexpr (std::is_same_v<A, double>) {
    for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.getDouble(i);
  } else {
    Tensor f = t.dtype() == DataType::kFloat32 ? t : t.cast(DataType::kFloat32);
    const float* p = f.data<float>();
    v.assign(p, p + f.numel());
  }
  return v;
}

template <typename A>
void storeAcc(const std::vector<A>& v, Tensor& out) {
  Tensor tmp(std::is_same_v<A, double> ? DataType::kFloat64 : DataType::kFloat32, out.dims());
  std::copy(v.begin(), v.end(), tmp.data<A>());
  out = tmp.dtype() == out.dtype() ? tmp : tmp.cast(out.dtype());
}

template <typename A>
A activate(const std::string& act, A x) {
  if (act == "relu") return x > 0 ? x : A(0);
  if (act == "gelu") return A(0.5) * x * (A(1) + std::erf(x / std::sqrt(A(2))));
  if (act == "gelu_tanh")
    return A(0.5) * x * (A(1) + std::tanh(std::sqrt(A(2) / A(M_PI)) * (x + A(0.044715) * x * x * x)));
  return x;
}

// The output dims of a GEMM of A [..., K] with N columns, and its row count; checks the optional
// bias [N] (input 2) and residual (input 3, the output's dims).
Status gemmOutputDims(KernelContext& ctx, const Tensor& a, int64_t n, std::vector<int64_t>* od, int64_t* rows) {
  *od = a.dims();
  od->back() = n;
  *rows = numElements(*od) / std::max<int64_t>(n, 1);
  if (ctx.hasInput(2) && ctx.input(2).numel() != n) return ctx.error("bias must have N = ", n, " elements");
  if (ctx.hasInput(3) && ctx.input(3).dims() != *od)
    return ctx.error("residual ", dimsToString(ctx.input(3).dims()), " must be ", dimsToString(*od));
  return Status::Ok();
}

}  // namespace

Status refFusedGemm(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.rank() < 2 || b.rank() != 2) return ctx.error("A must have rank >= 2 and B rank 2");
  const bool tb = ctx.node.attrInt("trans_b", 0) != 0;
  const int64_t k = a.dim(-1), n = tb ? b.dim(0) : b.dim(1);
  if ((tb ? b.dim(1) : b.dim(0)) != k)
    return ctx.error("A ", dimsToString(a.dims()), " and B ", dimsToString(b.dims()), " differ in K");
  std::vector<int64_t> od;
  int64_t rows = 0;
  RJ_RETURN_IF_ERROR(gemmOutputDims(ctx, a, n, &od, &rows));
  if (!ctx.output(0).defined() || ctx.output(0).dims() != od) ctx.allocOutput(0, a.dtype(), od);
  const std::string act = ctx.node.attrString("activation", "none");
  const float alpha = ctx.node.attrFloat("alpha", 1.f);
  auto run = [&](auto zero) -> void {
    using A = decltype(zero);
    std::vector<A> va = toAcc<A>(a), vb = toAcc<A>(b), y(static_cast<size_t>(rows * n), A(0));
    if (k > 0 && rows > 0 && n > 0)
      reference::gemm(false, tb, rows, n, k, static_cast<A>(alpha), va.data(), k, vb.data(), tb ? k : n, A(0),
                      y.data(), n);
    std::vector<A> bias, res;
    if (ctx.hasInput(2)) bias = toAcc<A>(ctx.input(2));
    if (ctx.hasInput(3)) res = toAcc<A>(ctx.input(3));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < n; ++c) {
        A& v = y[static_cast<size_t>(r * n + c)];
        if (!bias.empty()) v += bias[static_cast<size_t>(c)];
        if (!res.empty()) v += res[static_cast<size_t>(r * n + c)];
        v = activate(act, v);
      }
    storeAcc(y, ctx.output(0));
  };
  if (!isFloatType(a.dtype())) return ctx.unsupported("element type ", dataTypeName(a.dtype()));
  if (a.dtype() == DataType::kFloat64)
    run(double(0));
  else
    run(float(0));
  return Status::Ok();
}

// Fp8Gemm: the E4M3 operands decoded to float (exact), products summed in float, then the
// combined scale, bias, residual and activation as FusedGemm; one rounding to A's type at the end.
Status refFp8Gemm(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (a.rank() < 2 || w.rank() != 2 || w.dtype() != DataType::kUInt8) return ctx.error("A must have rank >= 2 and W be 2-D uint8");
  const int64_t k = a.dim(-1), n = w.dim(0);
  if (w.dim(1) != k) return ctx.error("A ", dimsToString(a.dims()), " and W ", dimsToString(w.dims()), " differ in K");
  const bool codes_in = a.dtype() == DataType::kUInt8;
  const DataType ft = codes_in ? static_cast<DataType>(ctx.node.attrInt("to", 0)) : a.dtype();
  if (!isFloatType(ft)) return ctx.unsupported("element type ", dataTypeName(ft));
  const float out_scale = ctx.node.attrFloat("out_scale", 0.f);
  std::vector<int64_t> od;
  int64_t rows = 0;
  RJ_RETURN_IF_ERROR(gemmOutputDims(ctx, a, n, &od, &rows));
  const DataType out_dt = out_scale > 0.f ? DataType::kUInt8 : ft;
  if (!ctx.output(0).defined() || ctx.output(0).dims() != od || ctx.output(0).dtype() != out_dt) ctx.allocOutput(0, out_dt, od);
  const float xs = ctx.node.attrFloat("x_scale", 0.f), ws = ctx.node.attrFloat("w_scale", 0.f);
  if (!(xs > 0.f) || !(ws > 0.f)) return ctx.error("x_scale and w_scale must be positive");
  // The same float operations, in the same order, as the CUDA kernel: q = e4m3(a * (1/x_scale)),
  // scale = (alpha * x_scale) * w_scale.
  const float inv = 1.f / xs;
  float scale = ctx.node.attrFloat("alpha", 1.f) * xs;
  scale *= ws;
  std::vector<float> qa(static_cast<size_t>(a.numel())), qw(static_cast<size_t>(w.numel()));
  if (codes_in) {
    const uint8_t* pa = a.data<uint8_t>();
    for (size_t i = 0; i < qa.size(); ++i) qa[i] = precision::e4m3ToFloat(pa[i]);
  } else {
    qa = toAcc<float>(a);
    for (float& v : qa) v = precision::e4m3ToFloat(precision::floatToE4m3(v * inv));
  }
  const uint8_t* pw = w.data<uint8_t>();
  for (size_t i = 0; i < qw.size(); ++i) qw[i] = precision::e4m3ToFloat(pw[i]);
  std::vector<float> y(static_cast<size_t>(rows * n), 0.f);
  if (k > 0 && rows > 0 && n > 0) reference::gemm(false, true, rows, n, k, scale, qa.data(), k, qw.data(), k, 0.f, y.data(), n);
  std::vector<float> bias, res;
  if (ctx.hasInput(2)) bias = toAcc<float>(ctx.input(2));
  if (ctx.hasInput(3)) res = toAcc<float>(ctx.input(3));
  const std::string act = ctx.node.attrString("activation", "none");
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c) {
      float& v = y[static_cast<size_t>(r * n + c)];
      if (!bias.empty()) v += bias[static_cast<size_t>(c)];
      if (!res.empty()) v += res[static_cast<size_t>(r * n + c)];
      v = activate(act, v);
    }
  if (out_scale > 0.f) {
    const float inv_out = 1.f / out_scale;
    uint8_t* po = ctx.output(0).data<uint8_t>();
    for (size_t i = 0; i < y.size(); ++i) po[i] = precision::floatToE4m3(y[i] * inv_out);
  } else {
    storeAcc(y, ctx.output(0));
  }
  return Status::Ok();
}

Status refMultiHeadAttention(KernelContext& ctx) {
  const Node& nd = ctx.node;
  const std::string layout = nd.attrString("layout", "sbh");
  const int64_t heads = nd.attrInt("num_heads", 0), d = nd.attrInt("head_size", 0);
  const int64_t dv = nd.attrInt("v_head_size", d);
  const int64_t offs[3] = {nd.attrInt("q_offset", 0), nd.attrInt("k_offset", 0), nd.attrInt("v_offset", 0)};
  const Tensor* in[3] = {&ctx.input(0), &ctx.input(1), &ctx.input(2)};
  for (int i = 0; i < 3; ++i)
    if (in[i]->rank() != 3) return ctx.error("input ", i, " must be 3-D");
  const bool sbh = layout == "sbh";
  const int64_t batch = in[0]->dim(sbh ? 1 : 0), sq = in[0]->dim(sbh ? 0 : 1), sk = in[1]->dim(sbh ? 0 : 1);
  if (in[1]->dim(sbh ? 1 : 0) != batch || in[2]->dim(sbh ? 1 : 0) != batch || in[2]->dim(sbh ? 0 : 1) != sk)
    return ctx.error("Q, K, V batch/key dims do not agree");
  const int64_t widths[3] = {heads * d, heads * d, heads * dv};
  for (int i = 0; i < 3; ++i)
    if (offs[i] < 0 || offs[i] + widths[i] > in[i]->dim(2)) return ctx.error("input ", i, " columns out of range");
  std::vector<int64_t> od = in[0]->dims();
  od[2] = heads * dv;
  if (!ctx.output(0).defined() || ctx.output(0).dims() != od) ctx.allocOutput(0, in[0]->dtype(), od);
  const float scale = nd.hasAttr("scale") ? nd.attrFloat("scale", 1.f) : 1.f / std::sqrt(static_cast<float>(d));
  std::vector<float> q = toAcc<float>(*in[0]), k = toAcc<float>(*in[1]), v = toAcc<float>(*in[2]);
  std::vector<float> out(static_cast<size_t>(numElements(od)));
  // Element (b, s, column c) of a [S,B,W] or [B,S,W] tensor of width w.
  auto at = [&](int64_t b, int64_t s, int64_t c, int64_t w, int64_t bn, int64_t sn) {
    return static_cast<size_t>(sbh ? (s * bn + b) * w + c : (b * sn + s) * w + c);
  };
  const int64_t wq = in[0]->dim(2), wk = in[1]->dim(2), wv = in[2]->dim(2), wo = heads * dv;
  std::vector<float> sc(static_cast<size_t>(sk));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < sq; ++i) {
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < sk; ++j) {
          float dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += q[at(b, i, offs[0] + h * d + c, wq, batch, sq)] * k[at(b, j, offs[1] + h * d + c, wk, batch, sk)];
          sc[static_cast<size_t>(j)] = dot * scale;
          mx = std::max(mx, sc[static_cast<size_t>(j)]);
        }
        float sum = 0;
        for (auto& s : sc) {
          s = std::exp(s - mx);
          sum += s;
        }
        for (int64_t c = 0; c < dv; ++c) {
          float acc = 0;
          for (int64_t j = 0; j < sk; ++j)
            acc += sc[static_cast<size_t>(j)] * v[at(b, j, offs[2] + h * dv + c, wv, batch, sk)];
          out[at(b, i, h * dv + c, wo, batch, sq)] = acc / sum;
        }
      }
  storeAcc(out, ctx.output(0));
  return Status::Ok();
}

Status refFusedElementwise(KernelContext& ctx) {
  const size_t nin = ctx.inputs.size();
  RJ_ASSIGN_OR_RETURN(EwProgram prog, ewProgramFromNode(ctx.node, nin));
  std::vector<int64_t> od;
  for (size_t i = 0; i < nin; ++i) {
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
    const auto& d = ctx.input(i).dims();
    if (d.size() > od.size()) od.insert(od.begin(), d.size() - od.size(), 1);
    for (size_t j = 0; j < d.size(); ++j) {
      int64_t& o = od[od.size() - d.size() + j];
      if (o == 1) o = d[j];
      else if (d[j] != 1 && d[j] != o)
        return ctx.error("inputs do not broadcast: ", dimsToString(d), " vs ", dimsToString(od));
    }
  }
  if (!ctx.output(0).defined() || ctx.output(0).dims() != od) ctx.allocOutput(0, ctx.input(0).dtype(), od);
  std::vector<std::vector<float>> vals;
  std::vector<reference::BroadcastIndexer> idx;
  for (size_t i = 0; i < nin; ++i) {
    vals.push_back(toAcc<float>(ctx.input(i)));
    idx.emplace_back(ctx.input(i).dims(), od);
  }
  const int64_t total = numElements(od);
  std::vector<float> out(static_cast<size_t>(total));
  reference::parallelRange(total, 16384, [&](int64_t begin, int64_t end) {
    std::vector<float> x(nin), regs(prog.code.size());
    for (int64_t e = begin; e < end; ++e) {
      for (size_t i = 0; i < nin; ++i) x[i] = vals[i][static_cast<size_t>(idx[i](e))];
      out[static_cast<size_t>(e)] = ewEvalHost(prog, x.data(), regs.data());
    }
  });
  storeAcc(out, ctx.output(0));
  return Status::Ok();
}

}  // namespace ramjet::ops

namespace ramjet::ops {

// S = X + R rounded to the tensors' type (as the unfused Add stores it), then LayerNorm of S
// over the axes from `axis` on (population variance), in float.
Status refAddLayerNorm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& r = ctx.input(1);
  if (x.dims() != r.dims()) return ctx.error("X ", dimsToString(x.dims()), " and R ", dimsToString(r.dims()), " differ");
  int64_t axis = ctx.node.attrInt("axis", -1);
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, static_cast<int64_t>(x.rank()), ctx.node));
  int64_t cols = 1;
  for (size_t i = static_cast<size_t>(axis); i < x.rank(); ++i) cols *= x.dims()[i];
  const int64_t rows = cols ? x.numel() / cols : 0;
  if (ctx.input(2).numel() != cols || (ctx.hasInput(3) && ctx.input(3).numel() != cols))
    return ctx.error("scale/bias must have ", cols, " elements");
  const float eps = ctx.node.attrFloat("epsilon", 1e-5f);
  std::vector<float> xs = toAcc<float>(x), rs = toAcc<float>(r), sc = toAcc<float>(ctx.input(2)), bi;
  if (ctx.hasInput(3)) bi = toAcc<float>(ctx.input(3));
  for (size_t i = 0; i < xs.size(); ++i) xs[i] += rs[i];
  Tensor s(x.dtype(), x.dims());
  storeAcc(xs, s);
  xs = toAcc<float>(s);  // the rounded sums, as the unfused LayerNorm would read them
  std::vector<float> y(xs.size());
  for (int64_t row = 0; row < rows; ++row) {
    const float* p = xs.data() + row * cols;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += p[c];
    mean /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c) var += (p[c] - mean) * (p[c] - mean);
    var /= static_cast<double>(cols);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < cols; ++c)
      y[static_cast<size_t>(row * cols + c)] =
          static_cast<float>((p[c] - mean) * inv * sc[static_cast<size_t>(c)] + (bi.empty() ? 0.0 : bi[static_cast<size_t>(c)]));
  }
  if (!ctx.output(0).defined() || ctx.output(0).dims() != x.dims()) ctx.allocOutput(0, x.dtype(), x.dims());
  storeAcc(y, ctx.output(0));
  if (ctx.hasOutput(1)) ctx.output(1) = s;
  return Status::Ok();
}

// Y[o, 0, i] = sum_k softmax_k(X[o, :, i]) * W[k] in double (max-subtracted exponentials), the
// result rounded to X's type once.
Status refSoftmaxWeightedSum(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = ctx.node.attrInt("axis", 1);
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, static_cast<int64_t>(x.rank()), ctx.node));
  const int64_t k = x.dims()[static_cast<size_t>(axis)];
  if (ctx.input(1).numel() != k) return ctx.error("W has ", ctx.input(1).numel(), " weights for an axis of ", k);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.dims()[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < x.rank(); ++i) inner *= x.dims()[i];
  std::vector<int64_t> od = x.dims();
  od[static_cast<size_t>(axis)] = 1;
  const std::vector<float> xs = toAcc<float>(x), ws = toAcc<float>(ctx.input(1));
  std::vector<float> y(static_cast<size_t>(outer * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const float* p = xs.data() + o * k * inner + i;
      double m = -INFINITY;
      for (int64_t j = 0; j < k; ++j) m = std::max(m, static_cast<double>(p[j * inner]));
      double den = 0, num = 0;
      for (int64_t j = 0; j < k; ++j) {
        const double e = std::exp(static_cast<double>(p[j * inner]) - m);
        den += e;
        num += e * ws[static_cast<size_t>(j)];
      }
      y[static_cast<size_t>(o * inner + i)] = static_cast<float>(num / den);
    }
  if (!ctx.output(0).defined() || ctx.output(0).dims() != od) ctx.allocOutput(0, x.dtype(), od);
  storeAcc(y, ctx.output(0));
  return Status::Ok();
}


}  // namespace ramjet::ops
