// Reference kernels for LSTM, GRU and RNN: forward / reverse / bidirectional, activation
// attributes, clip, sequence_lens, initial states, peepholes (LSTM), linear_before_reset (GRU),
// layout 0 and 1. Input projections for all steps go through one GEMM per direction, the
// recurrent projection through one GEMM per step.
#include <algorithm>
#include <cmath>

#include "backends/cpu/reference/gemm.h"
#include "core/dispatch.h"
#include "ops/nn_geometry.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

enum class Cell { kLSTM, kGRU, kRNN };

template <Cell kCell>
Status rnnKernel(KernelContext& ctx) {
  constexpr int G = kCell == Cell::kLSTM ? 4 : kCell == Cell::kGRU ? 3 : 1;
  const Node& node = ctx.node;
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor& r = ctx.input(2);
  const std::string dir = node.attrString("direction", "forward");
  const int64_t dirs = dir == "bidirectional" ? 2 : 1;
  const int64_t layout = node.attrInt("layout", 0);
  if (x.rank() != 3 || w.rank() != 3 || r.rank() != 3)
    return ctx.error("X, W and R must be 3-D; got ", dimsToString(x.dims()), ", ",
                     dimsToString(w.dims()), ", ", dimsToString(r.dims()));
  const int64_t S = layout == 0 ? x.dim(0) : x.dim(1), Bt = layout == 0 ? x.dim(1) : x.dim(0);
  const int64_t I = x.dim(2);
  const int64_t H = node.hasAttr("hidden_size") ? node.attrInt("hidden_size", 0) : r.dim(2);
  if (w.dims() != std::vector<int64_t>{dirs, G * H, I})
    return ctx.error("W ", dimsToString(w.dims()), " must be [", dirs, ", ", G * H, ", ", I, "]");
  if (r.dims() != std::vector<int64_t>{dirs, G * H, H})
    return ctx.error("R ", dimsToString(r.dims()), " must be [", dirs, ", ", G * H, ", ", H, "]");
  const std::vector<int64_t> state_dims =
      layout == 0 ? std::vector<int64_t>{dirs, Bt, H} : std::vector<int64_t>{Bt, dirs, H};
  const Tensor* bias = ctx.hasInput(3) ? &ctx.input(3) : nullptr;
  if (bias && bias->dims() != std::vector<int64_t>{dirs, 2 * G * H})
    return ctx.error("B ", dimsToString(bias->dims()), " must be [", dirs, ", ", 2 * G * H, "]");
  std::vector<int64_t> lens(static_cast<size_t>(Bt), S);
  if (ctx.hasInput(4)) {
    const Tensor& sl = ctx.input(4);
    if (sl.numel() != Bt)
      return ctx.error("sequence_lens has ", sl.numel(), " elements; expected batch size ", Bt);
    for (int64_t b = 0; b < Bt; ++b) {
      lens[b] = sl.getInt(b);
      if (lens[b] < 0 || lens[b] > S)
        return ctx.error("sequence_lens[", b, "] = ", lens[b], " is outside [0, ", S, "]");
    }
  }
  const Tensor* h0 = ctx.hasInput(5) ? &ctx.input(5) : nullptr;
  const Tensor* c0 = kCell == Cell::kLSTM && ctx.hasInput(6) ? &ctx.input(6) : nullptr;
  const Tensor* peep = kCell == Cell::kLSTM && ctx.hasInput(7) ? &ctx.input(7) : nullptr;
  if (h0 && h0->dims() != state_dims)
    return ctx.error("initial_h ", dimsToString(h0->dims()), " must be ", dimsToString(state_dims));
  if (c0 && c0->dims() != state_dims)
    return ctx.error("initial_c ", dimsToString(c0->dims()), " must be ", dimsToString(state_dims));
  if (peep && peep->dims() != std::vector<int64_t>{dirs, 3 * H})
    return ctx.error("P ", dimsToString(peep->dims()), " must be [", dirs, ", ", 3 * H, "]");
  const std::vector<const char*> defaults =
      kCell == Cell::kLSTM  ? std::vector<const char*>{"Sigmoid", "Tanh", "Tanh"}
      : kCell == Cell::kGRU ? std::vector<const char*>{"Sigmoid", "Tanh"}
                            : std::vector<const char*>{"Tanh"};
  RJ_ASSIGN_OR_RETURN(std::vector<RnnActivation> acts, rnnActivations(node, defaults, dirs));
  const bool has_clip = node.hasAttr("clip");
  const double clip = node.attrFloat("clip", 0.f);
  if (has_clip && clip <= 0) return ctx.error("clip must be positive");
  [[maybe_unused]] const bool input_forget =
      kCell == Cell::kLSTM && node.attrInt("input_forget", 0) != 0;
  const bool lbr = kCell == Cell::kGRU && node.attrInt("linear_before_reset", 0) != 0;
  auto clipv = [&](double v) { return has_clip ? std::max(-clip, std::min(clip, v)) : v; };

  bool ok = visitFloatType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = typename reference::GemmType<T>::type;
    std::vector<A> sx, sw, sr;
    const A* px = reference::asCompute<A>(x, sx);
    const A* pw = reference::asCompute<A>(w, sw);
    const A* pr = reference::asCompute<A>(r, sr);
    // X in [seq, batch, input] order.
    std::vector<A> xs(static_cast<size_t>(S * Bt * I));
    for (int64_t s = 0; s < S; ++s)
      for (int64_t b = 0; b < Bt; ++b)
        for (int64_t i = 0; i < I; ++i)
          xs[(s * Bt + b) * I + i] =
              layout == 0 ? px[(s * Bt + b) * I + i] : px[(b * S + s) * I + i];
    // State accessors in [dirs, batch, H] order regardless of layout.
    auto stateAt = [&](const Tensor* t, int64_t d, int64_t b, int64_t j) -> A {
      if (!t) return A(0);
      const int64_t e = layout == 0 ? (d * Bt + b) * H + j : (b * dirs + d) * H + j;
      return static_cast<A>(t->getDouble(e));
    };
    std::vector<A> y(static_cast<size_t>(S * dirs * Bt * H), A(0));  // [seq, dirs, batch, H]
    std::vector<A> yh(static_cast<size_t>(dirs * Bt * H)), yc(static_cast<size_t>(dirs * Bt * H));
    std::vector<A> xw(static_cast<size_t>(S * Bt * G * H)), hr(static_cast<size_t>(Bt * G * H));
    std::vector<A> h(static_cast<size_t>(Bt * H)), c(static_cast<size_t>(Bt * H)), hn(h.size()),
        cn(c.size());
    std::vector<A> rh(static_cast<size_t>(Bt * H)), rhr(static_cast<size_t>(Bt * H));
    for (int64_t d = 0; d < dirs; ++d) {
      const bool reverse = dir == "reverse" || d == 1;
      const A* W = pw + d * G * H * I;
      const A* R = pr + d * G * H * H;
      reference::gemm(false, true, S * Bt, G * H, I, A(1), xs.data(), I, W, I, A(0), xw.data(),
                      G * H);
      std::vector<double> wb(static_cast<size_t>(G * H), 0.0), rb(static_cast<size_t>(G * H), 0.0);
      if (bias)
        for (int64_t j = 0; j < G * H; ++j) {
          wb[j] = bias->getDouble(d * 2 * G * H + j);
          rb[j] = bias->getDouble(d * 2 * G * H + G * H + j);
        }
      std::vector<double> pv(static_cast<size_t>(3 * H), 0.0);
      if (peep)
        for (int64_t j = 0; j < 3 * H; ++j) pv[j] = peep->getDouble(d * 3 * H + j);
      for (int64_t b = 0; b < Bt; ++b)
        for (int64_t j = 0; j < H; ++j) {
          h[b * H + j] = stateAt(h0, d, b, j);
          c[b * H + j] = stateAt(c0, d, b, j);
        }
      const RnnActivation* act = &acts[static_cast<size_t>(d) * defaults.size()];
      for (int64_t s = 0; s < S; ++s) {
        reference::gemm(false, true, Bt, G * H, H, A(1), h.data(), H, R, H, A(0), hr.data(), G * H);
        hn = h;
        cn = c;
        if (kCell == Cell::kGRU && !lbr) {
          // (r ⊙ h) * Rh^T needs r first.
          for (int64_t b = 0; b < Bt; ++b) {
            if (s >= lens[b]) continue;
            const int64_t t = reverse ? lens[b] - 1 - s : s;
            const A* g = xw.data() + (t * Bt + b) * G * H;
            for (int64_t j = 0; j < H; ++j) {
              const double rv = act[0](clipv(static_cast<double>(g[H + j]) + wb[H + j] + rb[H + j] +
                                             static_cast<double>(hr[b * G * H + H + j])));
              rh[b * H + j] = static_cast<A>(rv * static_cast<double>(h[b * H + j]));
            }
          }
          reference::gemm(false, true, Bt, H, H, A(1), rh.data(), H, R + 2 * H * H, H, A(0),
                          rhr.data(), H);
        }
        for (int64_t b = 0; b < Bt; ++b) {
          if (s >= lens[b]) continue;
          const int64_t t = reverse ? lens[b] - 1 - s : s;
          const A* g = xw.data() + (t * Bt + b) * G * H;
          const A* q = hr.data() + b * G * H;
          auto pre = [&](int gate, int64_t j) {
            const int64_t k = gate * H + j;
            return static_cast<double>(g[k]) + wb[k] + rb[k] + static_cast<double>(q[k]);
          };
          for (int64_t j = 0; j < H; ++j) {
            const double hp = static_cast<double>(h[b * H + j]);
            if constexpr (kCell == Cell::kLSTM) {
              const double cp = static_cast<double>(c[b * H + j]);
              const double iv = act[0](clipv(pre(0, j) + pv[j] * cp));
              const double fv =
                  input_forget ? 1.0 - iv : act[0](clipv(pre(2, j) + pv[2 * H + j] * cp));
              const double cv = act[1](clipv(pre(3, j)));
              const double cnew = fv * cp + iv * cv;
              const double ov = act[0](clipv(pre(1, j) + pv[H + j] * cnew));
              cn[b * H + j] = static_cast<A>(cnew);
              hn[b * H + j] = static_cast<A>(ov * act[2](cnew));
            } else if constexpr (kCell == Cell::kGRU) {
              const double zv = act[0](clipv(pre(0, j)));
              double hv;
              if (lbr) {
                const double rv = act[0](clipv(pre(1, j)));
                const double rec = static_cast<double>(q[2 * H + j]) + rb[2 * H + j];
                hv = act[1](clipv(static_cast<double>(g[2 * H + j]) + wb[2 * H + j] + rv * rec));
              } else {
                hv = act[1](clipv(static_cast<double>(g[2 * H + j]) + wb[2 * H + j] +
                                  rb[2 * H + j] + static_cast<double>(rhr[b * H + j])));
              }
              hn[b * H + j] = static_cast<A>((1 - zv) * hv + zv * hp);
            } else {
              hn[b * H + j] = static_cast<A>(act[0](clipv(pre(0, j))));
            }
            y[((t * dirs + d) * Bt + b) * H + j] = hn[b * H + j];
          }
        }
        h.swap(hn);
        c.swap(cn);
      }
      std::copy(h.begin(), h.end(), yh.begin() + d * Bt * H);
      std::copy(c.begin(), c.end(), yc.begin() + d * Bt * H);
    }
    auto emit = [&](size_t o, const std::vector<A>& v, bool is_y) {
      if (!ctx.hasOutput(o)) return;
      Tensor& out = ctx.output(o);
      std::vector<A> t(v.size());
      if (layout == 0) {
        t = v;
      } else if (is_y) {  // [seq, dirs, batch, H] -> [batch, seq, dirs, H]
        for (int64_t s = 0; s < S; ++s)
          for (int64_t d = 0; d < dirs; ++d)
            for (int64_t b = 0; b < Bt; ++b)
              for (int64_t j = 0; j < H; ++j)
                t[((b * S + s) * dirs + d) * H + j] = v[((s * dirs + d) * Bt + b) * H + j];
      } else {  // [dirs, batch, H] -> [batch, dirs, H]
        for (int64_t d = 0; d < dirs; ++d)
          for (int64_t b = 0; b < Bt; ++b)
            for (int64_t j = 0; j < H; ++j) t[(b * dirs + d) * H + j] = v[(d * Bt + b) * H + j];
      }
      reference::storeCompute(t.data(), out);
    };
    emit(0, y, true);
    emit(1, yh, false);
    if (kCell == Cell::kLSTM) emit(2, yc, false);
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(x.dtype()));
  return Status::Ok();
}

}  // namespace

Status refLSTM(KernelContext& ctx) {
  return rnnKernel<Cell::kLSTM>(ctx);
}
Status refGRU(KernelContext& ctx) {
  return rnnKernel<Cell::kGRU>(ctx);
}
Status refRNN(KernelContext& ctx) {
  return rnnKernel<Cell::kRNN>(ctx);
}

}  // namespace ramjet::ops
